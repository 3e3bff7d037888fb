"""`photorad restore`: restore a rectified image (photo ROI → original-like) with a restorer."""

from __future__ import annotations

import argparse
import json
import time

NAME = "restore"
HELP = "restore a rectified photo image (grey PNG/JPEG) with the shipped or a given restorer"
DESCRIPTION = """\
Restore a rectified screen photo (the output of rectification: the displayed image, upright,
grey) towards the original: removes tone shift, glare, moiré, blur and noise.

  photorad restore rectified.png -o restored.png
  photorad restore rectified.png -o restored.png --model runs/msunet_s/best.safetensors

Without --model the shipped CPU weights are used. Research use only — not a diagnosis."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="rectified grey image (PNG/JPEG/TIFF/DICOM)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output PNG path")
    p.add_argument("--model", metavar="CKPT", help="restorer .safetensors (default: shipped CPU)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="output PNG depth")
    p.add_argument("--tile", type=int, default=1024, help="tile side in pixels (default 1024)")
    p.add_argument("--overlap", type=int, default=96, help="tile overlap in pixels (default 96)")
    p.add_argument(
        "--backend", choices=("auto", "eager", "channels_last", "onnx"), default="auto",
        help="execution path (auto: fastest measured path whose output matches eager)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args: argparse.Namespace) -> int:
    from photorad.io import load_original, save_png
    from photorad.models.weights import shipped_path
    from photorad.restore import Restorer

    img = load_original(args.input)
    path = args.model or shipped_path("restorer")
    restorer = Restorer.from_checkpoint(
        path, tile=args.tile, overlap=args.overlap, backend=args.backend
    )
    t0 = time.perf_counter()
    out = restorer.restore(img)
    seconds = time.perf_counter() - t0
    save_png(args.out, out, bit_depth=args.bit_depth)
    summary = {
        "input": str(args.input),
        "output": str(args.out),
        "size": [int(img.shape[1]), int(img.shape[0])],
        "seconds": round(seconds, 3),
        "restorer": restorer.info(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"restored {img.shape[1]}×{img.shape[0]} px with {restorer.name} "
            f"({(restorer.sha256 or '')[:12]}, {restorer.backend}) in {seconds:.2f} s → {args.out}"
        )
    return 0
