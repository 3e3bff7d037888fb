"""Decoding of original medical images — the one place where DICOM pixel data is read.

:func:`load_original` returns ``float32`` (H, W) in [0, 1], rows top to bottom and columns left
to right exactly as stored (DICOM Rows × Columns; PNG/TIFF height × width). No EXIF orientation,
flip or transpose is applied to originals: the stored pixel order is the clinical one.

DICOM grey-scale pipeline (PS3.3 C.11, C.7.6.3.1.2):

1. stored values → Modality LUT (Modality LUT Sequence, or Rescale Slope/Intercept);
2. → VOI LUT: the first VOI LUT Sequence item if present, otherwise the first Window
   Center/Width pair (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID), scaled to [0, 1];
   without either, the full range of the stored bits when no rescale is present, else the
   image's own min..max;
3. MONOCHROME1 is inverted (1 − y) so that larger is always brighter.

Colour images (RGB, YBR_*, PALETTE COLOR — typical of ultrasound) are converted to RGB, then to
luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the weights of DICOM's YBR_FULL) with a
warning, since the classifier and restorer work on grey-scale images.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from photorad.errors import (
    CorruptImageError,
    DicomError,
    ImageTooLargeError,
    UnsupportedImageError,
)
from photorad.io._common import (
    Source,
    decode_pillow,
    describe,
    open_pillow,
    read_bytes,
    sniff_format,
)

log = logging.getLogger(__name__)

ORIGINAL_FORMATS = {"PNG", "JPEG", "TIFF"}
#: Default pixel limit per frame for originals (a 43×43 cm detector at 0.1 mm is ≈ 18 MP).
DEFAULT_MAX_PIXELS = 100_000_000

BT601 = np.array([0.299, 0.587, 0.114])


class ColourConvertedWarning(UserWarning):
    """A colour image was converted to grey-scale luminance."""


def _is_dicom(data: bytes, name: str) -> bool:
    if sniff_format(data[:256]) == "DICOM":
        return True
    return Path(name).suffix.lower() in {".dcm", ".dicom", ".dic"}


def read_dicom(source: Source, *, stop_before_pixels: bool = False):
    """Parse a DICOM file into a :class:`pydicom.Dataset` with clear errors.

    Files without the 128-byte preamble are accepted (``force=True``) only if they then hold
    at least one element that parses; otherwise a :class:`~photorad.errors.DicomError` is raised.
    """
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    data = read_bytes(source)
    name = describe(source)
    force = sniff_format(data[:256]) != "DICOM"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's VR/format warnings are not actionable
            ds = pydicom.dcmread(
                io.BytesIO(data), force=force, stop_before_pixels=stop_before_pixels
            )
    except InvalidDicomError:
        raise DicomError(f"{name}: not a DICOM file") from None
    except Exception as exc:  # pydicom raises many types on damaged files
        raise DicomError(f"{name}: damaged DICOM file ({type(exc).__name__}: {exc})") from None
    if len(ds) == 0:
        raise DicomError(f"{name}: not a DICOM file (no data elements)")
    return ds


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """VOI windowing to [0, 1] per PS3.3 C.11.2.1.2."""
    function = function.upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        lo, hi = center - width / 2.0, center + width / 2.0
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    if width < 1:
        raise DicomError(f"invalid Window Width {width} (must be ≥ 1 for LINEAR)")
    # LINEAR: y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped.
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _voi_lut_sequence(x: np.ndarray, item) -> np.ndarray:
    descriptor = [int(v) for v in item.LUTDescriptor]
    n_entries = descriptor[0] or 65536
    first = descriptor[1]
    bits = descriptor[2]
    raw = item.LUTData
    if isinstance(raw, (bytes, bytearray)):
        # OW LUT Data holds 16-bit words; a few writers pack 8-bit entries: tell by the length.
        dtype = np.uint8 if (bits <= 8 and len(raw) == n_entries) else np.dtype("<u2")
        lut = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    else:
        lut = np.asarray(raw, dtype=np.float64).ravel()
    lut = lut[:n_entries]
    # Some writers declare 16 bits but store fewer; trust the declared depth unless exceeded.
    peak = float(2**bits - 1)
    if lut.max(initial=0) > peak:
        peak = float(lut.max())
    idx = np.clip(np.rint(x - first), 0, len(lut) - 1).astype(np.intp)
    return lut[idx] / peak


def _first(value) -> float:
    if value is None:
        raise DicomError("missing value")
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _grey_dicom(arr: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    x = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    has_rescale = "ModalityLUTSequence" in ds or (
        "RescaleSlope" in ds
        and (float(ds.RescaleSlope) != 1.0 or float(ds.get("RescaleIntercept", 0) or 0) != 0.0)
    )
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        y = _voi_lut_sequence(x, ds.VOILUTSequence[0])
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        y = _window(
            x,
            _first(ds.WindowCenter),
            _first(ds.WindowWidth),
            str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR"),
        )
    elif not has_rescale:
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
        if int(ds.get("PixelRepresentation", 0)) == 1:
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            lo, hi = 0, 2**bits - 1
        y = (x - lo) / (hi - lo)
    else:
        lo, hi = float(x.min()), float(x.max())
        y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        y = 1.0 - y
    return np.clip(y, 0.0, 1.0)


def _colour_dicom(arr: np.ndarray, ds, name: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(np.float64)
        peak = float(2 ** int(ds.RedPaletteColorLookupTableDescriptor[2]) - 1)
    else:
        rgb = arr.astype(np.float64)  # pydicom converts YBR_* to RGB when decoding
        peak = float(2 ** int(ds.get("BitsStored", 8)) - 1)
    warnings.warn(
        f"{name}: colour image ({pi}) converted to grey-scale luminance (BT.601)",
        ColourConvertedWarning,
        stacklevel=4,
    )
    return np.clip((rgb @ BT601) / peak, 0.0, 1.0)


def _load_dicom(data: bytes, name: str, frame: int | None, max_pixels: int) -> np.ndarray:
    ds = read_dicom(data)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError(f"{name}: DICOM file has no pixel data")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols == 0:
        raise DicomError(f"{name}: DICOM file declares an empty image ({rows}×{cols})")
    if rows * cols > max_pixels:
        raise ImageTooLargeError(f"{name}: {cols}×{rows} px per frame exceeds the pixel limit")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frame is None:
        if n_frames > 1:
            log.info("multi-frame DICOM with %d frames: using frame 0", n_frames)
        frame = 0
    if not 0 <= frame < n_frames:
        raise DicomError(f"{name}: frame {frame} requested but the file has {n_frames} frame(s)")
    from pydicom.pixels import pixel_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            arr = pixel_array(ds, index=frame if n_frames > 1 else None, raw=False)
    except (NotImplementedError, RuntimeError) as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        tsname = getattr(ts, "name", str(ts))
        raise DicomError(
            f"{name}: cannot decode transfer syntax {tsname}; install the pylibjpeg plugins "
            f"(see `photorad doctor`) ({exc})"
        ) from None
    except Exception as exc:
        raise DicomError(f"{name}: damaged DICOM pixel data ({type(exc).__name__}: {exc})") from None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    if samples == 3 or pi == "PALETTE COLOR":
        out = _colour_dicom(arr, ds, name)
    else:
        out = _grey_dicom(arr, ds)
    if out.ndim != 2:
        raise DicomError(f"{name}: decoded to an unexpected shape {out.shape}")
    return out


def _load_raster(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    im = open_pillow(data, name, max_pixels=max_pixels, allowed=ORIGINAL_FORMATS)
    im = decode_pillow(im, name)
    orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
    if orientation not in (1, None):
        log.warning("%s: EXIF orientation %s ignored (originals keep stored order)", name, orientation)
    mode = im.mode
    if mode in ("1", "L", "P", "LA", "PA"):
        if mode in ("P", "PA", "LA"):
            im = im.convert("RGB")
            a = np.asarray(im, dtype=np.float64)
            if np.ptp(a, axis=2).max(initial=0) == 0:
                return (a[:, :, 0] / 255.0).astype(np.float32)
            warnings.warn(f"{name}: colour image converted to luminance (BT.601)",
                          ColourConvertedWarning, stacklevel=3)
            return ((a @ BT601) / 255.0).astype(np.float32)
        return (np.asarray(im.convert("L"), dtype=np.float64) / 255.0).astype(np.float32)
    if mode.startswith("I;16"):
        return (np.asarray(im, dtype=np.float64) / 65535.0).astype(np.float32)
    if mode == "I":
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a / peak, 0, 1).astype(np.float32)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a, 0, 1).astype(np.float32)
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        a = np.asarray(im.convert("RGB"), dtype=np.float64)
        if np.ptp(a, axis=2).max(initial=0) == 0:  # grey stored as RGB: exact, no warning
            return (a[:, :, 0] / 255.0).astype(np.float32)
        warnings.warn(f"{name}: colour image converted to luminance (BT.601)",
                      ColourConvertedWarning, stacklevel=3)
        return ((a @ BT601) / 255.0).astype(np.float32)
    raise UnsupportedImageError(f"{name}: image mode {mode} is not supported")


def load_original(
    source: Source | str | os.PathLike,
    *,
    frame: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Load an original medical image as grey-scale ``float32`` (H, W) in [0, 1].

    Parameters
    ----------
    source:
        DICOM file (any transfer syntax pydicom + pylibjpeg decode), or PNG/JPEG/TIFF with 8- or
        16-bit samples; a path, bytes or a binary file object.
    frame:
        Frame index (0-based) of a multi-frame DICOM; ``None`` means the first frame.
    max_pixels:
        Largest accepted Rows × Columns per frame.

    Returns
    -------
    numpy.ndarray
        ``float32`` array (rows, columns) in [0, 1], brighter = larger, in stored pixel order.

    Raises
    ------
    UnsupportedImageError, CorruptImageError, ImageTooLargeError, DicomError
        With a message naming the file and the problem.
    """
    data = read_bytes(source)
    name = describe(source)
    if _is_dicom(data, name):
        out = _load_dicom(data, name, frame, max_pixels)
    else:
        magic = sniff_format(data[:256])
        if magic is None and not data[:2].isascii():
            # Pre-amble-less DICOM files start with a binary tag; try them before giving up.
            try:
                out = _load_dicom(data, name, frame, max_pixels)
            except DicomError:
                raise UnsupportedImageError(f"{name}: not a recognised image file") from None
        else:
            if frame not in (None, 0):
                raise CorruptImageError(f"{name}: frame {frame} requested from a single-frame image")
            out = _load_raster(data, name, max_pixels)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if not np.isfinite(out).all():
        raise CorruptImageError(f"{name}: decoded image contains NaN or infinite values")
    return out
