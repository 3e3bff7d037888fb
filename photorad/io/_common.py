"""Helpers shared by the photo and original readers (reading bytes, Pillow opening, limits)."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from photorad.errors import (
    CorruptImageError,
    ImageTooLargeError,
    UnsupportedImageError,
)

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

#: Magic numbers of formats photorad recognises, used to tell "corrupt X" from "not an image".
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"RIFF", 0, "WEBP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"ftyp", 4, "HEIF"),
    (b"DICM", 128, "DICOM"),
    (b"GIF8", 0, "GIF"),
    (b"BM", 0, "BMP"),
)

_heif_registered = False


def register_heif() -> bool:
    """Register the HEIF/HEIC opener with Pillow once; return whether it is available."""
    global _heif_registered
    if not _heif_registered:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_registered = True
        except ImportError:  # optional at run time; reported by `photorad doctor`
            return False
    return True


def sniff_format(head: bytes) -> str | None:
    """Guess a container format from the first bytes of a file (None when unknown)."""
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def describe(source: Source) -> str:
    """A short, PHI-free description of a source for error messages (file name, not content)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return "uploaded data"


def read_bytes(source: Source) -> bytes:
    """Read all bytes of a path, bytes-like or binary file object; raise clear errors."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise CorruptImageError(f"{path.name}: file not found")
        if path.is_dir():
            raise UnsupportedImageError(f"{path.name}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptImageError(f"{path.name}: cannot be read ({exc.strerror})") from None
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise UnsupportedImageError("file object must be opened in binary mode")
        data = bytes(data)
    else:
        raise UnsupportedImageError(
            f"expected a path, bytes or a binary file, got {type(source).__name__}"
        )
    if len(data) == 0:
        raise CorruptImageError(f"{describe(source)}: file is empty")
    return data


def open_pillow(data: bytes, name: str, *, max_pixels: int, allowed: set[str]) -> Image.Image:
    """Open (not decode) an image with Pillow, checking format and pixel count first."""
    register_heif()
    magic = sniff_format(data[:256])
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's global decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"{name}: image declares too many pixels (decompression-bomb guard)"
        ) from None
    except UnidentifiedImageError:
        if magic is not None and magic in allowed:
            raise CorruptImageError(f"{name}: damaged or truncated {magic} file") from None
        if magic is not None:
            raise UnsupportedImageError(f"{name}: {magic} files are not supported") from None
        raise UnsupportedImageError(f"{name}: not a recognised image file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImageError(f"{name}: damaged image file ({exc})") from None
    fmt = (im.format or "").upper()
    if fmt == "MPO":  # multi-picture JPEG as written by many phones
        fmt = "JPEG"
    if fmt not in allowed:
        raise UnsupportedImageError(
            f"{name}: {fmt or 'unknown'} images are not supported (expected one of "
            f"{', '.join(sorted(allowed))})"
        )
    w, h = im.size
    if w <= 0 or h <= 0:
        raise CorruptImageError(f"{name}: image has no pixels")
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {w}×{h} = {w * h / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:.1f} MP"
        )
    return im


def decode_pillow(im: Image.Image, name: str) -> Image.Image:
    """Force decoding of a lazily opened image, turning decoder failures into CorruptImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name}: too many pixels (decompression-bomb guard)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise CorruptImageError(f"{name}: damaged or truncated image ({exc})") from None
    return im
