#!/usr/bin/env python
"""Lesion localizer evaluation: Dice, IoU and box IoU on patients it never saw.

    python eval/lesion_eval.py --out results/lesion                 # test patients
    python eval/lesion_eval.py --split val --out runs/lesion_val    # its validation patients

Images: the shipped classifier's test patients (its sidecar's ``extra.test_patients``; the
localizer was trained on none of them), or with ``--split val`` the localizer's own validation
patients (for choosing its confidence threshold, never the test patients). Two domains:

* ``original`` — the original image;
* ``restored`` — a simulated ``--preset`` phone photo of the whole frame, detected
  (``photorad.rectify.detect``; ground-truth corners where detection fails, counted), rectified
  at the pipeline's size cap and restored by the shipped restorer: what ``Pipeline.analyze``
  hands the localizer. The ground-truth mask is resized to the rectified image.

Segmentation figures use the localizer's most probable area whatever its confidence (``Dice``
0 when it has none); ``found`` is the share the pipeline would use at the shipped confidence
threshold, and ``*_found`` figures are over those. Writes ``summary.{json,md}``,
``per_image.csv``, ``cases.png`` (best and worst restored cases) and ``run_info.json``.
Anchor: the BUS-Set benchmark's best model reached Dice 0.851 (1154 images, 5-fold CV).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from photorad import DISCLAIMER
from photorad.data.bus_bra import load_records
from photorad.data.lesion_masks import load_mask, mask_path
from photorad.data.paths import find_shared_data
from photorad.errors import ConfigError, NoScreenFoundError, PhotoradError
from photorad.provenance import hash_files, write_run_info

DOMAINS = ("original", "restored")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/lesion")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--model", default=None, help="localizer checkpoint (default: shipped)")
    p.add_argument("--preset", default="typical")
    p.add_argument("--photo-size", default="1600x1200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="first N images (smoke runs)")
    p.add_argument("--workers", type=int, default=2)
    return p


def pick_records(records: list[Any], split: str, seed: int) -> list[Any]:
    """Test patients of the shipped classifier, or the localizer's validation patients."""
    if split == "test":
        from photorad.models.checkpoint import read_meta
        from photorad.models.weights import shipped_path

        held = {str(g) for g in read_meta(shipped_path("classifier")).extra["test_patients"]}
        return [r for r in records if r.group in held]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "train"))
    from train_lesion import split_pool  # the trainer's own split, so the same patients

    return split_pool(records, seed)[1]


