"""Paired (rectified photo → original) data for training and evaluating restorers.

A *paired folder* holds, for each image ``<id>``:

* ``rect/<id>.png`` — the simulated phone photo rectified with the ground-truth corners to the
  original's size (16-bit grey PNG, so no extra quantisation is added);
* ``orig/<id>.png`` — the original (16-bit grey PNG, as loaded by ``load_original``);
* one row in ``pairs.csv``: ``id, split, label, group, preset, seed, source``.

Pairs are made either from a ``photorad simulate`` output folder (:func:`pairs_from_simulate_dir`)
or generated directly from dataset records (:func:`make_pairs`). :class:`PatchSampler` draws
random aligned patches with flips and 90° rotations for training. This module does not import
torch (the trainer turns the numpy batches into tensors).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photorad.errors import ConfigError

__all__ = [
    "Pair",
    "PatchSampler",
    "load_pairs",
    "make_pair",
    "make_pairs",
    "pairs_from_simulate_dir",
    "read_pairs_csv",
]

PAIRS_CSV = "pairs.csv"
FIELDS = ("id", "split", "label", "group", "preset", "seed", "source")


@dataclass
class Pair:
    """One aligned pair of ``float32`` H×W images in [0, 1] and its table row."""

    id: str
    rect: np.ndarray
    orig: np.ndarray
    row: dict[str, str]


def make_pair(
    original: np.ndarray,
    *,
    preset: str = "typical",
    seed: int = 0,
    photo_size: tuple[int, int] = (1600, 1200),
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulate a phone photo of ``original`` and rectify it with the ground-truth corners.

    Returns the rectified ``float32`` image (same H×W as ``original``) and the simulator params.
    """
    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    h, w = original.shape
    sim = simulate_photo(original, preset=preset, seed=seed, size=photo_size)
    rect = warp(sim.photo, sim.corners, size=(w, h))
    return rect.astype(np.float32, copy=False), dict(sim.params)


def _write_rows(out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path = out_dir / PAIRS_CSV
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=FIELDS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in FIELDS})
    os.replace(tmp, path)
    return path


def read_pairs_csv(folder: str | os.PathLike) -> list[dict[str, str]]:
    path = Path(folder) / PAIRS_CSV
    if not path.is_file():
        raise ConfigError(f"{path} not found: make a paired folder first (train/make_pairs)")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def make_pairs(
    records: Iterable[Any],
    out_dir: str | os.PathLike,
    *,
    split: str,
    preset: str = "typical",
    seed: int = 0,
    photo_size: tuple[int, int] = (1600, 1200),
    skip_existing: bool = True,
) -> list[dict[str, Any]]:
    """Simulate + rectify each record (``photorad.data.bus_bra.Record``) into ``out_dir``.

    The per-image seed is ``seed + index`` within ``records`` (reproducible, independent of
    other splits as long as the split seeds differ). Rows are merged into ``pairs.csv``; a pair
    that already exists on disk (``skip_existing``) keeps its recorded row, including the seed
    that made it — growing ``records`` later re-indexes only the new images.
    """
    from photorad.io import load_original, save_png

    out = Path(out_dir)
    (out / "rect").mkdir(parents=True, exist_ok=True)
    (out / "orig").mkdir(parents=True, exist_ok=True)
    existing = {r["id"]: r for r in read_pairs_csv(out)} if (out / PAIRS_CSV).is_file() else {}
    new_rows = []
    for i, rec in enumerate(records):
        rp, op = out / "rect" / f"{rec.id}.png", out / "orig" / f"{rec.id}.png"
        row = {
            "id": rec.id, "split": split, "label": rec.label, "group": rec.group,
            "preset": preset, "seed": seed + i, "source": str(rec.path.name),
        }
        if skip_existing and rp.is_file() and op.is_file() and rec.id in existing:
            # The pixels on disk were made by the recorded row (its seed may differ from
            # seed + i when the record list grew): keep that row, so pairs.csv stays true.
            new_rows.append(dict(existing[rec.id]))
            continue
        orig = load_original(rec.path)
        rect, _params = make_pair(orig, preset=preset, seed=seed + i, photo_size=photo_size)
        save_png(op, orig, bit_depth=16)
        save_png(rp, rect, bit_depth=16)
        new_rows.append(row)
        existing[rec.id] = {k: str(v) for k, v in row.items()}
    _write_rows(out, list(existing.values()))
    return new_rows


