"""`photorad lesion IMG... --json OUT.json [--masks DIR]`: find the lesion in ultrasound images."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "lesion"
HELP = "find the lesion in breast-ultrasound images (box, confidence, optional mask PNGs)"
DESCRIPTION = """\
Run the lesion localizer on grey images (originals, or rectified/restored photos) and print one
JSON object per image:
  {"image", "box": [x, y, w, h] | null, "confidence", "mask": "<stem>_lesion.png" | null,
   "reason": null | "why no lesion is reported", "model": {"name", "sha256"}, "disclaimer"}
--json writes the same objects as one JSON array.
Boxes are in image pixels. With --masks DIR, each found lesion's mask is written there as an
8-bit PNG of the image's size (255 = lesion). An image without a lesion the localizer can stand
behind gets "box": null and a reason; that is a result, not an error (exit status 0). A file
that cannot be read gets an "error" field; the other images are still processed and written,
and the exit status is then 2.

Research use only — not a diagnosis."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMG", type=Path, help="image files")
    p.add_argument("--json", metavar="OUT.json", type=Path, default=None,
                   help="also write the results as a JSON array to this file")
    p.add_argument("--masks", metavar="DIR", type=Path, default=None,
                   help="write <stem>_lesion.png masks into this folder")
    p.add_argument("--model", metavar="CKPT", type=Path, default=None,
                   help="localizer .safetensors (with .json sidecar); default: shipped CPU model")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import numpy as np

    from photorad import DISCLAIMER
    from photorad.errors import ConfigError, PhotoradError
    from photorad.io import load_original, save_png
    from photorad.io.save import write_atomic
    from photorad.lesion import Localizer, default_localizer

    stems = [p.stem for p in args.images]
    if args.masks is not None and len(set(stems)) != len(stems):
        raise ConfigError("two images share a file name stem; their masks would overwrite "
                          "each other in --masks (score them in separate runs)")
    loc = Localizer.from_checkpoint(args.model) if args.model else default_localizer()
    if args.masks is not None:
        args.masks.mkdir(parents=True, exist_ok=True)
    results, failed = [], 0
    for path in args.images:
        try:
            found = loc.locate(load_original(path))
        except PhotoradError as exc:  # one bad file must not lose the others' results
            failed += 1
            row = {"image": str(path), "box": None, "confidence": None, "mask": None,
                   "reason": None, "error": f"{type(exc).__name__}: {exc}"}
            results.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
            continue
        row = {"image": str(path), "box": None, "confidence": round(found.confidence, 4),
               "mask": None, "reason": found.reason, "model": loc.info(),
               "disclaimer": DISCLAIMER}
        if found.lesion is not None:
            row["box"] = list(found.lesion.box)
            if args.masks is not None:
                name = f"{path.stem}_lesion.png"
                save_png(args.masks / name, np.where(found.lesion.mask, 255, 0).astype(np.uint8))
                row["mask"] = name
        results.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.json:
        out = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
        write_atomic(args.json, out.encode())
    if failed:
        print(f"{failed} of {len(args.images)} image(s) could not be read (see \"error\")",
              file=sys.stderr)
        return PhotoradError.exit_code
    return 0
