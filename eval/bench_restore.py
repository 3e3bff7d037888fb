"""Speed of the restorers: ms per image, achieved GFLOP/s beside a measured fp32 matmul roof, peak RSS.

Usage::

    python eval/bench_restore.py --out results/quality            # all four architectures
    python eval/bench_restore.py --models msunet_s --sizes 512 --threads 2

Each (model, size) runs in its own child process so that peak memory (``ru_maxrss``) belongs to
that model alone; the baseline RSS of a child that only imported torch and built the model is
subtracted as well as reported. For every model the three execution paths (eager,
channels_last, ONNX Runtime) are timed; the ``Restorer`` row is the path it selects by measurement.
Random weights are used unless ``--ckpt NAME=PATH`` is given (speed does not depend on them).
Nothing here is asserted; figures are printed and written as JSON + Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODELS = ("dncnn", "dncnn_s", "msunet", "msunet_s")


def matmul_roof(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GEMM throughput (GFLOP/s) of ``torch.mm`` on n×n matrices, current threads."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _time(fn, repeats: int, *, warmup: bool = True) -> float:
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def worker(model_name: str, size: int, threads: int, ckpt: str | None, repeats: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from photorad.models import create_model
    from photorad.models.checkpoint import load_checkpoint
    from photorad.restore import Restorer, conv_macs

    if ckpt:
        model, _meta = load_checkpoint(ckpt, task="restore")
    else:
        torch.manual_seed(0)
        model = create_model(model_name).eval()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    img = np.random.default_rng(0).random((size, size), dtype=np.float32)
    row: dict[str, Any] = {"model": model_name, "size": size, "threads": threads}
    restorer = Restorer(model, tile=1024, overlap=96, backend="auto", name=model_name)
    macs = conv_macs(restorer.model, height=min(size, 1024), width=min(size, 1024))
    flops = 2.0 * macs * (size * size) / (min(size, 1024) ** 2)
    row["mac_per_px"] = round(macs / min(size, 1024) ** 2)
    row["params"] = sum(p.numel() for p in model.parameters())
    chosen = restorer.select_backend(probe=min(size, 256))
    row["chosen"] = chosen
    paths = restorer.candidates() if size <= 512 else [chosen]
    for name in paths:
        r = Restorer(model, tile=1024, overlap=96, backend=name, name=model_name)
        # Large images: the backend is already warm from select_backend; skip a second full run.
        t = _time(lambda r=r: r.restore(img), repeats, warmup=size <= 512)
        row[f"ms_{name}"] = round(t * 1e3, 1)
        row[f"gflops_{name}"] = round(flops / t / 1e9, 1)
    row["ms_restorer"] = row[f"ms_{chosen}"]
    row["gflops_restorer"] = row[f"gflops_{chosen}"]
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["base_rss_mb"] = round(base_rss, 1)
    return row


def to_markdown(rows: list[dict], roof: float, threads: int) -> str:
    lines = [
        f"fp32 matmul roof (torch.mm 2048², {threads} threads): **{roof:.0f} GFLOP/s**",
        "",
        "| model | MAC/px | size | eager ms | channels_last ms | ONNX RT ms | Restorer (path) ms "
        "| GFLOP/s | % roof | peak RSS MB (base) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        def g(k: str, r: dict = r) -> str:
            return f"{r[k]:.0f}" if k in r else "–"

        lines.append(
            f"| {r['model']} | {r['mac_per_px']:,} | {r['size']}² | {g('ms_eager')} | "
            f"{g('ms_channels_last')} | {g('ms_onnx')} | {r['ms_restorer']:.0f} ({r['chosen']}) | "
            f"{r['gflops_restorer']:.0f} | {100 * r['gflops_restorer'] / roof:.0f} % | "
            f"{r['peak_rss_mb']:.0f} ({r['base_rss_mb']:.0f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=[512, 2048])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="timed runs (best is kept)")
    p.add_argument("--ckpt", nargs="*", default=[], help="NAME=PATH checkpoints to time")
    p.add_argument("--out", help="folder for bench_restore.json / .md")
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    ckpts = dict(kv.split("=", 1) for kv in args.ckpt)
    if args.worker:
        m, s = args.worker[0], int(args.worker[1])
        print(json.dumps(worker(m, s, args.threads, ckpts.get(m), args.repeats)))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    roof = matmul_roof()
    print(f"fp32 matmul roof: {roof:.0f} GFLOP/s ({args.threads} threads)", flush=True)
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for m in args.models:
        for s in args.sizes:
            cmd = [sys.executable, __file__, "--worker", m, str(s), "--threads",
                   str(args.threads), "--repeats", str(1 if s > 1024 else args.repeats)]
            cmd += ["--ckpt", *args.ckpt] if args.ckpt else []
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                print(f"{m} {s}: FAILED\n{res.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    roof_after = matmul_roof()
    md = to_markdown(rows, max(roof, roof_after), args.threads)
    print(md)
    if args.out:
        from photorad.provenance import write_run_info

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"roof_gflops_before": roof, "roof_gflops_after": roof_after,
                   "threads": args.threads, "rows": rows,
                   "command": " ".join(["python", "eval/bench_restore.py", *(argv or sys.argv[1:])])}
        (out / "bench_restore.json").write_text(json.dumps(payload, indent=2) + "\n")
        (out / "bench_restore.md").write_text(
            f"# Restorer speed\n\nCommand: `{payload['command']}`\n\n" + md)
        write_run_info(out, vars(args), name="bench_run_info.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
