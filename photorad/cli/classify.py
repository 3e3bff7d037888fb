"""`photorad classify`: benign/malignant score (probability of malignant) for grey images."""

from __future__ import annotations

import argparse

NAME = "classify"
HELP = "score images: probability of malignant (research use only — not a diagnosis)"
DESCRIPTION = """\
Score breast-ultrasound images with a classifier: one JSON object per image on stdout with
`score` (probability of malignant), `model` (name + SHA-256) and the disclaimer.

Images are originals (PNG/JPEG/TIFF/DICOM) or already rectified/restored photos; phone photos
go through `photorad analyze`/the pipeline first. The shipped CPU model was trained on lesion
ROIs: pass an ROI image, or --bbox X,Y,W,H to crop one (one image only).

Research use only — not a diagnosis."""


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("bbox must be 4 numbers: X,Y,W,H (pixels)") from None
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError("bbox must be 4 numbers X,Y,W,H with W, H > 0")
    return vals[0], vals[1], vals[2], vals[3]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMG", help="image files to score")
    p.add_argument("--model", metavar="CKPT", default=None,
                   help="classifier .safetensors (with .json sidecar); default: shipped CPU model")
    p.add_argument("--sha256", default=None, help="refuse --model unless its SHA-256 matches")
    p.add_argument("--bbox", type=_parse_bbox, default=None, metavar="X,Y,W,H",
                   help="lesion box in image pixels; the model's ROI crop is taken around it")
    p.add_argument("--json", metavar="OUT.json", default=None,
                   help="also write the results as a JSON array to this file")
    p.add_argument("--device", default=None, help="cpu, cuda … (default: auto)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from photorad import DISCLAIMER
    from photorad.classify import Classifier, default_classifier
    from photorad.errors import ConfigError
    from photorad.io import load_original

    if args.bbox is not None and len(args.images) != 1:
        raise ConfigError("--bbox applies to one image; score images one at a time")
    if args.model:
        clf = Classifier.from_checkpoint(args.model, expected_sha256=args.sha256,
                                         device=args.device)
    else:
        clf = default_classifier(device=args.device)
    results = []
    for path in args.images:
        img = load_original(path)
        score = clf.score(img, bbox=args.bbox)
        row = {"image": str(path), "score": round(score, 6),
               "model": {"name": clf.name, "sha256": clf.sha256},
               "disclaimer": DISCLAIMER}
        results.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.json:
        from photorad.io.save import write_atomic

        out = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
        write_atomic(Path(args.json), out.encode())
    return 0
