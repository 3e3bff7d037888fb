"""Decoding of phone photos — the one place where photos are read.

A phone photo arrives as JPEG, PNG, HEIC/HEIF or WebP. It leaves as a plain ``uint8`` array of
shape (H, W, 3), RGB, upright: the EXIF orientation has been applied exactly once and every piece
of metadata (EXIF, GPS, XMP, maker notes, ICC profile) is gone, because a numpy array cannot carry
any. When the photo has an ICC profile (Display P3 on iPhones) the pixels are converted to sRGB
first, so that the profile's loss does not shift colours.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageCms, ImageOps

from photorad.errors import CorruptImageError, ImageTooSmallError
from photorad.io._common import (
    Source,
    decode_pillow,
    describe,
    open_pillow,
    read_bytes,
)

log = logging.getLogger(__name__)

#: Default pixel limit for photos: 50 megapixels (a 48 MP phone sensor still fits).
DEFAULT_MAX_PIXELS = 50_000_000
#: Smallest side accepted for a photo, in pixels.
MIN_SIDE = 64

PHOTO_FORMATS = {"JPEG", "PNG", "HEIF", "WEBP"}

_SRGB = None


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert an RGB image with an embedded ICC profile to sRGB; keep pixels if that fails."""
    global _SRGB
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        if _SRGB is None:
            _SRGB = ImageCms.createProfile("sRGB")
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        log.warning("photo has an unreadable ICC profile; pixels kept as they are")
        return im


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → uint8 RGB array (16-bit data scaled, alpha dropped)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if a.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0
        g = np.clip(np.rint(a / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        g = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8, copy=True)


def load_photo(
    source: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """Decode a phone photo into an upright, metadata-free RGB array.

    Parameters
    ----------
    source:
        Path, bytes, or binary file object holding a JPEG, PNG, HEIC/HEIF or WebP file.
    max_pixels:
        Largest accepted width × height (before EXIF rotation). Larger images raise
        :class:`~photorad.errors.ImageTooLargeError` before any pixel is decoded.
    min_side:
        Smallest accepted width or height in pixels.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape (H, W, 3), RGB, rows top to bottom as the photographer saw the
        scene (EXIF orientation applied once), sRGB.

    Raises
    ------
    UnsupportedImageError
        Not a photo format photorad reads (text, PDF, DICOM, GIF, …).
    CorruptImageError
        Empty, truncated or damaged file.
    ImageTooLargeError
        More pixels than ``max_pixels``.
    ImageTooSmallError
        A side shorter than ``min_side``.
    """
    data = read_bytes(source)
    name = describe(source)
    im = open_pillow(data, name, max_pixels=max_pixels, allowed=PHOTO_FORMATS)
    if min(im.size) < min_side:
        raise ImageTooSmallError(
            f"{name}: {im.size[0]}×{im.size[1]} px is too small (each side must be ≥ {min_side} px)"
        )
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated WebP/PNG or HEIF sequences: the first frame is the photo
    im = decode_pillow(im, name)
    try:
        im = ImageOps.exif_transpose(im)  # returns a copy without the Orientation tag
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise CorruptImageError(f"{name}: damaged EXIF orientation data ({exc})") from None
    if im.mode in ("RGB", "RGBA", "P", "CMYK", "LA", "L"):
        if im.mode != "RGB":
            im = im.convert("RGB")
        im = _to_srgb(im)
    rgb = _to_rgb8(im)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CorruptImageError(f"{name}: decoded to an unexpected shape {rgb.shape}")
    return np.ascontiguousarray(rgb)
