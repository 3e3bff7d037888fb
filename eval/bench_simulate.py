"""Benchmark the screen-photo simulator: photos per second and peak memory per worker.

Runs ``photorad.simulate.dataset.simulate_dataset`` (what ``photorad simulate`` runs) on the
embedded BUS-BRA sample at 12 MP and 2 MP and prints photos/s, including pool start-up and the
writing of every output file. Peak memory is the largest resident set of any worker process
(``ru_maxrss`` of the children; in-process for ``--workers 1``).

    python eval/bench_simulate.py --workers 2 --n 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from photorad.cli._util import parse_size
from photorad.data.paths import sample_dir
from photorad.provenance import write_run_info
from photorad.simulate.dataset import discover_sources, simulate_dataset


def bench(size: tuple[int, int], *, n: int, workers: int, preset: str, seed: int) -> dict:
    items = discover_sources([sample_dir() / "Images"])
    items = (items * (n // len(items) + 1))[:n]
    items = [type(it)(id=f"{it.id}-{k}", path=it.path) for k, it in enumerate(items)]
    who = resource.RUSAGE_CHILDREN if workers > 1 else resource.RUSAGE_SELF
    if workers <= 1:
        import cv2

        cv2.setNumThreads(1)  # as in the pool's workers: one thread per process
    load0 = os.getloadavg()[0]
    r0 = resource.getrusage(who)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = simulate_dataset(items, tmp, preset=preset, seed=seed, size=size,
                                   workers=workers)
        dt = time.perf_counter() - t0
    r1 = resource.getrusage(who)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    peak_mb = r1.ru_maxrss / 1024.0
    return {
        "size": f"{size[0]}x{size[1]}", "megapixels": round(size[0] * size[1] / 1e6, 2),
        "photos": summary.n_photos, "workers": workers, "seconds": round(dt, 2),
        "photos_per_s": round(summary.n_photos / dt, 3), "peak_rss_mb_per_worker": round(peak_mb),
        # CPU seconds per photo (all workers); on `workers` otherwise idle cores the rate would
        # be workers / cpu_s_per_photo. Reported because shared machines distort wall time.
        "cpu_s_per_photo": round(cpu / max(summary.n_photos, 1), 3),
        "load_avg_1min_start": round(load0, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="photos per size")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", default="4032x3024,1632x1224",
                    help="comma-separated WxH list (default 12 MP and 2 MP)")
    ap.add_argument("--preset", default="typical")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write bench.json + run_info here")
    args = ap.parse_args(argv)
    rows = []
    for s in args.sizes.split(","):
        r = bench(parse_size(s), n=args.n, workers=args.workers, preset=args.preset,
                  seed=args.seed)
        rows.append(r)
        print(f"{r['size']:>10s} ({r['megapixels']:5.2f} MP)  workers={r['workers']}  "
              f"{r['photos']} photos in {r['seconds']:.1f} s = {r['photos_per_s']:.2f} photos/s"
              f"  peak RSS/worker {r['peak_rss_mb_per_worker']} MB  CPU {r['cpu_s_per_photo']:.2f}"
              f" s/photo  (load average {r['load_avg_1min']})", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(rows, indent=1) + "\n")
        write_run_info(args.out, {"command": " ".join(sys.argv), **vars(args)},
                       data_hashes={})
    return 0


if __name__ == "__main__":
    sys.exit(main())
