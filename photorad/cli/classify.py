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
ROIs, so each image's lesion is found by the shipped localizer and its ROI is scored
(`"roi": "lesion"`, with the `lesion` box). --bbox X,Y,W,H gives the box by hand (one image);
--whole scores the whole image as it is (for an image that already is the ROI).

An image in which no lesion is found gets `"score": null` and a `refusal` with the reason; the
exit status is then 6 (after every image has been scored).

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
    p.add_argument("--whole", action="store_true",
                   help="score each whole image (no lesion localizer): for ROI images")
    p.add_argument("--json", metavar="OUT.json", default=None,
                   help="also write the results as a JSON array to this file")
    p.add_argument("--device", default=None, help="cpu, cuda … (default: auto)")


def _score_one(clf, img, args: argparse.Namespace, localizer) -> dict:
    """``score``/``roi``/``lesion``/``refusal`` of one image as the JSON row fields."""
    if args.whole:
        return {"score": round(clf.score(img), 6), "roi": "whole image", "lesion": None}
    if args.bbox is not None:
        from photorad.lesion import user_lesion

        les = user_lesion(args.bbox, img.shape)
    else:
        found = localizer.locate(img)
        if found.lesion is None:
            from photorad.lesion import NO_LESION_ADVICE

            return {"score": None, "roi": None, "lesion": None,
                    "refusal": {"stage": "lesion", "reason": f"No score: {found.reason}.",
                                "advice": NO_LESION_ADVICE.replace("--lesion-box", "--bbox")}}
        les = found.lesion
    lj = les.to_json()
    lj.pop("outline", None)
    return {"score": round(clf.score(img, bbox=les.box), 6), "roi": "lesion", "lesion": lj}


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from photorad import DISCLAIMER
    from photorad.classify import Classifier, default_classifier
    from photorad.errors import ConfigError, NoLesionFoundError
    from photorad.io import load_original

    if args.bbox is not None and len(args.images) != 1:
        raise ConfigError("--bbox applies to one image; score images one at a time")
    if args.bbox is not None and args.whole:
        raise ConfigError("--bbox and --whole exclude each other")
    if args.model:
        clf = Classifier.from_checkpoint(args.model, expected_sha256=args.sha256,
                                         device=args.device)
    else:
        clf = default_classifier(device=args.device)
    localizer = None
    if not args.whole and args.bbox is None:
        from photorad.lesion import default_localizer

        localizer = default_localizer()
    results, refused = [], 0
    for path in args.images:
        img = load_original(path)
        row = {"image": str(path), **_score_one(clf, img, args, localizer),
               "model": {"name": clf.name, "sha256": clf.sha256}, "disclaimer": DISCLAIMER}
        if localizer is not None:
            row["localizer"] = localizer.info()
        refused += row["score"] is None
        results.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.json:
        from photorad.io.save import write_atomic

        out = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
        write_atomic(Path(args.json), out.encode())
    return NoLesionFoundError.exit_code if refused else 0