def pairs_from_simulate_dir(
    sim_dir: str | os.PathLike, out_dir: str | os.PathLike, *, split: str = "unspecified"
) -> list[dict[str, Any]]:
    """Turn a ``photorad simulate`` output folder into a paired folder (GT-corner rectification).

    Expects ``<id>_photo.jpg``, ``<id>_original.png`` and ``<id>.json`` (with ``corners``) per
    image, as written by ``photorad simulate``.
    """
    from photorad.io import load_original, load_photo, save_png
    from photorad.rectify import warp

    sim_dir, out = Path(sim_dir), Path(out_dir)
    (out / "rect").mkdir(parents=True, exist_ok=True)
    (out / "orig").mkdir(parents=True, exist_ok=True)
    rows = []
    for js in sorted(sim_dir.glob("*.json")):
        meta = json.loads(js.read_text())
        if "corners" not in meta:
            continue
        sid = js.stem
        photo_p, orig_p = sim_dir / f"{sid}_photo.jpg", sim_dir / f"{sid}_original.png"
        if not (photo_p.is_file() and orig_p.is_file()):
            raise ConfigError(f"{sim_dir}: {sid}.json has no matching photo/original image")
        orig = load_original(orig_p)
        rect = warp(load_photo(photo_p), np.asarray(meta["corners"], dtype=np.float64),
                    size=(orig.shape[1], orig.shape[0]))
        save_png(out / "orig" / f"{sid}.png", orig, bit_depth=16)
        save_png(out / "rect" / f"{sid}.png", rect, bit_depth=16)
        params = meta.get("params", {})
        rows.append({
            "id": sid, "split": meta.get("split", split), "label": meta.get("label", ""),
            "group": meta.get("group", ""),
            "preset": params.get("preset", meta.get("preset", "")) if isinstance(params, dict)
            else "",
            "seed": meta.get("seed", ""), "source": meta.get("source", ""),
        })
    if not rows:
        raise ConfigError(f"{sim_dir}: no simulated photos (<id>.json with corners) found")
    _write_rows(out, rows)
    return rows


def load_pairs(
    folder: str | os.PathLike, *, split: str | None = None, limit: int | None = None
) -> list[Pair]:
    """Load the pairs of ``folder`` (optionally one ``split``) as float32 arrays."""
    from photorad.io import load_original

    folder = Path(folder)
    rows = [r for r in read_pairs_csv(folder) if split is None or r["split"] == split]
    rows.sort(key=lambda r: r["id"])
    if limit is not None:
        rows = rows[:limit]
    out = []
    for r in rows:
        rect = load_original(folder / "rect" / f"{r['id']}.png")
        orig = load_original(folder / "orig" / f"{r['id']}.png")
        if rect.shape != orig.shape:
            raise ConfigError(f"{folder}: pair {r['id']} has mismatched sizes")
        out.append(Pair(r["id"], rect, orig, r))
    return out


class PatchSampler:
    """Random aligned patches from pairs, with flips and 90° rotations.

    Parameters
    ----------
    pairs:
        Training pairs (images at least ``patch`` pixels a side; smaller ones are skipped).
    patch:
        Patch side in pixels.
    seed:
        Seed of the sampler's generator (give each data-parallel rank its own).
    augment:
        Apply a random one of the 8 flip/rotation symmetries per patch.
    contexts:
        Optional per-pair whole-image context (e.g. a restorer's ``t×t`` thumbnail of the whole
        rectified image, aligned with ``pairs``). When given, :meth:`batch` also returns the
        context of each patch's image, with the patch's flip/rotation applied, so that a model's
        global branch sees the whole image while its local branch sees the patch.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        patch: int = 96,
        seed: int = 0,
        augment: bool = True,
        contexts: Sequence[np.ndarray] | None = None,
    ) -> None:
        if contexts is not None and len(contexts) != len(pairs):
            raise ConfigError("contexts must be aligned with pairs (one per pair)")
        keep = [i for i, p in enumerate(pairs) if min(p.rect.shape) >= patch]
        self.pairs = [pairs[i] for i in keep]
        self.contexts = None if contexts is None else [np.asarray(contexts[i]) for i in keep]
        if not self.pairs:
            raise ConfigError(f"no training pair is at least {patch} px a side")
        self.patch = patch
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> tuple[np.ndarray, ...]:
        """``n`` patches: (input, target), each ``float32`` n×1×patch×patch, plus the contexts
        (n×1×t×t) when the sampler has them."""
        p = self.patch
        xs = np.empty((n, 1, p, p), np.float32)
        ys = np.empty((n, 1, p, p), np.float32)
        cs = None
        if self.contexts is not None:
            # t×t or C×t×t contexts (e.g. a thumbnail plus texture thumbnails) → n×C×t×t.
            c0 = self.contexts[0]
            cs = np.empty((n, c0.shape[0] if c0.ndim == 3 else 1, *c0.shape[-2:]), np.float32)
        for k in range(n):
            i = int(self.rng.integers(len(self.pairs)))
            pair = self.pairs[i]
            h, w = pair.rect.shape
            y0, x0 = self.rng.integers(h - p + 1), self.rng.integers(w - p + 1)
            a = pair.rect[y0:y0 + p, x0:x0 + p]
            b = pair.orig[y0:y0 + p, x0:x0 + p]
            c = None if self.contexts is None else self.contexts[i].reshape(cs.shape[1:])
            if self.augment:
                rot, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
                a, b = np.rot90(a, rot), np.rot90(b, rot)
                c = None if c is None else np.rot90(c, rot, axes=(-2, -1))
                if flip:
                    a, b = a[:, ::-1], b[:, ::-1]
                    c = None if c is None else c[..., ::-1]
            xs[k, 0], ys[k, 0] = a, b
            if cs is not None:
                cs[k] = c
        if cs is not None:
            return xs, ys, cs
        return xs, ys
