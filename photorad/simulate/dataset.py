"""Paired dataset builder: many originals → simulated photos + ground truth + manifest.

Output layout (``DIR``), one entry per simulated photo ``<id>``:

* ``<id>_photo.jpg`` — the phone photo (the simulator's JPEG bytes, no metadata);
* ``<id>_original.png`` — the original's pixels, losslessly (8- or 16-bit PNG, no metadata);
* ``<id>.json`` — ``corners`` (TL, TR, BR, BL, photo pixels), ``params``, ``source``, ``label``,
  ``group``, ``seed``;
* ``manifest.csv`` — one row per photo; ``failures.csv`` — sources that could not be used.

Each photo's random stream is seeded from ``(seed, stable_hash(source id), k)``, so the bytes do
not depend on the number of workers or the order in which they finish.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from photorad.errors import ConfigError, PhotoradError

log = logging.getLogger(__name__)

#: File suffixes taken from folders (DICOM files without a suffix are not picked up from folders).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", ".bmp"}
MANIFEST_FIELDS = [
    "id", "photo", "original", "meta", "label", "group", "source", "preset", "seed",
    "tl_x", "tl_y", "tr_x", "tr_y", "br_x", "br_y", "bl_x", "bl_y",
]


@dataclass(frozen=True)
class SourceItem:
    """One original image to simulate: a stable ``id``, its path, and optional label and group."""

    id: str
    path: Path
    label: str = ""
    group: str = ""


@dataclass
class Summary:
    """What a dataset run did."""

    n_sources: int = 0
    n_photos: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    def line(self) -> str:
        return (f"{self.n_photos} photo(s) simulated from {self.n_sources - self.n_failed} of "
                f"{self.n_sources} source image(s); {self.n_failed} skipped")


def stable_hash(text: str) -> int:
    """A 63-bit integer from ``text`` that is the same on every machine and Python run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _read_csv(path: Path) -> list[SourceItem]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ConfigError(f"{path}: a source CSV needs a 'path' column (and optionally "
                              "'label', 'group', 'id')")
        out = []
        for row in reader:
            p = Path(row["path"])
            if not p.is_absolute():
                p = path.parent / p
            out.append(SourceItem(id=row.get("id") or p.stem, path=p,
                                  label=row.get("label", "") or "", group=row.get("group", "") or ""))
    return out


def discover_sources(sources: Iterable[str | os.PathLike]) -> list[SourceItem]:
    """Expand image files, folders (recursively) and ``path,label,group`` CSV files.

    Ids are file stems, made unique with a ``-2``, ``-3`` … suffix in the order found.
    Paths that do not exist are kept (they fail later, with a logged reason, like unreadable
    files), so a typo never silently shrinks a dataset.
    """
    items: list[SourceItem] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
            items += [SourceItem(id=f.stem, path=f) for f in files]
        elif p.suffix.lower() == ".csv" and p.is_file():
            items += _read_csv(p)
        else:
            items.append(SourceItem(id=p.stem, path=p))
    seen: dict[str, int] = {}
    unique = []
    for it in items:
        n = seen.get(it.id, 0) + 1
        seen[it.id] = n
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in it.id) or "image"
        unique.append(SourceItem(id=safe if n == 1 else f"{safe}-{n}", path=it.path,
                                 label=it.label, group=it.group))
    return unique