def seg_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, IoU and box IoU of two boolean masks (0 where the prediction is empty)."""
    from photorad.lesion import box_of

    inter = float(np.count_nonzero(pred & truth))
    tot = float(pred.sum() + truth.sum())
    union = float(np.count_nonzero(pred | truth))
    out = {"dice": 2 * inter / tot if tot else 1.0, "iou": inter / union if union else 1.0,
           "box_iou": 0.0}
    if pred.any() and truth.any():
        a, b = box_of(pred), box_of(truth)
        iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        i = iw * ih
        out["box_iou"] = i / (a[2] * a[3] + b[2] * b[3] - i)
    return out


_STATE: dict[str, Any] = {}


def _setup(model: str | None) -> None:
    import torch

    from photorad.lesion import Localizer, default_localizer
    from photorad.restore import default_restorer

    torch.set_num_threads(1)
    _STATE["loc"] = Localizer.from_checkpoint(model) if model else default_localizer()
    _STATE["restorer"] = default_restorer()


def _restored_view(orig: np.ndarray, job: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """What the pipeline hands the localizer for a photo of ``orig``; and whether GT corners."""
    from photorad.pipeline import capped_size
    from photorad.rectify import detect, warp
    from photorad.simulate import simulate_photo

    sim = simulate_photo(orig, preset=job["preset"], seed=job["seed"], size=job["size"])
    try:
        corners, fallback = detect(sim.photo).corners, False
    except NoScreenFoundError:
        corners, fallback = sim.corners, True
    rect = warp(sim.photo, corners, size=capped_size(corners, job["max_side"]))
    return np.clip(_STATE["restorer"].restore(rect), 0, 1).astype(np.float32), fallback


def _one(job: dict[str, Any]) -> dict[str, Any]:
    import cv2

    from photorad.io import load_original
    from photorad.lesion import lesion_from_prob

    loc = _STATE["loc"]
    orig = load_original(job["path"])
    truth = load_mask(job["mask"], shape=orig.shape) > 0
    row: dict[str, Any] = {"id": job["id"], "patient": job["group"]}
    views: dict[str, Any] = {}
    for dom in DOMAINS:
        if dom == "original":
            img, t, fallback = orig, truth, False
        else:
            img, fallback = _restored_view(orig, job)
            t = cv2.resize(truth.astype(np.uint8), img.shape[::-1],
                           interpolation=cv2.INTER_NEAREST) > 0
        prob = loc.prob(img)
        best = lesion_from_prob(prob, min_confidence=0.0, min_area_fraction=0.0)
        shipped = loc.judge(img, prob)
        pred = best.lesion.mask if best.lesion is not None else np.zeros_like(t)
        for k, v in seg_scores(pred, t).items():
            row[f"{dom}_{k}"] = v
        row[f"{dom}_confidence"] = best.confidence
        row[f"{dom}_found"] = int(shipped.lesion is not None)
        if dom == "restored":
            row["fallback"] = int(fallback)
            views = {"img": cv2.resize(img, (160, 128)), "truth": t, "pred": pred}
    row["_view"] = views
    return row


def _mean_ci(v: np.ndarray, seed: int) -> dict[str, float]:
    from photorad.metrics import bootstrap_ci

    est, lo, hi = bootstrap_ci(np.mean, v, n_boot=2000, seed=seed)
    return {"mean": float(est), "sd": float(v.std(ddof=1)), "ci95": [float(lo), float(hi)],
            "n": int(len(v))}


def summarise(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dom in DOMAINS:
        d: dict[str, Any] = {}
        found = np.array([r[f"{dom}_found"] for r in rows], dtype=bool)
        for k in ("dice", "iou", "box_iou"):
            v = np.array([r[f"{dom}_{k}"] for r in rows], dtype=np.float64)
            d[k] = _mean_ci(v, seed)
            if found.sum() > 1:
                d[f"{k}_found"] = _mean_ci(v[found], seed)
        d["found_rate"] = float(found.mean())
        out[dom] = d
    return out


def _outline(img: np.ndarray, mask: np.ndarray, colour: tuple[float, ...]) -> None:
    import cv2

    m = cv2.resize(mask.astype(np.uint8), img.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, contours, -1, colour, 1)


def figure(rows: list[dict[str, Any]], path: Path, *, k: int = 5) -> None:
    """Best and worst ``k`` restored-photo cases: truth in green, localizer in yellow."""
    import cv2

    from photorad.io import save_png

    order = sorted(rows, key=lambda r: r["restored_dice"])
    picks = order[-k:][::-1] + order[:k]
    tiles = []
    for r in picks:
        v = r["_view"]
        # uint8: OpenCV draws text on 8-bit images only
        t = np.repeat(np.rint(np.clip(v["img"], 0, 1) * 255).astype(np.uint8)[:, :, None], 3, 2)
        _outline(t, v["truth"], (50, 255, 50))
        _outline(t, v["pred"], (255, 215, 0))
        t = np.vstack([t, np.zeros((16, t.shape[1], 3), np.uint8)])
        cv2.putText(t, f"{r['id']} Dice {r['restored_dice']:.2f}", (2, t.shape[0] - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(t)
    grid = np.vstack([np.hstack(tiles[:k]), np.hstack(tiles[k:])])
    cap = np.zeros((18, grid.shape[1], 3), np.uint8)
    cv2.putText(cap, f"top: best {k}, bottom: worst {k} (restored photos); green truth, yellow "
                "localizer. " + DISCLAIMER, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                (255, 255, 255), 1, cv2.LINE_AA)
    save_png(path, np.vstack([grid, cap]))


def write_outputs(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    cols = [c for c in rows[0] if not c.startswith("_")]
    with (out / "per_image.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Lesion localizer — {summary['split']} patients", "", DISCLAIMER, "",
             f"Command: `{summary['command']}`", "",
             f"{summary['n_images']} images of {summary['n_patients']} patients; localizer "
             f"`{summary['localizer']['name']}` ({summary['localizer']['sha256'][:12]}…); photos: "
             f"`{summary['preset']}` {summary['photo_size']}, detection fell back to true corners "
             f"for {summary['fallbacks']}. Wall time {summary['wall_s']:.0f} s.", "",
             "| input | Dice | IoU | box IoU | found | Dice (found) |", "|---|---|---|---|---|---|"]
    for dom in DOMAINS:
        d = summary["domains"][dom]

        def f(m: dict[str, Any]) -> str:
            return f"{m['mean']:.3f} ± {m['sd']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"

        fd = d.get("dice_found")
        lines.append(f"| {dom} | {f(d['dice'])} | {f(d['iou'])} | {f(d['box_iou'])} | "
                     f"{100 * d['found_rate']:.1f} % | {f(fd) if fd else '—'} |")
    lines += ["", "mean ± sd [bootstrap 95 % CI]. Anchor: BUS-Set benchmark best Dice 0.851.",
              "", "![best and worst cases](cases.png)"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    root = Path(args.data_root) if args.data_root else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or put it in ../shared/data")
    recs = pick_records(load_records(root), args.split, args.seed)
    if args.limit:
        recs = recs[: args.limit]
    size = tuple(int(v) for v in args.photo_size.lower().split("x"))
    from photorad.pipeline import DEFAULT_MAX_SIDE

    jobs = [{"id": r.id, "group": r.group, "path": str(r.path), "mask": str(mask_path(r.path)),
             "preset": args.preset, "seed": (args.seed, i), "size": size,
             "max_side": DEFAULT_MAX_SIDE} for i, r in enumerate(recs)]
    with ProcessPoolExecutor(args.workers, initializer=_setup, initargs=(args.model,)) as ex:
        rows = list(ex.map(_one, jobs, chunksize=4))
    _setup(args.model)
    loc = _STATE["loc"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"split": args.split, "n_images": len(rows),
               "n_patients": len({r["patient"] for r in rows}), "preset": args.preset,
               "photo_size": args.photo_size, "fallbacks": int(sum(r["fallback"] for r in rows)),
               "localizer": loc.info(), "min_confidence": loc.min_confidence,
               "domains": summarise(rows, args.seed), "wall_s": time.time() - t0,
               "command": "python eval/lesion_eval.py " + " ".join(argv or sys.argv[1:]),
               "disclaimer": DISCLAIMER}
    conf = np.array([r["restored_confidence"] for r in rows])
    # the rule behind photorad.lesion.MIN_CONFIDENCE (read it on --split val only)
    summary["suggested_min_confidence"] = float(np.floor(np.percentile(conf, 5) / 0.05) * 0.05)
    write_outputs(out, rows, summary)
    figure(rows, out / "cases.png")
    write_run_info(out, vars(args), data_hashes={"bus-bra": hash_files([j["path"] for j in jobs])})
    print(json.dumps({d: {k: round(v["mean"], 4) for k, v in s.items() if isinstance(v, dict)}
                      | {"found_rate": s["found_rate"]} for d, s in summary["domains"].items()},
                     indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"lesion_eval: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
