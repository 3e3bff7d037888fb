"""`photorad demo`: run the pipeline on the embedded sample images.

This is the newcomer's first command. It runs every stage that is available in this installation
and writes a report; stages that need components not yet built are listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "demo"
HELP = "run the whole pipeline on the embedded sample images and write a report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N sample images")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from photorad import DISCLAIMER
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import load_original, save_png
    from photorad.provenance import hash_folder, write_run_info

    t0 = time.perf_counter()
    records = load_records(sample_dir())
    if args.limit:
        records = records[: args.limit]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    tiles = []
    for r in records:
        img = load_original(r.path)
        rows.append({"id": r.id, "label": "malignant" if r.label else "benign",
                     "height": int(img.shape[0]), "width": int(img.shape[1]),
                     "mean": round(float(img.mean()), 4)})
        tile = np.zeros((160, 160), np.float32)
        h, w = img.shape
        s = 160 / max(h, w)
        import cv2

        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        tile[: small.shape[0], : small.shape[1]] = small
        tiles.append(tile)
    cols = 5
    while len(tiles) % cols:
        tiles.append(np.zeros((160, 160), np.float32))
    sheet = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    save_png(out / "originals.png", sheet)
    report = {"disclaimer": DISCLAIMER, "cases": rows, "stages_run": ["load_original"],
              "seconds": round(time.perf_counter() - t0, 2)}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_run_info(out, vars(args) | {"out": str(out)}, data_hashes={"sample": hash_folder(sample_dir())})
    print(f"{'id':14s} {'label':10s} {'size':>9s}")
    for row in rows:
        print(f"{row['id']:14s} {row['label']:10s} {row['width']:4d}×{row['height']:<4d}")
    print(f"wrote {out / 'report.json'} and {out / 'originals.png'} ({report['seconds']} s). {DISCLAIMER}")
    return 0
