#!/usr/bin/env python
"""Classifier throughput (images/s) on this machine, each model at its input size.

    python eval/bench_classify.py [--threads 2] [--batch 1 16] [--seconds 5] [--out results/auroc]

Times the network forward pass (plus normalisation) on random prepared inputs with
``torch.inference_mode``; the shipped CPU model is used when present, the Xception at 299 px has
random weights (speed does not depend on them). Prints one JSON line per (model, batch) and, with
``--out``, writes ``bench_classify.json`` + ``run_info.json``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def bench(model, spec, *, batch: int, seconds: float, seed: int = 0) -> dict:
    from photorad.classify import predict_proba

    rng = np.random.default_rng(seed)
    x = rng.random((batch, spec.size, spec.size), dtype=np.float32)
    predict_proba(model, x, spec=spec, batch_size=batch, device="cpu")  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        predict_proba(model, x, spec=spec, batch_size=batch, device="cpu")
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    return {"images": n, "seconds": round(dt, 3), "images_per_s": round(n / dt, 2),
            "ms_per_image": round(1000 * dt / n, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--seconds", type=float, default=5.0, help="timing budget per measurement")
    p.add_argument("--models", nargs="+", default=["classifier_cpu", "xception"],
                   help="'classifier_cpu' (shipped), a registry name, or a .safetensors path")
    p.add_argument("--size", type=int, default=None, help="input size for registry models")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import torch

    from photorad.classify import Classifier, PreprocessSpec, default_classifier
    from photorad.models import create_model
    from photorad.provenance import machine_info

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        if name == "classifier_cpu":
            clf = default_classifier(device="cpu")
            model, spec, label = clf.model, clf.spec, f"{clf.name} ({clf.sha256[:12]})"
        elif name.endswith(".safetensors"):
            clf = Classifier.from_checkpoint(name, device="cpu")
            model, spec, label = clf.model, clf.spec, f"{clf.name} ({clf.sha256[:12]})"
        else:
            torch.manual_seed(0)
            model = create_model(name).eval()
            size = args.size or (299 if name == "xception" else 128)
            spec, label = PreprocessSpec(size=size), f"{name} (random weights)"
        params = sum(t.numel() for t in model.parameters())
        for b in args.batch:
            r = {"model": label, "input": f"{spec.size}x{spec.size}", "batch": b,
                 "params_M": round(params / 1e6, 3), "threads": args.threads,
                 **bench(model, spec, batch=b, seconds=args.seconds)}
            rows.append(r)
            print(json.dumps(r), flush=True)
    load = os.getloadavg()
    info = {"results": rows, "machine": machine_info(), "load_avg_1_5_15": load,
            "command": "python eval/bench_classify.py " + " ".join(argv or sys.argv[1:])}
    print(f"load average during run (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
          file=sys.stderr)
    if args.out:
        from photorad.provenance import write_run_info

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_classify.json").write_text(json.dumps(info, indent=2) + "\n")
        write_run_info(out, vars(args), name="bench_classify.run_info.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
