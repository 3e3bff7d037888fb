"""Image writers that put no metadata in the file (no EXIF, GPS, text chunks, ICC).

Writes are atomic: the file is written under a temporary name in the target folder and renamed,
so an interrupted run never leaves a half-written image behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from photorad.errors import PhotoradError


def _as_uint(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [0,1] → uint8/uint16 (rounded); integer input must already match the depth."""
    a = np.asarray(image)
    if bit_depth not in (8, 16):
        raise PhotoradError(f"bit_depth must be 8 or 16, got {bit_depth}")
    target = np.uint8 if bit_depth == 8 else np.uint16
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise PhotoradError("image contains NaN or infinite values")
        peak = 255.0 if bit_depth == 8 else 65535.0
        return np.rint(np.clip(a, 0.0, 1.0) * peak).astype(target)
    if a.dtype == np.uint8 and bit_depth == 16:
        return a.astype(np.uint16) * 257
    if a.dtype == np.uint16 and bit_depth == 8:
        return np.rint(a / 257.0).astype(np.uint8)
    if a.dtype in (np.uint8, np.uint16):
        return a
    if a.dtype == np.bool_:
        return a.astype(target) * (255 if bit_depth == 8 else 65535)
    raise PhotoradError(f"cannot save an image of dtype {a.dtype}")


def _check_shape(a: np.ndarray) -> None:
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3)):
        if a.shape[0] > 0 and a.shape[1] > 0:
            return
    raise PhotoradError(f"image must be H×W or H×W×3 with non-zero size, got shape {a.shape}")


def _rgb_to_bgr(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 3:
        # cv2 swaps channels ~10× faster than a numpy copy of the reversed view (12 MP photos).
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR)
    return a


def encode_png(image: np.ndarray, *, bit_depth: int = 8, compression: int = 6) -> bytes:
    """Encode a grey (H×W) or RGB (H×W×3) image as PNG bytes without metadata.

    Float input is taken as [0, 1] and rounded to ``bit_depth`` bits; uint8/uint16 input is
    converted to the requested depth.
    """
    a = np.asarray(image)
    _check_shape(a)
    u = _rgb_to_bgr(_as_uint(a, bit_depth))
    ok, buf = cv2.imencode(".png", u, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise PhotoradError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(image: np.ndarray, *, quality: int = 95) -> bytes:
    """Encode a grey or RGB image as baseline JPEG bytes (JFIF, no EXIF)."""
    a = np.asarray(image)
    _check_shape(a)
    if not 1 <= quality <= 100:
        raise PhotoradError(f"JPEG quality must be in 1..100, got {quality}")
    u = _rgb_to_bgr(_as_uint(a, 8))
    ok, buf = cv2.imencode(".jpg", u, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise PhotoradError("JPEG encoding failed")
    return buf.tobytes()


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_png(
    path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8, compression: int = 6
) -> Path:
    """Save an image as PNG (8- or 16-bit) with no metadata; see :func:`encode_png`."""
    return write_atomic(path, encode_png(image, bit_depth=bit_depth, compression=compression))


def save_jpeg(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> Path:
    """Save an image as JPEG with no EXIF/GPS; see :func:`encode_jpeg`."""
    return write_atomic(path, encode_jpeg(image, quality=quality))