def bus_bra_csv(out_csv: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Write the ``id,path,label,group`` source CSV of BUS-BRA (label = Pathology, group = Case).

    Keeping the patient (``Case``) as ``group`` lets every later split stay patient-grouped.
    """
    from photorad.data.bus_bra import load_records

    recs = load_records(root)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["id", "path", "label", "group"])
        for r in recs:
            wr.writerow([r.id, str(Path(r.path).resolve()),
                         "malignant" if r.label == 1 else "benign", r.group])
    return out


def _bit_depth(img: np.ndarray) -> int:
    """8 when every value is an exact multiple of 1/255 (an 8-bit source), else 16."""
    return 8 if np.array_equal(np.rint(img * 255.0) / 255.0, img.astype(np.float64)) else 16


def _job(args: tuple[SourceItem, int, dict[str, Any]]) -> dict[str, Any]:
    """Simulate one photo and write its files (runs in a worker). Returns a manifest row or
    ``{"error": reason}``; never raises for a bad source image."""
    item, k, cfg = args
    from photorad.io import encode_png, load_original
    from photorad.io.save import write_atomic
    from photorad.simulate.core import simulate_photo

    pid = item.id if cfg["per_image"] == 1 else f"{item.id}_{k}"
    seed = [int(cfg["seed"]), stable_hash(item.id), int(k)]
    try:
        original = load_original(item.path)
    except PhotoradError as exc:
        return {"source": str(item.path), "error": str(exc)}
    except OSError as exc:  # missing file, permission denied
        return {"source": str(item.path), "error": f"cannot read {item.path}: {exc.strerror}"}
    try:
        res = simulate_photo(original, preset=cfg["preset"], params=cfg.get("params"),
                             seed=seed, size=tuple(cfg["size"]))
    except PhotoradError as exc:
        return {"source": str(item.path), "error": f"simulation failed: {exc}"}
    out = Path(cfg["out"])
    write_atomic(out / f"{pid}_photo.jpg", res.jpeg)
    write_atomic(out / f"{pid}_original.png",
                 encode_png(original, bit_depth=_bit_depth(original)))
    meta = {
        "id": pid,
        "corners": res.corners.tolist(),
        "corner_order": "TL, TR, BR, BL (x, y), photo pixels, pixel centres at integers",
        "photo": f"{pid}_photo.jpg",
        "original": f"{pid}_original.png",
        "photo_size": [int(v) for v in res.params["size"]],  # no decode of the JPEG needed
        "source": str(item.path),
        "label": item.label,
        "group": item.group,
        "seed": seed,
        "params": res.params,
    }
    write_atomic(out / f"{pid}.json", (json.dumps(meta, indent=1) + "\n").encode())
    row = {
        "id": pid, "photo": meta["photo"], "original": meta["original"], "meta": f"{pid}.json",
        "label": item.label, "group": item.group, "source": str(item.path),
        "preset": cfg["preset"], "seed": " ".join(str(s) for s in seed),
    }
    for name, (x, y) in zip(("tl", "tr", "br", "bl"), res.corners, strict=True):
        row[f"{name}_x"], row[f"{name}_y"] = round(float(x), 4), round(float(y), 4)
    return row


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: nested threads only contend


def simulate_dataset(
    items: Sequence[SourceItem],
    out_dir: str | os.PathLike,
    *,
    preset: str = "typical",
    per_image: int = 1,
    seed: int = 0,
    size: tuple[int, int] = (4032, 3024),
    workers: int = 1,
    params: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | bool = False,
) -> Summary:
    """Simulate ``per_image`` photos of each source into ``out_dir`` and write the manifest.

    Unreadable sources are skipped with a logged reason (the run continues); the returned
    :class:`Summary` counts them and ``failures.csv`` lists them.
    """
    from photorad.simulate.presets import preset as get_preset

    get_preset(preset)  # fail fast on a typo
    if per_image < 1:
        raise ConfigError("per_image must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"preset": preset, "per_image": int(per_image), "seed": int(seed),
           "size": [int(size[0]), int(size[1])], "out": str(out),
           "params": dict(params) if params else None}
    jobs = [(it, k, cfg) for it in items for k in range(per_image)]
    summary = Summary(n_sources=len(items))
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="photo", desc="simulate")

    def handle(r: dict[str, Any]) -> None:
        if "error" in r:
            if r["source"] not in failed:
                log.warning("skipped %s: %s", r["source"], r["error"])
                failed[r["source"]] = r["error"]
        else:
            rows.append(r)
        if bar is not None:
            bar.update(1)
        elif callable(progress):
            progress(len(rows) + len(failed), len(jobs))

    if workers <= 1:
        for j in jobs:
            handle(_job(j))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(int(workers), initializer=_init_worker) as pool:
            for r in pool.imap_unordered(_job, jobs, chunksize=1):
                handle(r)
    if bar is not None:
        bar.close()
    rows.sort(key=lambda r: r["id"])
    _write_csv(out / "manifest.csv", MANIFEST_FIELDS, rows)
    summary.failures = sorted(failed.items())
    _write_csv(out / "failures.csv", ["source", "reason"],
               [{"source": s, "reason": r} for s, r in summary.failures])
    summary.n_photos = len(rows)
    return summary


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    import io

    from photorad.io.save import write_atomic

    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    wr.writeheader()
    wr.writerows(rows)
    write_atomic(path, buf.getvalue().encode())


def contact_sheet(
    out_dir: str | os.PathLike,
    sheet: str | os.PathLike,
    *,
    n: int = 12,
    columns: int = 4,
    max_bytes: int = 1_500_000,
) -> Path:
    """Tile the first ``n`` photos of a dataset folder (corners drawn in green) into one PNG.

    Tiles shrink until the PNG is smaller than ``max_bytes``.
    """
    import cv2

    from photorad.io import encode_png, load_photo
    from photorad.io.save import write_atomic

    out = Path(out_dir)
    with (out / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    if not rows:
        raise ConfigError(f"{out}: no photos to put on a contact sheet")
    photos = []
    for r in rows:
        ph = load_photo(out / r["photo"])
        c = np.array([[float(r[f"{k}_{a}"]) for a in "xy"] for k in ("tl", "tr", "br", "bl")])
        photos.append((ph, c))
    tile_w = 480
    while True:
        tiles = []
        for ph, c in photos:
            s = tile_w / ph.shape[1]
            t = cv2.resize(ph, (tile_w, round(ph.shape[0] * s)), interpolation=cv2.INTER_AREA)
            pts = np.rint(((c + 0.5) * s - 0.5) * 4).astype(np.int32)  # 2 fractional bits
            cv2.polylines(t, [pts], True, (0, 255, 0), 1, cv2.LINE_AA, shift=2)
            tiles.append(t)
        th = max(t.shape[0] for t in tiles)
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
        tiles = [np.pad(t, ((0, th - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
        grid = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
        data = encode_png(grid, compression=9)
        if len(data) <= max_bytes or tile_w <= 64:
            return write_atomic(sheet, data)
        tile_w = int(tile_w * 0.85)
