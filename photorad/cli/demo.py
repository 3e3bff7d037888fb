"""`photorad demo`: the whole pipeline on the embedded sample images.

For each sample image: simulate a `typical` phone photo of the whole frame on a PACS-like monitor,
detect and rectify the displayed image, restore it with the shipped CPU restorer, find the lesion
with the shipped localizer, score its ROI with the shipped CPU classifier, and compare
rectified/restored against the original (PSNR/SSIM) and the found lesion box against the
dataset's box (IoU). Writes ``report.png`` (photo with the detected quad | rectified | restored
with the lesion outline | original per case), ``report.json`` and ``run_info.json``.
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
    p.add_argument("--seed", type=int, default=0, help="random seed for the simulated photos (default 0)")
    p.add_argument("--preset", default="typical", help="simulator preset (default typical)")
    p.add_argument("--size", default="1600x1200", help="simulated photo size WxH (default 1600x1200)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _tile(img, side: int = 200):
    import cv2
    import numpy as np

    a = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    h, w = a.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((side, side, 3), np.uint8)  # uint8: OpenCV draws text on 8-bit images only
    out[: small.shape[0], : small.shape[1]] = np.rint(np.clip(small, 0, 1) * 255)
    return out


def _box_iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _lesion_case(analysis, original_shape, bbox) -> dict:
    """Lesion fields of one demo case: box, confidence, IoU with the dataset's box, refusal."""
    les = analysis.lesion
    if les is None:
        return {"lesion": None, "lesion_box_iou": None,
                "refusal": analysis.refusal.reason if analysis.refusal else None}
    h, w = analysis.restored.shape
    sx, sy = original_shape[1] / w, original_shape[0] / h  # rectified px → original px
    x, y, bw, bh = les.box
    iou = _box_iou((x * sx, y * sy, bw * sx, bh * sy), bbox)
    return {"lesion": {"box": list(les.box), "confidence": round(les.confidence, 3),
                       "source": les.source},
            "lesion_box_iou": round(iou, 3), "refusal": None}


