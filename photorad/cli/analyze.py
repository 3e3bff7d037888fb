"""`photorad analyze PHOTO -o DIR`: the whole pipeline on one phone photo."""

from __future__ import annotations

import argparse
from pathlib import Path

from photorad.cli._util import add_model_arguments, parse_corners

NAME = "analyze"
HELP = "rectify, restore and score one phone photo (writes result.json, rectified/restored.png)"
DESCRIPTION = """\
Run the pipeline on one phone photo and write, into DIR:
  result.json    the same JSON schema as the API's POST /v1/analyze (images by file name)
  rectified.png  the displayed image, perspective undone (8-bit grey)
  restored.png   the restored image (8-bit grey)

Corners (TL, TR, BR, BL photo pixels) are detected unless --corners is given.
Research use only — not a diagnosis."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, help="phone photo (JPEG, PNG, HEIC/HEIF, WebP)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--corners", type=parse_corners, default=None,
                   help="x1,y1,x2,y2,x3,y3,x4,y4 (TL, TR, BR, BL) instead of detection")
    add_model_arguments(p)
    p.add_argument("--no-quality", action="store_true", help="skip capture-quality checks")
    p.add_argument("--inline-images", action="store_true",
                   help="also embed the PNGs as base64 in result.json (as the API does)")


def run(args: argparse.Namespace) -> int:
    import json

    from photorad.io import load_photo, save_png
    from photorad.io.save import write_atomic
    from photorad.pipeline import Pipeline

    photo = load_photo(args.photo)
    if args.restorer or args.classifier:
        from photorad.classify import Classifier, default_classifier
        from photorad.restore import Restorer, default_restorer

        restorer = Restorer.from_checkpoint(args.restorer) if args.restorer else default_restorer()
        classifier = (Classifier.from_checkpoint(args.classifier) if args.classifier
                      else default_classifier())
        pipeline = Pipeline(restorer, classifier, quality=not args.no_quality,
                            max_side=args.max_side)
    else:
        pipeline = Pipeline.from_defaults(quality=not args.no_quality, max_side=args.max_side)
    analysis = pipeline.analyze(photo, args.corners)
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
    print(f"score (probability of malignancy): {analysis.score:.3f} — {analysis.disclaimer}")
    print(f"wrote {out / 'result.json'}, {out / 'rectified.png'}, {out / 'restored.png'} "
          f"({analysis.timings_ms['total']:.0f} ms)")
    return 0
