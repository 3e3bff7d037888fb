"""Speed of ``detect`` + ``warp`` on 12 MP simulated phone photos (prints; asserts nothing).

Photos are simulated first (not timed) with ``photorad.simulate.simulate_photo`` at 4032×3024 from
BUS-BRA originals; then each photo is run ``--repeat`` times through ``detect`` followed by
``warp`` to the original's size, and the median and p90 wall times are printed, with the CPU
count, the OpenCV thread count and the load average (other jobs on a shared machine inflate the
figure). The segmenter that ``detect`` consults on unsure photos is loaded before the timing (a
one-off cost per process, printed apart).

Usage::

    python eval/bench_rectify.py --n 8 --repeat 3 [--threads 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from photorad.cli._util import parse_size
from photorad.data.bus_bra import load_records
from photorad.data.paths import find_shared_data, sample_dir
from photorad.errors import PhotoradError
from photorad.io import load_original
from photorad.rectify import detect, warp
from photorad.rectify.segment import Segmenter
from photorad.simulate import simulate_photo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="photos (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per photo (default 3)")
    p.add_argument("--size", type=parse_size, default=(4032, 3024), help="photo size (12 MP)")
    p.add_argument("--preset", default="typical")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="OpenCV threads (default 2 = 2 cores)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    root = find_shared_data("bus-bra") or sample_dir()
    records = load_records(root)
    rng = np.random.default_rng(args.seed)
    picks = [records[i] for i in rng.choice(len(records), args.n, replace=len(records) < args.n)]
    photos = []
    for i, r in enumerate(picks):
        orig = load_original(r.path)
        res = simulate_photo(orig, preset=args.preset, seed=args.seed + i, size=args.size)
        photos.append((res.photo, orig.shape[::-1]))
    # Loading the segmenter (torch import, weights, SHA-256) is a one-off cost per process that
    # a server pays at start-up: measured and reported apart, not in the per-photo figures.
    t0 = time.perf_counter()
    seg = Segmenter.shipped()
    load_ms = (time.perf_counter() - t0) * 1000
    if seg is not None:
        seg.prob(photos[0][0])  # first inference (allocations, kernel choice)
    times, fails = [], 0
    for photo, osize in photos:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                warp(photo, detect(photo), size=osize)
            except PhotoradError:
                fails += 1
            times.append(time.perf_counter() - t0)
    t = np.array(times) * 1000
    out = {
        "photo_size": list(args.size),
        "n_photos": args.n,
        "repeat": args.repeat,
        "median_ms": round(float(np.median(t)), 1),
        "p90_ms": round(float(np.percentile(t, 90)), 1),
        "min_ms": round(float(t.min()), 1),
        "failed_runs": fails,
        "cpu_count": os.cpu_count(),
        "opencv_threads": cv2.getNumThreads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "segmenter": None if seg is None else seg.meta.sha256,
        "segmenter_load_ms": round(load_ms, 1),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"detect + warp on {args.size[0]}x{args.size[1]} photos: median {out['median_ms']} ms, "
          f"p90 {out['p90_ms']} ms, min {out['min_ms']} ms over {len(t)} runs "
          f"({fails} NoScreenFound); {out['cpu_count']} CPUs, OpenCV threads "
          f"{out['opencv_threads']}, torch threads {out['torch_threads']}, load average "
          f"{out['load_average']}; segmenter loaded once before timing in "
          f"{out['segmenter_load_ms']} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
