"""`photorad align`: register a phone photo to its original (for real paired training data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "align"
HELP = "register a phone photo to the original image it shows (features + RANSAC + ECC)"
DESCRIPTION = """\
Register a phone photo to the original image (or screenshot) it shows, even when the photo shows
only part of it: SIFT features, MAGSAC++ homography, ECC refinement. Writes the photo resampled
into the original's frame (grey PNG, the original's size) and, with --json, the photo → original
homography, the residual error (median reprojection error of the matches, original px), the ECC
correlation and the covered fraction. --mask writes where the photo covers the original.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=Path, metavar="PHOTO", help="phone photo")
    p.add_argument("original", type=Path, metavar="ORIGINAL",
                   help="original image or screenshot (PNG/JPEG/TIFF/DICOM)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="ALIGNED.png",
                   help="photo resampled into the original's frame (PNG)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write homography and residuals")
    p.add_argument("--mask", type=Path, metavar="MASK.png", help="write the coverage mask (PNG)")
    p.add_argument("--no-refine", action="store_true", help="skip the ECC refinement")


def run(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np

    from photorad.io import load_original, load_photo, save_png
    from photorad.io.original import ColourConvertedWarning
    from photorad.rectify import align

    photo = load_photo(args.photo)
    with warnings.catch_warnings():
        # Screenshots are colour; their luminance is what the photo is matched against.
        warnings.simplefilter("ignore", ColourConvertedWarning)
        original = load_original(args.original)
    result = align(photo, original, refine=not args.no_refine)
    save_png(args.out, result.aligned)
    if args.mask:
        save_png(args.mask, result.mask.astype(np.uint8) * 255)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {"direction": "photo -> original", **result.to_dict()}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    rho = "n/a" if result.ecc_rho is None else f"{result.ecc_rho:.3f}"
    print(
        f"{args.out}: residual {result.reproj_error_px:.2f} px (median, original px), "
        f"{result.n_inliers}/{result.n_matches} inlier matches, ECC rho {rho}, "
        f"coverage {result.coverage:.1%}"
    )
    return 0
