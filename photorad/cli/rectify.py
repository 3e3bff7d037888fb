"""`photorad rectify`: find the displayed image in a phone photo and undo the perspective."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from photorad.cli._util import parse_corners, parse_size

NAME = "rectify"
HELP = "find the displayed image in a phone photo, check capture quality and undo perspective"
DESCRIPTION = """\
Find the displayed medical image in a phone photo (or use --corners), report capture quality
(blur, glare, exposure, keystone, resolution) and write the rectified grey image as PNG.

Corners are TL,TR,BR,BL in photo pixels (x,y), after EXIF orientation, at the outer edges of the
displayed image. Exit status 3 with a one-line reason when no image area is found.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, metavar="PHOTO", help="phone photo (JPEG/PNG/HEIC/WebP)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="ROI.png",
                   help="rectified image (PNG)")
    p.add_argument("--corners", type=parse_corners, metavar="x1,y1,...,x4,y4",
                   help="use these corners (TL,TR,BR,BL, photo px) instead of detection")
    p.add_argument("--size", type=parse_size, metavar="WxH",
                   help="output size (default: the image area's own size in the photo)")
    p.add_argument("--json", type=Path, metavar="OUT.json",
                   help="write corners, score, method and quality report as JSON")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                   help="PNG bit depth (default 8)")


def run(args: argparse.Namespace) -> int:
    from photorad.io import load_photo, save_png
    from photorad.rectify import Quad, detect, quality, validate_corners, warp

    photo = load_photo(args.photo)
    h, w = photo.shape[:2]
    if args.corners is not None:
        quad = Quad(validate_corners(args.corners, image_size=(w, h)), score=1.0, method="manual")
    else:
        quad = detect(photo)
    report = quality(photo, quad, original_size=args.size)
    roi = warp(photo, quad, size=args.size)
    save_png(args.out, roi, bit_depth=args.bit_depth)
    doc = {**quad.to_dict(), "size": [roi.shape[1], roi.shape[0]], "quality": report.to_dict()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    bad = [k for k, c in report.checks.items() if c.status != "pass"]
    print(
        f"{args.out}: {roi.shape[1]}x{roi.shape[0]} px, method {quad.method}, "
        f"score {quad.score:.2f}, quality {report.status}"
        + (f" ({', '.join(f'{k} {report[k].status}' for k in bad)})" if bad else "")
    )
    return 0
