"""`photorad analyze PHOTO -o DIR`: the whole pipeline on one phone photo."""

from __future__ import annotations

import argparse
from pathlib import Path

from photorad.cli._util import add_model_arguments, parse_box, parse_corners

NAME = "analyze"
HELP = "rectify, restore and score one phone photo (writes result.json, rectified/restored.png)"
DESCRIPTION = """\
Run the pipeline on one phone photo and write, into DIR:
  result.json    the same JSON schema as the API's POST /v1/analyze (images by file name)
  rectified.png  the displayed image, perspective undone (8-bit grey)
  restored.png   the restored image (8-bit grey)

Corners (TL, TR, BR, BL photo pixels) are detected unless --corners is given. The lesion is
found in the restored image unless --lesion-box is given; the score is the classifier's for the
lesion ROI. When no lesion is found (and no box given) there is no score: result.json says why
("refusal"), the images are still written, and the exit status is 6.
Research use only — not a diagnosis."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, help="phone photo (JPEG, PNG, HEIC/HEIF, WebP)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--corners", type=parse_corners, default=None,
                   help="x1,y1,x2,y2,x3,y3,x4,y4 (TL, TR, BR, BL) instead of detection")
    p.add_argument("--lesion-box", type=parse_box, default=None, metavar="X,Y,W,H",
                   help="lesion box in rectified-image pixels instead of the localizer's")
    add_model_arguments(p)
    p.add_argument("--no-quality", action="store_true", help="skip capture-quality checks")
    p.add_argument("--inline-images", action="store_true",
                   help="also embed the PNGs as base64 in result.json (as the API does)")


def run(args: argparse.Namespace) -> int:
    import json

    from photorad.classify import Classifier
    from photorad.errors import NoLesionFoundError
    from photorad.io import load_photo, save_png
    from photorad.io.save import write_atomic
    from photorad.pipeline import Pipeline
    from photorad.restore import Restorer

    photo = load_photo(args.photo)
    pipeline = Pipeline.from_defaults(
        quality=not args.no_quality, max_side=args.max_side,
        restorer=Restorer.from_checkpoint(args.restorer) if args.restorer else None,
        classifier=Classifier.from_checkpoint(args.classifier) if args.classifier else None)
    analysis = pipeline.analyze(photo, args.corners, lesion_box=args.lesion_box)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_png(out / "rectified.png", analysis.rectified)
    save_png(out / "restored.png", analysis.restored)
    doc = analysis.to_json(inline_images=args.inline_images,
                           image_files={"rectified": "rectified.png", "restored": "restored.png"})
    write_atomic(out / "result.json", (json.dumps(doc, indent=2) + "\n").encode())
    from photorad.pipeline import quality_messages

    q = analysis.quality or {}
    status = q.get("status", "not checked")
    print(f"corners ({analysis.quad_method}, score {analysis.quad_score:.2f}): "
          + " ".join(f"({x:.0f},{y:.0f})" for x, y in analysis.corners))
    print(f"capture quality: {status}")
    for w in quality_messages(q):
        print(f"  {w['status']}: {w['check']}: {w['message']}")
    print(f"wrote {out / 'result.json'}, {out / 'rectified.png'}, {out / 'restored.png'} "
          f"({analysis.timings_ms['total']:.0f} ms)")
    if analysis.refusal is not None:
        print(f"{analysis.refusal.reason} To score it: {analysis.refusal.advice}.")
        return NoLesionFoundError.exit_code
    les = analysis.lesion
    if les is not None:
        x, y, w, h = les.box
        print(f"lesion ({les.source}, confidence {les.confidence:.2f}): box {x},{y},{w},{h} "
              "(rectified-image px)")
    print(f"score (probability of malignancy, {analysis.roi}): {analysis.score:.3f} — "
          f"{analysis.disclaimer}")
    return 0
