"""Export a restored or rectified image as a DICOM Secondary Capture (highdicom).

The object is placed into an existing study as a *new series* when a reference DICOM (its
patient and study modules are copied) or a Study Instance UID is given, otherwise into a new
study.

Attribute choices (PS3.3 C.8.6.1, C.7.6.1, C.7.6.1.1.5):

* ``ImageType = DERIVED\\SECONDARY\\OTHER`` (value 3 ``OTHER``: no defined term fits a
  photo-restored image).
* ``ConversionType = WSD`` (Workstation) by default: the stored pixels are computed by photorad
  software on a workstation from a phone photo. ``DV`` (digitized video) describes a frame
  grabber, ``DI`` a direct digital interface from the modality and ``SYN`` a wholly synthetic
  image (rendering, phantom); none of those matches a restoration of a real acquisition, so
  ``SYN`` is accepted only when explicitly asked for (e.g. exporting a simulated image).
* ``DerivationDescription`` names the photorad version, what the image is (restored/rectified),
  and each model with its SHA-256; ``BurnedInAnnotation`` is set explicitly (NO by default: the
  pipeline crops to the displayed image area).
* ``LossyImageCompression = 01`` (ISO_10918_1) when the source was a JPEG phone photo, because
  PS3.3 C.7.6.1.1.5 says a once-lossy image stays flagged in every derived image.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from photorad.errors import DicomError

CONVERSION_TYPES = ("WSD", "SYN", "DV", "DI")
DEFAULT_SERIES_NUMBER = 9701
MANUFACTURER = "photorad"


def derivation_description(
    *,
    kind: str = "restored",
    models: Mapping[str, str] | None = None,
    version: str | None = None,
) -> str:
    """Human-readable DerivationDescription (ST, ≤ 1024 characters)."""
    from photorad import DISCLAIMER, __version__

    parts = [
        f"photorad {version or __version__}: {kind} image computed from a phone photograph of "
        "a display"
    ]
    for name, sha in (models or {}).items():
        parts.append(f"model {name} sha256:{sha}")
    parts.append(DISCLAIMER.replace("\u2014", "-"))  # plain ASCII: no SpecificCharacterSet needed
    text = "; ".join(parts)
    if len(text) > 1024:
        raise DicomError("DerivationDescription longer than 1024 characters (too many models?)")
    return text


def is_valid_uid(uid: str) -> bool:
    """PS3.5 §9.1: dot-separated numbers without leading zeros, at most 64 characters."""
    return len(uid) <= 64 and re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+", uid) is not None


def _to_uint(image: np.ndarray, bits: int) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 2:
        raise DicomError(f"export needs a grey H×W image, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise DicomError(f"export needs a float image in [0, 1], got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise DicomError("image contains NaN or infinite values")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise DicomError("image is empty")
    peak = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.rint(np.clip(a, 0.0, 1.0) * peak).astype(dtype)


def secondary_capture(
    image: np.ndarray,
    *,
    ref: Any | None = None,
    study_uid: str | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    kind: str = "restored",
    models: Mapping[str, str] | None = None,
    conversion_type: str = "WSD",
    burned_in_annotation: bool = False,
    lossy_source: bool = True,
    bits: int = 8,
    series_number: int = DEFAULT_SERIES_NUMBER,
    series_description: str | None = None,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    laterality: str | None = None,
):
    """Build a Secondary Capture :class:`highdicom.sc.SCImage` from a float32 grey image.

    Parameters
    ----------
    image:
        ``float32`` (H, W) in [0, 1] — the pipeline's restored or rectified output.
    ref:
        A :class:`pydicom.Dataset` of the study to join; its patient and study modules are
        copied and the new object becomes a new series of that study.
    study_uid:
        Study Instance UID to join when no reference file is at hand.
    patient_id, patient_name:
        Used without ``ref``; must match what the archive holds for ``study_uid``.
    kind:
        ``"restored"`` or ``"rectified"``: written into the description.
    models:
        Model name → SHA-256 of the weights that produced the image.
    conversion_type:
        SC Equipment ConversionType; ``WSD`` unless you know better (see module doc).
    burned_in_annotation:
        Whether the pixels show identifying text.
    lossy_source:
        The pixels passed through lossy compression (a JPEG photo): sets LossyImageCompression.
    bits:
        8 or 16 bits per stored sample (MONOCHROME2).
    laterality:
        ``"L"`` or ``"R"`` for a paired organ when known (a reference's value is kept otherwise).
    """
    try:
        from highdicom.sc import SCImage
    except ImportError as exc:  # pragma: no cover
        raise DicomError("DICOM export needs the 'dicom' extra: pip install 'photorad[dicom]'") from exc
    from pydicom.uid import generate_uid

    if laterality not in (None, "L", "R"):
        raise DicomError(f"laterality must be L or R, got {laterality!r}")
    if bits not in (8, 16):
        raise DicomError(f"bits must be 8 or 16, got {bits}")
    if conversion_type not in CONVERSION_TYPES:
        raise DicomError(f"ConversionType must be one of {', '.join(CONVERSION_TYPES)}")
    if kind not in ("restored", "rectified"):
        raise DicomError(f"kind must be 'restored' or 'rectified', got {kind!r}")
    if study_uid is not None and not is_valid_uid(study_uid):
        raise DicomError(f"{study_uid!r} is not a valid DICOM UID")
    if ref is not None and study_uid is not None and str(ref.StudyInstanceUID) != study_uid:
        raise DicomError("--study-uid differs from the reference file's StudyInstanceUID")
    pixels = _to_uint(image, bits)
    common: dict[str, Any] = dict(
        pixel_array=pixels,
        photometric_interpretation="MONOCHROME2",
        bits_allocated=bits,
        # highdicom insists on an orientation for the PATIENT system; it is blanked below.
        coordinate_system="PATIENT",
        patient_orientation=("A", "F"),
        series_instance_uid=series_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        transfer_syntax_uid="1.2.840.10008.1.2.1",  # explicit VR little endian: every PACS reads it
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if ref is not None:
                for key in ("StudyInstanceUID",):
                    if key not in ref:
                        raise DicomError(f"reference DICOM has no {key}")
                sc = SCImage.from_ref_dataset(ref_dataset=ref, **common)
            else:
                sc = SCImage(
                    study_instance_uid=study_uid or generate_uid(),
                    patient_id=patient_id,
                    patient_name=patient_name,
                    **common,
                )
    except DicomError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise DicomError(f"cannot build the Secondary Capture ({exc})") from None
    from photorad import __version__

    # A photo of a display has no known patient orientation: Type 2, so present but empty.
    sc.PatientOrientation = ""
    sc.ConversionType = conversion_type
    if laterality is not None:
        sc.Laterality = laterality
    elif "Laterality" not in sc:
        # Type 2C for paired organs (breast): present but empty means unknown.
        sc.Laterality = ""
    sc.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    sc.DerivationDescription = derivation_description(kind=kind, models=models)
    sc.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    sc.SeriesDescription = series_description or f"photorad {kind}"[:64]
    sc.SoftwareVersions = f"photorad {__version__}"
    sc.ManufacturerModelName = "photorad"
    now = _dt.datetime.now()
    sc.ContentDate = now.strftime("%Y%m%d")
    sc.ContentTime = now.strftime("%H%M%S")
    sc.SeriesDate = sc.ContentDate
    sc.SeriesTime = sc.ContentTime
    if lossy_source:
        sc.LossyImageCompression = "01"
        sc.LossyImageCompressionMethod = "ISO_10918_1"
    return sc


def secondary_capture_from_analysis(analysis: Any, *, which: str = "restored", **kwargs: Any):
    """Secondary Capture of a :class:`photorad.pipeline.Analysis` output.

    ``which="restored"`` exports ``analysis.restored`` and names the restorer (name and SHA-256
    from ``analysis.models``); ``"rectified"`` exports ``analysis.rectified``, which no model
    touched. Other keyword arguments go to :func:`secondary_capture` (``ref``, ``study_uid`` …).
    """
    if which not in ("restored", "rectified"):
        raise DicomError(f"which must be 'restored' or 'rectified', got {which!r}")
    models: dict[str, str] = {}
    if which == "restored":
        info = (getattr(analysis, "models", None) or {}).get("restorer") or {}
        if info.get("sha256"):
            models[str(info.get("name") or "restorer")] = str(info["sha256"])
    return secondary_capture(getattr(analysis, which), kind=which, models=models, **kwargs)


def save_dicom(ds, path: str | os.PathLike) -> Path:
    """Write a dataset as a DICOM Part 10 file, atomically."""
    import io

    from photorad.io.save import write_atomic

    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as exc:
        raise DicomError(f"cannot encode the DICOM object ({type(exc).__name__}: {exc})") from None
    return write_atomic(path, buf.getvalue())


def export_image(
    image_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ref_path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Path:
    """Load ``image_path`` (PNG/TIFF/DICOM via :func:`photorad.io.load_original`) and export it."""
    from photorad.io import load_original, read_dicom

    img = load_original(image_path)
    ref = None
    if ref_path is not None:
        ref = read_dicom(ref_path, stop_before_pixels=True)
    sc = secondary_capture(img, ref=ref, **kwargs)
    return save_dicom(sc, out)