def _with_outline(analysis):
    import cv2
    import numpy as np

    img = np.repeat(analysis.restored[:, :, None], 3, axis=2).copy()
    if analysis.lesion is not None:
        pts = np.asarray(analysis.lesion.to_json()["outline"], dtype=np.float64)
        if len(pts) >= 3:
            th = max(1, img.shape[1] // 150)
            cv2.polylines(img, [np.rint(pts).astype(np.int32)], True, (1.0, 0.8, 0.0), th)
    return img


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from tqdm import tqdm

    from photorad import DISCLAIMER
    from photorad.cli._util import parse_size
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.errors import NoScreenFoundError, NotUltrasoundError
    from photorad.io import load_original, save_png
    from photorad.metrics import psnr, ssim
    from photorad.pipeline import Pipeline
    from photorad.provenance import hash_folder, write_run_info
    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    t_start = time.perf_counter()
    size = parse_size(args.size)
    records = load_records(sample_dir())[: args.limit or None]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline.from_defaults()
    cases, rows, refused = [], [], []
    for i, r in enumerate(tqdm(records, desc="demo", unit="case", disable=args.no_progress)):
        original = load_original(r.path)
        sim = simulate_photo(original, preset=args.preset, seed=(args.seed, i), size=size)
        fallback = False
        try:
            try:
                analysis = pipe.analyze(sim.photo)
            except NoScreenFoundError:
                analysis = pipe.analyze(sim.photo, corners=sim.corners)  # ground truth, counted
                fallback = True
        except NotUltrasoundError as exc:  # the router's refusal: reported, never scored
            refused.append({"id": r.id, "label": "malignant" if r.label else "benign",
                            "refusal": str(exc)})
            continue
        # Quality against the original at its own size (the restorer's training geometry).
        h, w = original.shape
        rect_full = warp(sim.photo, analysis.corners, size=(w, h))
        rest_full = np.clip(pipe.restorer.restore(rect_full), 0, 1)
        err = np.abs(analysis.corners - sim.corners).max()
        case = {
            "id": r.id,
            "label": "malignant" if r.label else "benign",
            "score": None if analysis.score is None else round(analysis.score, 4),
            **_lesion_case(analysis, original.shape, r.bbox),
            "quad_method": "ground truth (detection failed)" if fallback else analysis.quad_method,
            "corner_error_px": round(float(err), 2),
            "quality": (analysis.quality or {}).get("status"),
            "psnr_photo_db": round(psnr(original, rect_full, data_range=1.0), 2),
            "psnr_restored_db": round(psnr(original, rest_full, data_range=1.0), 2),
            "ssim_photo": round(ssim(original, rect_full, data_range=1.0), 4),
            "ssim_restored": round(ssim(original, rest_full, data_range=1.0), 4),
            "timings_ms": analysis.timings_ms,
        }
        cases.append(case)
        photo = sim.photo.astype(np.float32) / 255.0
        cv2.polylines(photo, [np.rint(analysis.corners).astype(np.int32)], True, (0.0, 1.0, 0.2),
                      max(2, size[0] // 300))
        row = np.hstack([_tile(photo), _tile(analysis.rectified), _tile(_with_outline(analysis)),
                         _tile(original)])
        shown = "no score" if case["score"] is None else f"score {case['score']:.2f}"
        text = f"{r.id} {case['label']}  {shown}  q:{case['quality']}"
        cv2.putText(row, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 80), 1, cv2.LINE_AA)
        rows.append(row)
    if not cases:
        raise NotUltrasoundError("every sample photo was refused as not breast ultrasound: "
                                 + "; ".join(f"{c['id']}: {c['refusal']}" for c in refused))
    header = np.zeros((26, rows[0].shape[1], 3), np.uint8)
    for j, name in enumerate(("photo + detected quad", "rectified", "restored + lesion",
                              "original")):
        cv2.putText(header, name, (6 + 200 * j, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    footer = np.zeros((26, rows[0].shape[1], 3), np.uint8)
    cv2.putText(footer, DISCLAIMER, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 150, 150), 1, cv2.LINE_AA)
    save_png(out / "report.png", np.vstack([header, *rows, footer]))

    def mean(key: str) -> float:
        return round(float(np.mean([c[key] for c in cases])), 3)

    scored = [c for c in cases if c["score"] is not None]
    labels = [1 if c["label"] == "malignant" else 0 for c in scored]
    ious = [c["lesion_box_iou"] for c in cases if c["lesion_box_iou"] is not None]
    summary = {
        "n": len(cases) + len(refused),
        "refused_not_ultrasound": len(refused),
        "scored": len(scored),
        "lesion_found": len(ious),
        "median_lesion_box_iou": round(float(np.median(ious)), 3) if ious else None,
        "detected": sum(c["quad_method"] != "ground truth (detection failed)" for c in cases),
        "mean_psnr_photo_db": mean("psnr_photo_db"),
        "mean_psnr_restored_db": mean("psnr_restored_db"),
        "mean_ssim_photo": mean("ssim_photo"),
        "mean_ssim_restored": mean("ssim_restored"),
    }
    if 0 < sum(labels) < len(labels):
        from photorad.metrics import auroc

        summary["auroc_restored_scored_images"] = round(
            auroc(labels, [c["score"] for c in scored]), 3)
    report = {
        "disclaimer": DISCLAIMER,
        "stages_run": ["simulate", "detect", "quality", "rectify", "restore", "route",
                       "lesion", "classify"],
        "preset": args.preset,
        "photo_size": list(size),
        "models": pipe.models,
        "summary": summary,
        "cases": cases,
        "refused": refused,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_run_info(out, {k: str(v) for k, v in vars(args).items() if not k.startswith("_")},
                   data_hashes={"sample": hash_folder(sample_dir())})
    print(f"{'id':12s} {'label':9s} {'score':>5s} {'quad':>9s} {'PSNR photo→restored':>20s} "
          f"{'lesion IoU':>10s} quality")
    for c in cases:
        method = "GT" if c["quad_method"].startswith("ground") else "detected"
        sc = "  —  " if c["score"] is None else f"{c['score']:5.2f}"
        iou = "none" if c["lesion_box_iou"] is None else f"{c['lesion_box_iou']:.2f}"
        print(f"{c['id']:12s} {c['label']:9s} {sc} {method:>9s} "
              f"{c['psnr_photo_db']:7.2f} → {c['psnr_restored_db']:5.2f} dB {iou:>10s}   "
              f"{c['quality']}")
    for c in refused:
        print(f"{c['id']:12s} {c['label']:9s} refused: {c['refusal']}")
    print(f"mean PSNR {summary['mean_psnr_photo_db']} → {summary['mean_psnr_restored_db']} dB, "
          f"SSIM {summary['mean_ssim_photo']} → {summary['mean_ssim_restored']}; "
          f"detected {summary['detected']}/{summary['n']}; lesion found "
          f"{summary['lesion_found']}/{summary['n']} (median box IoU "
          f"{summary['median_lesion_box_iou']}), scored {summary['scored']}/{summary['n']}")
    print(f"wrote {out / 'report.png'} and {out / 'report.json'} in {report['seconds']} s. {DISCLAIMER}")
    return 0
