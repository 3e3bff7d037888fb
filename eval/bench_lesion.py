#!/usr/bin/env python
"""Lesion localizer latency on this machine: ms per image, end to end (resize, network, map back,
connected areas), at the size the pipeline hands it.

    python eval/bench_lesion.py [--threads 2] [--side 576] [--n 30] [--out results/lesion]

Uses the shipped localizer (``photorad.lesion.default_localizer``) on BUS-BRA sample originals
resized to a ``--side``-pixel long side (the pipeline's rectified size cap). Prints the median and
p90 and, with ``--out``, writes ``bench_lesion.json`` + ``run_info.json``. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--side", type=int, default=576, help="long side of the images, px")
    p.add_argument("--n", type=int, default=30, help="timed runs (after 3 warm-up runs)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import cv2
    import torch

    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import load_original
    from photorad.lesion import default_localizer
    from photorad.provenance import machine_info, write_run_info

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    loc = default_localizer()
    load_ms = (time.perf_counter() - t0) * 1000
    imgs = []
    for r in load_records(sample_dir()):
        img = load_original(r.path)
        f = args.side / max(img.shape)
        imgs.append(cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)),
                               interpolation=cv2.INTER_LINEAR))
    for img in imgs[:3]:
        loc.locate(img)
    times = []
    for i in range(args.n):
        img = imgs[i % len(imgs)]
        t = time.perf_counter()
        loc.locate(img)
        times.append((time.perf_counter() - t) * 1000)
    a = np.asarray(times)
    row = {"model": loc.info(), "threads": args.threads, "long_side_px": args.side, "n": args.n,
           "median_ms": round(float(np.median(a)), 2),
           "p90_ms": round(float(np.percentile(a, 90)), 2),
           "load_ms": round(load_ms, 1), "machine": machine_info()}
    print(json.dumps({k: v for k, v in row.items() if k != "machine"}))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_lesion.json").write_text(json.dumps(row, indent=2) + "\n")
        write_run_info(out, vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
