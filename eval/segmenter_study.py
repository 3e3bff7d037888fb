"""How ``detect``'s second opinion was chosen: geometric search vs segmenter, photo by photo.

On the photos ``eval/eval_rectify.py`` draws (same seed, preset and size, so the same photos),
each photo gets the Jaccard index of

* ``geometric`` — ``detect(photo, second_opinion=False)`` (0 when it fails), and whether it is
  flagged (``flag``: 0 clean, 1 flagged, 2 failed);
* ``raw`` — the segmenter's quad as read off its probability map (``quad_from_prob``);
* ``measured`` — that quad with its sides measured at full resolution (``_segment_quad`` without
  its found-side minimum), with the number of unmeasured sides;

and the IoU of the geometric and the measured quad. The summary prints the mean Jaccard of each
and of the combination rules that were weighed: the measured quad wherever the geometric search
is unsure (flagged or failed); the same but keeping a flagged geometric quad that agrees with it
to IoU ≥ t; and the rule ``detect`` uses (only with ≥ ``SEG_MIN_FOUND_SIDES`` measured sides).
Writes ``OUT/<preset>.csv`` and ``OUT/summary.json``.

Usage::

    python eval/segmenter_study.py --preset typical --seed 0 --n 200 --out runs/segmenter_study
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from eval_rectify import jaccard_smartdoc, pick_records

from photorad.cli._util import parse_size
from photorad.data.bus_bra import load_records
from photorad.data.paths import find_shared_data, sample_dir
from photorad.errors import PhotoradError
from photorad.io import load_original
from photorad.rectify import detect
from photorad.rectify.segment import Segmenter, quad_from_prob
from photorad.simulate import simulate_photo

_D = sys.modules["photorad.rectify.detect"]  # the module (the package exports the function)


def one(job: tuple[str, str, str, int, tuple[int, int]]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    preset, rid, path, seed, size = job
    original = load_original(path)
    res = simulate_photo(original, preset=preset, seed=seed, size=size)
    shape = (original.shape[1], original.shape[0])
    row: dict[str, Any] = {"id": rid, "seed": seed}
    try:
        geo = detect(res.photo, second_opinion=False)
        row["geometric"] = jaccard_smartdoc(geo.corners, res.corners, shape)
        row["flag"] = int(_D._flagged(geo))
    except PhotoradError:
        geo, row["geometric"], row["flag"] = None, 0.0, 2
    seg = Segmenter.shipped()
    if seg is None:
        raise SystemExit("the shipped segmenter weights are missing")
    p, red = seg.prob(res.photo)
    sq = quad_from_prob(p, red)
    row["raw"] = 0.0 if sq is None else jaccard_smartdoc(sq.corners, res.corners, shape)
    row["confidence"] = 0.0 if sq is None else round(sq.confidence, 3)
    # every quad, however few sides are measured: the rules below apply the minimum
    quad = _D._segment_quad(res.photo, _D._work_maps(res.photo), min_found_sides=0)
    if quad is None:
        row.update(measured=0.0, unmeasured=4, agree="")
    else:
        row["measured"] = jaccard_smartdoc(quad.corners, res.corners, shape)
        row["unmeasured"] = len(quad.details["edges_not_found"])
        row["agree"] = "" if geo is None else round(_D._quad_iou(geo.corners, quad.corners), 4)
    for k in ("geometric", "raw", "measured"):
        row[k] = round(float(row[k]), 4)
    return row


def rules(rows: list[dict[str, Any]], *, min_found: int) -> dict[str, float]:
    g = np.array([r["geometric"] for r in rows])
    m = np.array([r["measured"] for r in rows])
    unsure = np.array([r["flag"] > 0 for r in rows])
    flagged = np.array([r["flag"] == 1 for r in rows])
    agree = np.array([float(r["agree"]) if r["agree"] != "" else -1.0 for r in rows])
    usable = np.array([4 - r["unmeasured"] >= min_found for r in rows])
    out = {
        "geometric": float(g.mean()),
        "segmenter_raw": float(np.mean([r["raw"] for r in rows])),
        "segmenter_measured": float(m.mean()),
        "segmenter_where_unsure": float(np.where(unsure, m, g).mean()),
    }
    for t in (0.95, 0.98, 0.99, 0.995):
        keep = flagged & (agree >= t)
        out[f"segmenter_where_unsure_keep_agree_{t}"] = float(
            np.where(unsure & ~keep, m, g).mean())
    out[f"detect_rule_min_found_{min_found}"] = float(np.where(unsure & usable, m, g).mean())
    out["n_unsure"] = int(unsure.sum())
    out["unsure_geometric"] = float(g[unsure].mean()) if unsure.any() else None
    out["unsure_measured"] = float(m[unsure].mean()) if unsure.any() else None
    out["clean_geometric"] = float(g[~unsure].mean()) if (~unsure).any() else None
    out["clean_measured"] = float(m[~unsure].mean()) if (~unsure).any() else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="typical")
    p.add_argument("--preset-index", type=int, default=None,
                   help="position of the preset in eval_rectify's --presets (default: typical 0, "
                        "hard 1, as in the published runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--size", type=parse_size, default=(1344, 1008))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/segmenter_study"))
    args = p.parse_args(argv)
    pi = args.preset_index if args.preset_index is not None else {"hard": 1}.get(args.preset, 0)
    records = load_records(find_shared_data("bus-bra") or sample_dir())
    rng = np.random.default_rng(args.seed)
    for _ in range(pi):
        pick_records(records, rng, args.n)  # the presets before this one in eval_rectify
    picks = pick_records(records, rng, args.n)
    jobs = [(args.preset, r.id, str(r.path), args.seed * 100_000 + pi * 10_000 + i, args.size)
            for i, r in enumerate(picks)]
    with ProcessPoolExecutor(args.workers) as ex:
        rows = list(ex.map(one, jobs, chunksize=4))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{args.preset}.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    summary = rules(rows, min_found=_D.SEG_MIN_FOUND_SIDES)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for k, v in summary.items():
        print(f"{k:45s} {v if isinstance(v, int) or v is None else round(v, 4)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
