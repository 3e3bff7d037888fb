"""The analogue of the reference paper's Table 1, with a stage ablation.

For each split of a paired folder (see ``photorad.data.paired``; made by
``train/train_restorer.py``), count, mean ± sd of PSNR and SSIM (vs the original) for:

(a) ``warp``       — the photo rectified with the ground-truth corners (no restoration);
(b) ``warp+tone``  — (a) plus the best *global* tone curve fitted to the original of that very
                     image (an oracle: the conditional mean of the original per input grey level,
                     64 bins, linearly interpolated) — the most any tone-only fix could give;
(c) each model     — (a) restored by the given checkpoint through :class:`photorad.restore.Restorer`.

Usage::

    python eval/quality_table.py --pairs runs/pairs_typical \
        --model msunet_s=runs/restore_msunet_s/best.safetensors \
        --model dncnn_s=runs/restore_dncnn_s/best.safetensors --out results/quality/typical

Writes ``quality_table.{md,csv,json}``, ``per_image.csv``, ``before_after.png`` (photo ROI |
restored | original | 4 × |restored − original|, one row per image) and ``run_info.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from photorad.data.paired import load_pairs
from photorad.io import save_png
from photorad.metrics import conditional_mean_curve, psnr, ssim
from photorad.provenance import hash_folder, write_run_info
from photorad.restore import Restorer


def tone_fit_oracle(rect: np.ndarray, orig: np.ndarray, *, bins: int = 64) -> np.ndarray:
    """Best global tone curve (per-grey-level conditional mean of ``orig``) applied to ``rect``."""
    centres, means = conditional_mean_curve(rect, orig, bins=bins)
    if len(centres) < 2:
        return np.full_like(rect, float(orig.mean()))
    return np.interp(rect, centres, means).astype(np.float32)


def summarise(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def figure(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, height: int = 256) -> np.ndarray:
    """Stack rows of (photo ROI | restored | original | 4×|difference|) at a common height."""
    import cv2

    strips = []
    for rect, restored, orig in rows:
        scale = height / rect.shape[0]
        w = max(1, round(rect.shape[1] * scale))
        diff = np.clip(4.0 * np.abs(restored - orig), 0, 1)
        tiles = [cv2.resize(t, (w, height), interpolation=cv2.INTER_AREA)
                 for t in (rect, restored, orig, diff)]
        gap = np.ones((height, 4), np.float32)
        strips.append(np.hstack([tiles[0], gap, tiles[1], gap, tiles[2], gap, tiles[3]]))
    width = max(s.shape[1] for s in strips)
    padded = [np.pad(s, ((0, 4), (0, width - s.shape[1])), constant_values=1.0) for s in strips]
    return np.vstack(padded)


def model_rows(models: dict[str, Restorer]) -> list[str]:
    """Markdown rows: cost and training budget of each evaluated model (from its sidecar)."""
    from photorad.restore import conv_macs

    rows = ["| model | architecture | MAC / pixel (256²) | parameters | train steps | "
            "train CPU s | threads | train wall s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in models.items():
        m = dict(getattr(r.meta, "metrics", {}) or {})
        macs = conv_macs(r.model, height=256, width=256) / 256**2
        params = sum(p.numel() for p in r.model.parameters())
        rows.append(f"| {name} | {getattr(r.meta, 'architecture', '?')} | {macs / 1e3:.1f} k | "
                    f"{params / 1e6:.2f} M | {m.get('step', '?')} | "
                    f"{m.get('train_cpu_seconds', '?')} | {m.get('threads', '?')} | "
                    f"{m.get('train_seconds', '?')} |")
    return [*rows, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", required=True, help="paired folder (pairs.csv, rect/, orig/)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                   help="restorer checkpoint to evaluate (repeatable)")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--limit", type=int, default=None, help="at most this many images per split")
    p.add_argument("--figure-split", default="test")
    p.add_argument("--figure-n", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--title", default="", help="heading for the Markdown table")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Restorer] = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = Restorer.from_checkpoint(path, name=name)
    stages = ["warp", "warp+tone", *models]

    per_image: list[dict[str, Any]] = []
    fig_rows = []
    for split in args.splits:
        pairs = load_pairs(args.pairs, split=split, limit=args.limit)
        for k, pair in enumerate(pairs):
            outputs = {"warp": pair.rect, "warp+tone": tone_fit_oracle(pair.rect, pair.orig)}
            for name, r in models.items():
                outputs[name] = r.restore(pair.rect)
            for stage, img in outputs.items():
                per_image.append({
                    "split": split, "id": pair.id, "stage": stage,
                    "psnr": psnr(pair.orig, img, data_range=1.0),
                    "ssim": ssim(pair.orig, img, data_range=1.0),
                })
            if split == args.figure_split and k < args.figure_n and models:
                last = list(models)[0]
                fig_rows.append((pair.rect, outputs[last], pair.orig))
        print(f"{split}: {len(pairs)} images", flush=True)

    table = []
    for split in args.splits:
        base = {r["id"]: r for r in per_image if r["split"] == split and r["stage"] == "warp"}
        for stage in stages:
            rs = [r for r in per_image if r["split"] == split and r["stage"] == stage]
            if not rs:
                continue
            pm, ps = summarise([r["psnr"] for r in rs])
            sm, ss = summarise([r["ssim"] for r in rs])
            gain = summarise([r["psnr"] - base[r["id"]]["psnr"] for r in rs])
            table.append({"split": split, "stage": stage, "count": len(rs),
                          "psnr_mean": pm, "psnr_sd": ps, "ssim_mean": sm, "ssim_sd": ss,
                          "psnr_gain_mean": gain[0], "psnr_gain_sd": gain[1]})

    cmd = "python eval/quality_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [f"## {args.title}" if args.title else "## Restoration quality", "",
          f"Command: `{cmd}`", "",
          "| split | stage | n | PSNR dB (mean ± sd) | SSIM (mean ± sd) | PSNR gain vs warp dB |",
          "|---|---|---:|---:|---:|---:|"]
    for t in table:
        md.append(f"| {t['split']} | {t['stage']} | {t['count']} | {t['psnr_mean']:.2f} ± "
                  f"{t['psnr_sd']:.2f} | {t['ssim_mean']:.3f} ± {t['ssim_sd']:.3f} | "
                  f"{t['psnr_gain_mean']:+.2f} ± {t['psnr_gain_sd']:.2f} |")
    md += ["", "(a) warp: GT-corner rectification only; (b) warp+tone: + per-image oracle global "
           "tone curve fitted to the original (upper bound of any tone-only fix); other rows: "
           "restorers. Research use only — not a diagnosis.", ""]
    if models:
        md += model_rows(models)
    (out / "quality_table.md").write_text("\n".join(md))
    with (out / "quality_table.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(table[0]))
        wr.writeheader()
        wr.writerows(table)
    with (out / "per_image.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(per_image[0]))
        wr.writeheader()
        wr.writerows(per_image)
    meta = {name: r.info() for name, r in models.items()}
    (out / "quality_table.json").write_text(json.dumps(
        {"command": cmd, "rows": table, "models": meta}, indent=2) + "\n")
    if fig_rows:
        save_png(out / "before_after.png", figure(fig_rows))
    write_run_info(out, vars(args), data_hashes={"pairs": hash_folder(args.pairs,
                                                                      pattern="*/*.png")})
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
