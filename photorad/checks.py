"""Input contracts shared by the small networks that read a grey image (lesion, route).

One place checks "a finite grey float image of at least N px per side" and makes the square,
normalised network input, so each model names itself in the message but no model writes the
checks again.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from photorad.errors import CorruptImageError, ImageTooSmallError, UnsupportedImageError

__all__ = ["as_grey_float", "square_input"]


def as_grey_float(img: Any, *, what: str, min_side: int) -> np.ndarray:
    """``img`` as ``float32`` (H, W), or the error that says what is wrong with it.

    Parameters
    ----------
    what:
        The consumer, for the message ("the lesion localizer").
    min_side:
        Smallest accepted side, px.

    Raises
    ------
    UnsupportedImageError
        Not a 2-D numpy array, or not of a float dtype.
    ImageTooSmallError
        A side is below ``min_side``.
    CorruptImageError
        NaN or infinite values.
    """
    if not isinstance(img, np.ndarray) or img.ndim != 2:
        raise UnsupportedImageError(
            f"{what} takes a grey-scale H×W image "
            f"(got {getattr(img, 'shape', type(img).__name__)})")
    if not np.issubdtype(img.dtype, np.floating):
        raise UnsupportedImageError(f"{what} takes float images in [0, 1], got dtype {img.dtype}")
    if min(img.shape) < min_side:
        raise ImageTooSmallError(f"image {img.shape[1]}×{img.shape[0]} px is too small for "
                                 f"{what} (each side must be ≥ {min_side} px)")
    if not np.isfinite(img).all():
        raise CorruptImageError("image contains NaN or infinite values")
    return img.astype(np.float32, copy=False)


def square_input(img: np.ndarray, *, side: int, mean: float, std: float) -> np.ndarray:
    """Grey (H, W) in [0, 1] → ``float32`` (1, side, side), resized and ``(x − mean) / std``.

    Area interpolation when shrinking, bilinear when enlarging; the aspect ratio is not kept.
    """
    x = np.ascontiguousarray(np.clip(img, 0.0, 1.0), dtype=np.float32)
    interp = cv2.INTER_AREA if min(x.shape) >= side else cv2.INTER_LINEAR
    x = cv2.resize(x, (side, side), interpolation=interp)
    return ((x - mean) / std)[None].astype(np.float32)
