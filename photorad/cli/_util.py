"""Small helpers shared by CLI subcommands (argument parsing of sizes and corners)."""

from __future__ import annotations

import argparse

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """``"4032x3024"`` → ``(4032, 3024)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 4032x3024, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return w, h


def parse_corners(text: str) -> np.ndarray:
    """``"x1,y1,x2,y2,x3,y3,x4,y4"`` (TL, TR, BR, BL) → float64 array (4, 2)."""
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("corners must be 8 numbers: x1,y1,...,x4,y4") from None
    if len(vals) != 8 or not np.isfinite(vals).all():
        raise argparse.ArgumentTypeError("corners must be 8 finite numbers: x1,y1,...,x4,y4")
    return np.asarray(vals, dtype=np.float64).reshape(4, 2)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"X,Y,W,H"`` (pixels) → 4 floats, W and H > 0."""
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("box must be 4 numbers: X,Y,W,H (pixels)") from None
    if len(vals) != 4 or not np.isfinite(vals).all() or vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError("box must be 4 finite numbers X,Y,W,H with W, H > 0")
    return vals[0], vals[1], vals[2], vals[3]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the subcommands that build a :class:`photorad.pipeline.Pipeline`."""
    from pathlib import Path

    from photorad.pipeline import DEFAULT_MAX_SIDE

    p.add_argument("--restorer", type=Path, default=None,
                   help="restorer checkpoint (.safetensors; default: shipped CPU weights)")
    p.add_argument("--classifier", type=Path, default=None,
                   help="classifier checkpoint (.safetensors; default: shipped CPU weights)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help=f"longest side of the rectified image in px (default {DEFAULT_MAX_SIDE}, "
                        "the scale the restorer was trained at)")
