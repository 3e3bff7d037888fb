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
