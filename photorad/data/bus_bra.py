"""BUS-BRA breast-ultrasound dataset (Gómez-Flores et al., Medical Physics 2023).

Records come from ``bus_data.csv``; the image size is always read from the pixels (four rows of
the CSV carry a wrong Height). Labels: 1 = malignant, 0 = benign. ``group`` is the patient
(``Case``): every split in photorad is grouped by it, never by image.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photorad.data.paths import find_shared_data, sample_dir
from photorad.errors import ConfigError


@dataclass(frozen=True)
class Record:
    id: str
    path: Path
    label: int  # 1 = malignant
    group: str  # patient (Case)
    histology: str
    birads: str
    device: str
    side: str
    bbox: tuple[int, int, int, int]  # x, y, w, h of the lesion, original pixels


def _parse_bbox(text: str) -> tuple[int, int, int, int]:
    vals = json.loads(text)
    if len(vals) != 4:
        raise ValueError(f"bad BBOX {text!r}")
    return tuple(int(v) for v in vals)  # type: ignore[return-value]


def load_records(root: str | Path | None = None, *, csv_name: str | None = None) -> list[Record]:
    """Read the dataset table.

    Parameters
    ----------
    root:
        Dataset folder holding ``Images/`` and ``bus_data.csv``. ``None`` uses the full dataset
        when it is found (see :func:`photorad.data.find_shared_data`), else the embedded sample.
    """
    if root is None:
        root = find_shared_data("bus-bra") or sample_dir()
    root = Path(root)
    table = root / (csv_name or "bus_data.csv")
    if not table.is_file():
        raise ConfigError(f"BUS-BRA table not found: {table}")
    out = []
    with table.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = root / "Images" / f"{row['ID']}.png"
            out.append(
                Record(
                    id=row["ID"],
                    path=path,
                    label=1 if row["Pathology"].strip().lower() == "malignant" else 0,
                    group=str(row["Case"]),
                    histology=row.get("Histology", ""),
                    birads=str(row.get("BIRADS", "")),
                    device=row.get("Device", ""),
                    side=row.get("Side", ""),
                    bbox=_parse_bbox(row["BBOX"]),
                )
            )
    return out


def grouped_folds(
    records: list[Record], *, n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patient-grouped, label-stratified K folds: list of (train_idx, test_idx) index arrays."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([r.label for r in records])
    g = np.array([r.group for r in records])
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [(tr, te) for tr, te in skf.split(np.zeros(len(y)), y, g)]
    for tr, te in folds:
        assert not set(g[tr]) & set(g[te]), "patient leak between train and test"
    return folds


def train_val_test_split(
    records: list[Record], *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One patient-grouped, label-stratified train/val/test split (index arrays)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([r.label for r in records])
    g = np.array([r.group for r in records])
    idx = np.arange(len(records))

    def split(sub: np.ndarray, frac: float, s: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(2, round(1.0 / frac))
        skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=s)
        tr, te = next(skf.split(np.zeros(len(sub)), y[sub], g[sub]))
        return sub[tr], sub[te]

    rest, test = split(idx, test_fraction, seed)
    train, val = split(rest, val_fraction / (1.0 - test_fraction), seed + 1)
    for a, b in ((train, test), (train, val), (val, test)):
        assert not set(g[a]) & set(g[b]), "patient leak between splits"
    return train, val, test


def author_folds(root: str | Path, *, k: int = 5) -> dict[str, int]:
    """The dataset authors' patient-grouped partition: image ID → test fold (1-based)."""
    path = Path(root) / f"{k}-fold-cv.csv"
    with path.open(newline="") as fh:
        return {row["ID"]: int(row["kFold"]) for row in csv.DictReader(fh)}
