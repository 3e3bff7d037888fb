"""Image input/output — the only code in photorad that decodes or encodes image files.

* :func:`load_photo` — phone photos (JPEG/PNG/HEIC/WebP) → ``uint8`` H×W×3 RGB, EXIF orientation
  applied once, every byte of metadata dropped.
* :func:`load_original` — original medical images (DICOM, PNG/JPEG/TIFF 8/16-bit) → ``float32``
  H×W in [0, 1].
* :func:`save_png`, :func:`encode_png`, :func:`save_jpeg`, :func:`encode_jpeg` — writers that put
  no metadata in the file.

Axis order everywhere is (row, column[, channel]) = (y, x[, c]) with row 0 at the top of the image
as displayed; nothing in this package transposes silently.
"""

from __future__ import annotations

from photorad.io.original import load_original, read_dicom
from photorad.io.photo import DEFAULT_MAX_PIXELS, load_photo
from photorad.io.save import encode_jpeg, encode_png, save_jpeg, save_png

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "encode_jpeg",
    "encode_png",
    "load_original",
    "load_photo",
    "read_dicom",
    "save_jpeg",
    "save_png",
]
