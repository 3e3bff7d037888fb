#!/usr/bin/env python
"""Measure the input router (``photorad.route``) on data it never saw.

    python eval/router_eval.py --out results/router [--model PATH] [--frames DIR]

(a) Held-out negatives (:mod:`photorad.data.negatives`, ``split="eval"``: scikit-image images,
    pydicom groups, Liberation-font pages, viewer seeds and texture families the router never
    trained on, real phone photos of a monitor), each file image also as a simulated ``typical``
    phone photo, rectified with the true corners and restored: share refused, per source.
(b) Breast ultrasound of the shipped classifier's *test* patients: the BUS-BRA originals, and the
    ``typical`` whole-frame phone photos (detected, rectified and restored as in the pipeline)
    cached by ``eval/auroc_cv.py`` (``--frames``: ``<id>.npz`` with ``rect``, and a
    ``restored-*/<id>.npz`` with ``restored``): share refused.
(c) Latency per 576-px image on 1 and 2 threads (median of ``--repeats``).

The threshold is the router's own (:data:`photorad.route.MIN_SCORE`, set on the router's
validation patients); nothing here tunes it. Writes ``summary.json``, ``summary.md``,
``scores.csv`` and ``run_info.json``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from photorad.errors import ConfigError, PhotoradError
from photorad.provenance import write_run_info

DEFAULT_FRAMES = "runs/auroc_holdout/frame-typical-1600x1200-s0-m576-code328db5efc1-lbee2e52ac622"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/router")
    p.add_argument("--model", default=None, help="router checkpoint (default: the shipped one)")
    p.add_argument("--threshold", type=float, default=None,
                   help="refuse below this (default: photorad.route.MIN_SCORE)")
    p.add_argument("--data-root", default=None, help="BUS-BRA folder (default: ../shared/data)")
    p.add_argument("--frames", default=DEFAULT_FRAMES,
                   help="cached whole-frame phone photos of the test patients")
    p.add_argument("--n-procedural", type=int, default=100,
                   help="held-out images per procedural source (text, viewer, texture)")
    p.add_argument("--photo-every", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=50, help="latency repeats")
    return p


def load_router(args: argparse.Namespace):
    from photorad.route import MIN_SCORE, Router, default_router

    thr = MIN_SCORE if args.threshold is None else args.threshold
    if args.model:
        return Router.from_checkpoint(args.model, threshold=thr)
    r = default_router()
    return Router(r.model, spec=r.spec, name=r.name, sha256=r.sha256, threshold=thr)


def test_patients() -> set[str]:
    from photorad.models.checkpoint import read_meta
    from photorad.models.weights import shipped_path

    held = read_meta(shipped_path("classifier")).extra.get("test_patients") or []
    if not held:
        raise ConfigError("the shipped classifier's sidecar lists no test patients")
    return {str(g) for g in held}


def _share(x: list[bool]) -> float:
    return float(np.mean(x)) if x else float("nan")


def _wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [float("nan"), float("nan")]
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(float(c - h), 4), round(float(c + h), 4)]


def _group(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in sorted({r[key] for r in rows}):
        sel = [r for r in rows if r[key] == g]
        k = sum(r["refused"] for r in sel)
        out[g] = {"n": len(sel), "refused": k, "share_refused": round(k / len(sel), 4),
                  "ci95": _wilson(k, len(sel)), "min_score": round(min(r["score"] for r in sel), 4),
                  "max_score": round(max(r["score"] for r in sel), 4)}
    return out


def held_out_sources() -> str:
    from photorad.data import negatives as N

    return (f"scikit-image {', '.join(N.SKIMAGE_EVAL)}; pydicom groups of "
            f"{', '.join(N.DICOM_EVAL)}; pages in Liberation fonts; viewer seeds ≥ 10⁶; "
            f"textures {', '.join(N.EVAL_TEXTURES)}; real phone photos of a monitor and their "
            "screenshots (shared/data/screen-photos)")


def eval_negatives(router, args: argparse.Namespace) -> list[dict[str, Any]]:
    from photorad.data.negatives import negative_set

    items = negative_set("eval", n_procedural=args.n_procedural, photo_every=args.photo_every,
                         seed=args.seed)
    scores = router.scores([neg.img for neg, _ in items])
    return [{"set": "negative", "source": neg.source, "domain": dom, "name": neg.name,
             "score": float(s), "refused": bool(s < router.threshold)}
            for (neg, dom), s in zip(items, scores, strict=True)]


def eval_ultrasound(router, args: argparse.Namespace) -> list[dict[str, Any]]:
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import find_shared_data
    from photorad.io import load_original

    root = Path(args.data_root) if args.data_root else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or put it in ../shared/data")
    held = test_patients()
    recs = [r for r in load_records(root) if r.group in held]
    rows = []
    for r in recs:
        s = router.score(load_original(r.path))
        rows.append({"set": "ultrasound", "source": "test_patients", "domain": "original",
                     "name": r.id, "score": s, "refused": bool(s < router.threshold)})
    frames = Path(args.frames)
    rest_dirs = sorted(glob.glob(str(frames / "restored-*")))
    if not frames.is_dir() or not rest_dirs:
        print(f"warning: no cached phone photos in {frames}; (b) covers originals only",
              file=sys.stderr)
        return rows
    for r in recs:
        f_rect, f_rest = frames / f"{r.id}.npz", Path(rest_dirs[0]) / f"{r.id}.npz"
        for dom, f, key in (("rectified", f_rect, "rect"), ("restored", f_rest, "restored")):
            if not f.is_file():
                continue
            with np.load(f) as z:
                img = np.clip(z[key].astype(np.float32), 0.0, 1.0)
            s = router.score(img)
            rows.append({"set": "ultrasound", "source": "test_patients", "domain": dom,
                         "name": r.id, "score": s, "refused": bool(s < router.threshold)})
    return rows


def latency(router, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(args.seed)
    img = rng.random((576, 437), dtype=np.float32)
    out: dict[str, Any] = {"image_px": [437, 576], "repeats": args.repeats,
                           "load_average_1min": round(os.getloadavg()[0], 2)}
    old = torch.get_num_threads()
    for n in (1, 2):
        torch.set_num_threads(n)
        for _ in range(5):
            router.score(img)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            router.score(img)
            ts.append((time.perf_counter() - t0) * 1e3)
        out[f"threads_{n}_ms_median"] = round(float(np.median(ts)), 2)
        out[f"threads_{n}_ms_p90"] = round(float(np.percentile(ts, 90)), 2)
    torch.set_num_threads(old)
    return out


def _md(summary: dict[str, Any]) -> str:
    a, b, c = summary["negatives"], summary["ultrasound"], summary["latency"]
    lines = [
        "# Input router — held-out evaluation",
        "",
        f"Router `{summary['router']['name']}` (SHA-256 `{summary['router']['sha256'][:12]}…`), "
        f"threshold **{summary['threshold']:.2f}** (set on validation patients; not tuned here).",
        "",
        f"Command: `{summary['command']}`",
        "",
        "## (a) Held-out negatives refused (target ≥ 99 %)",
        "",
        "Held out (never trained on): " + summary["negatives"]["held_out_sources"] + ". "
        "Domains: `image` as is; `rectified` / `restored`: shown on a simulated monitor, "
        "photographed (`typical`), rectified with the true corners, restored by the shipped "
        "restorer; `photo`: that whole photo in grey.",
        "",
        f"All: **{a['all']['refused']}/{a['all']['n']} = {100 * a['all']['share_refused']:.1f} %** "
        f"(95 % CI {100 * a['all']['ci95'][0]:.1f}–{100 * a['all']['ci95'][1]:.1f} %)",
        "",
        "| source | domain | n | refused | share | highest score |",
        "|---|---|---|---|---|---|",
    ]
    for key, v in a["by_source_domain"].items():
        src, dom = key.split("/")
        lines.append(f"| {src} | {dom} | {v['n']} | {v['refused']} | "
                     f"{100 * v['share_refused']:.1f} % | {v['max_score']:.3f} |")
    lines += ["", "## (b) Breast ultrasound refused, classifier test patients (target ≤ 2 %)", "",
              "| domain | n | refused | share | lowest score |", "|---|---|---|---|---|"]
    for dom, v in b["by_domain"].items():
        lines.append(f"| {dom} | {v['n']} | {v['refused']} | {100 * v['share_refused']:.1f} % | "
                     f"{v['min_score']:.3f} |")
    lines += ["", "## (c) Latency per 576-px image (target ≤ 20 ms)", "",
              f"1 thread: {c['threads_1_ms_median']} ms median; 2 threads: "
              f"{c['threads_2_ms_median']} ms median (p90 {c['threads_1_ms_p90']} / "
              f"{c['threads_2_ms_p90']} ms; 1-min load average {c['load_average_1min']} on a "
              "shared machine while measured).", "",
              "Research use only — not a diagnosis.", ""]
    if a.get("highest_scored"):
        lines[-2:-2] = ["## Highest-scored held-out negatives", "",
                        *[f"- {r['source']}/{r['domain']} `{r['name']}`: {r['score']:.3f}"
                          for r in a["highest_scored"]], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    router = load_router(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    neg = eval_negatives(router, args)
    us = eval_ultrasound(router, args)
    for r in neg + us:
        r["key"] = f"{r['source']}/{r['domain']}"
    k = sum(r["refused"] for r in neg)
    summary = {
        "command": "python eval/router_eval.py " + " ".join(argv if argv is not None
                                                            else sys.argv[1:]),
        "router": router.info(), "threshold": router.threshold,
        "negatives": {"all": {"n": len(neg), "refused": k, "share_refused": round(k / len(neg), 4),
                              "ci95": _wilson(k, len(neg))},
                      "held_out_sources": held_out_sources(),
                      "by_source": _group(neg, "source"),
                      "by_source_domain": _group(neg, "key"),
                      "highest_scored": [
                          {kk: r[kk] for kk in ("source", "domain", "name", "score")}
                          for r in sorted(neg, key=lambda r: -r["score"])[:8]]},
        "ultrasound": {"by_domain": _group(us, "domain"),
                       "patients": len(test_patients())},
        "latency": latency(router, args),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(_md(summary))
    with open(out / "scores.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=["set", "source", "domain", "name", "score",
                                            "refused"], extrasaction="ignore")
        wr.writeheader()
        wr.writerows(neg + us)
    write_run_info(out, vars(args))
    print(_md(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
