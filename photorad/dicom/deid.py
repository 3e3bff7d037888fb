"""De-identification of DICOM files and phone photos (PS3.15 Annex E basic profile).

DICOM objects go through two published implementations, one after the other:

1. ``dicognito`` (one :class:`dicognito.anonymizer.Anonymizer` per run, seeded with a per-run
   secret) replaces names, IDs, addresses and UIDs with *consistent* pseudonyms and shifts all
   dates and times by one offset per run: the same patient, study or UID gets the same
   pseudonym in every file of a run, so studies stay together and intervals stay true.
2. ``dicomanonymizer`` applies the remaining actions of PS3.15 Table E.1-1 (its machine-made copy
   of the standard's table, edition 2026c) to every attribute dicognito did not already replace:
   free text such as descriptions and comments, patient age/sex/size, device serial numbers …
   and it removes all private tags.

photorad then sets ``PatientIdentityRemoved = YES``, ``DeidentificationMethod`` and
``DeidentificationMethodCodeSequence`` (113100 Basic Application Confidentiality Profile and
113107 Retain Longitudinal Temporal Information Modified Dates Option, both DCM) and
``LongitudinalTemporalInformationModified = MODIFIED``. Header de-identification cannot remove
text burned into the pixels: files with ``BurnedInAnnotation`` YES or missing are flagged.

Phone photos are decoded with :func:`photorad.io.load_photo` and re-encoded with
:func:`photorad.io.encode_jpeg` / :func:`~photorad.io.encode_png`, which write no metadata: EXIF,
GPS, XMP, maker notes and ICC profiles are gone.

Every output is written atomically; a file that cannot be parsed is reported and skipped. The
report lists, per file, which attribute keywords were removed, replaced, emptied, added or kept —
never their values.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import secrets
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from photorad.errors import DicomError, PhotoradError

log = logging.getLogger(__name__)

#: Annex E table edition used for the actions not covered by dicognito.
ANNEX_E_EDITION = "dicomfields_2026c"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
MODIFIED_DATES_CODE = (
    "113107",
    "DCM",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
#: Fits DICOM's LO (≤ 64 characters); library versions go into the JSON report.
DEID_METHOD_LO = "photorad: PS3.15 E.1 basic profile, modified dates"
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp"}


@dataclass
class FileDecision:
    """What happened to one input file (keywords only, never values)."""

    source: str
    kind: str  # "dicom" | "photo" | "unknown"
    status: str  # "written" | "skipped"
    output: str | None = None
    reason: str = ""
    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    input_sha256: str | None = None
    output_sha256: str | None = None


@dataclass
class DeidReport:
    """All per-file decisions of one run."""

    files: list[FileDecision] = field(default_factory=list)
    method: str = ""

    @property
    def n_written(self) -> int:
        return sum(f.status == "written" for f in self.files)

    @property
    def n_skipped(self) -> int:
        return sum(f.status == "skipped" for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "written": self.n_written,
            "skipped": self.n_skipped,
            "files": [asdict(f) for f in self.files],
        }


def _method_string() -> str:
    import importlib.metadata as md

    def v(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "?"

    from photorad import __version__

    return (
        f"photorad {__version__} deid: PS3.15 E.1 basic profile, dates shifted "
        f"(dicognito {v('dicognito')}; dicom-anonymizer {v('dicom-anonymizer')} "
        f"{ANNEX_E_EDITION})"
    )


def _label(elem) -> str:
    if elem.tag.is_private:
        return f"private ({elem.tag.group:04X},{elem.tag.element:04X})"
    return elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"


def _is_empty(elem) -> bool:
    v = elem.value
    return v is None or (hasattr(v, "__len__") and len(v) == 0)


def _snapshot(ds) -> dict[Any, Any]:
    out = {}
    for elem in ds:
        if elem.keyword == "PixelData":
            out[elem.tag] = ("pixels", len(elem.value) if elem.value is not None else 0)
        else:
            out[elem.tag] = (elem.VR, repr(elem.value))
    return out


#: Dummies dicom-anonymizer writes for Z/X actions on dates; year 0001 is not a valid DA for
#: validators (dciodvfy), and PS3.15 allows zero length for these Type 2/3 attributes.
_DUMMY_DATES = {"DA": "00010101", "DT": "00010101010101.000000+0000", "TM": "000000.00"}


def _blank_dummy_dates(dataset, elem) -> None:
    dummy = _DUMMY_DATES.get(elem.VR)
    if dummy is not None and str(elem.value or "") == dummy:
        elem.value = ""


def _code_item(code: tuple[str, str, str]):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


class Deidentifier:
    """One de-identification run: a single pseudonym/date-shift scheme for all its files.

    Parameters
    ----------
    seed:
        Secret that makes pseudonyms reproducible across runs. ``None`` (the default) draws a
        fresh random secret, so two runs cannot be linked. Treat a given seed like a password:
        with it, a guessed identity can be checked against a pseudonym.
    """

    def __init__(self, *, seed: str | None = None) -> None:
        try:
            from dicognito.anonymizer import Anonymizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DicomError(
                "DICOM de-identification needs the 'dicom' extra: pip install 'photorad[dicom]'"
            ) from exc
        self._anonymizer = Anonymizer(seed=seed if seed is not None else secrets.token_hex(16))
        self.method = _method_string()

    def deidentify_dataset(self, ds) -> tuple[Any, FileDecision]:
        """De-identify a :class:`pydicom.Dataset` (a copy is changed; the input is untouched)."""
        try:
            from dicomanonymizer.simpledicomanonymizer import (
                anonymize_dataset,
                initialize_actions,
                keep,
            )
        except ImportError as exc:  # pragma: no cover
            raise DicomError(
                "DICOM de-identification needs dicom-anonymizer: pip install 'photorad[dicom]'"
            ) from exc
        from pydicom.dataset import FileMetaDataset
        from pydicom.sequence import Sequence as DSequence
        from pydicom.uid import ImplicitVRLittleEndian

        ds = copy.deepcopy(ds)
        decision = FileDecision(source="", kind="dicom", status="written")
        before = _snapshot(ds)
        labels = {elem.tag: _label(elem) for elem in ds}
        if "PixelData" not in ds:
            decision.warnings.append("no pixel data (header-only object)")
        bia = str(ds.get("BurnedInAnnotation", "") or "").upper()
        if bia != "NO":
            decision.warnings.append(
                f"BurnedInAnnotation is {bia or 'absent'}: pixels may show names or IDs; "
                "header de-identification cannot remove them — check the image"
            )
        if not getattr(ds, "file_meta", None):
            ds.file_meta = FileMetaDataset()
        if "TransferSyntaxUID" not in ds.file_meta:
            # Files without a meta header are, by the standard's default, implicit VR LE.
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._anonymizer.anonymize(ds)
                after_pseudo = _snapshot(ds)
                pseudonymised = {
                    (t.group, t.element)
                    for t, v in after_pseudo.items()
                    if t in before and before[t] != v
                }
                extra = {t: keep for t in pseudonymised}
                anonymize_dataset(
                    ds,
                    extra_anonymization_rules=extra,
                    delete_private_tags=True,
                    base_rules_gen=lambda: initialize_actions(ANNEX_E_EDITION),
                )
        except PhotoradError:
            raise
        except Exception as exc:  # the libraries raise many types on odd values
            raise DicomError(f"de-identification failed ({type(exc).__name__}: {exc})") from None
        ds.walk(_blank_dummy_dates)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = DEID_METHOD_LO
        ds.DeidentificationMethodCodeSequence = DSequence(
            [_code_item(BASIC_PROFILE_CODE), _code_item(MODIFIED_DATES_CODE)]
        )
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        if "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "SOPClassUID" in ds:
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        after = _snapshot(ds)
        for tag, val in before.items():
            lab = labels[tag]
            if tag not in after:
                decision.removed.append(lab)
            elif after[tag] != val:
                elem = ds[tag]
                (decision.emptied if _is_empty(elem) else decision.replaced).append(lab)
            else:
                decision.kept.append(lab)
        decision.added = [_label(ds[t]) for t in after if t not in before]
        return ds, decision

    def deidentify_file(self, src: str | os.PathLike, out_dir: str | os.PathLike) -> FileDecision:
        """De-identify one DICOM file or photo into ``out_dir``; never raises for bad input."""
        from photorad.provenance import sha256_bytes

        src = Path(src)
        out_dir = Path(out_dir)
        try:
            data = src.read_bytes()
        except OSError as exc:
            return FileDecision(str(src), "unknown", "skipped", reason=f"cannot read: {exc.strerror}")
        dec_in = sha256_bytes(data)
        kind = _guess_kind(data, src)
        try:
            if kind == "dicom":
                decision, out_bytes, out_name = self._dicom_bytes(data, src.name)
            elif kind == "photo":
                decision, out_bytes, out_name = _photo_bytes(data, src.name)
            else:
                return FileDecision(
                    str(src), "unknown", "skipped", input_sha256=dec_in,
                    reason="neither DICOM nor a supported photo format (JPEG, PNG, HEIC, WebP)",
                )
        except PhotoradError as exc:
            return FileDecision(str(src), kind, "skipped", reason=str(exc), input_sha256=dec_in)
        from photorad.io.save import write_atomic

        out_dir.mkdir(parents=True, exist_ok=True)
        out_path = write_atomic(out_dir / out_name, out_bytes)
        decision.source = str(src)
        decision.output = str(out_path)
        decision.input_sha256 = dec_in
        decision.output_sha256 = sha256_bytes(out_bytes)
        for w in decision.warnings:
            log.warning("%s: %s", out_path.name, w)
        return decision

    def _dicom_bytes(self, data: bytes, name: str) -> tuple[FileDecision, bytes, str]:
        from photorad.io import read_dicom

        try:
            ds = read_dicom(data)
        except DicomError as exc:
            raise DicomError(str(exc).replace("uploaded data", name, 1)) from None
        out, decision = self.deidentify_dataset(ds)
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.save_as(buf, enforce_file_format=True)
        except Exception as exc:
            raise DicomError(f"{name}: cannot write the de-identified object ({exc})") from None
        uid = str(out.get("SOPInstanceUID", "") or "") or secrets.token_hex(8)
        return decision, buf.getvalue(), f"{uid}.dcm"


def _guess_kind(data: bytes, path: Path) -> str:
    from photorad.io._common import sniff_format

    magic = sniff_format(data[:256])
    # Checked first: a DICOM preamble may itself hold a TIFF header (dual-format files).
    if magic == "DICOM" or data[128:132] == b"DICM":
        return "dicom"
    if magic is not None:
        return "photo"
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"  # let the decoder say what is wrong with it
    if suffix in DICOM_SUFFIXES:
        return "dicom"  # may be a DICOM file without the 128-byte preamble
    return "unknown"


def _photo_bytes(data: bytes, name: str) -> tuple[FileDecision, bytes, str]:
    import hashlib

    from photorad.io import encode_jpeg, encode_png, load_photo
    from photorad.io._common import sniff_format

    try:
        rgb = load_photo(data)
    except PhotoradError as exc:
        raise type(exc)(str(exc).replace("uploaded data", name, 1)) from None
    lossless = sniff_format(data[:256]) == "PNG"
    # PNG stays lossless; everything else is re-encoded as high-quality JPEG.
    if lossless and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        rgb = rgb[..., 0]  # grey PNG stays single-channel (load_photo always expands to RGB)
    out = encode_png(rgb) if lossless else encode_jpeg(rgb, quality=95)
    digest = hashlib.sha256(out).hexdigest()[:16]
    decision = FileDecision(
        source=name,
        kind="photo",
        status="written",
        removed=["all metadata (EXIF, GPS, XMP, maker notes, ICC, text chunks)"],
        kept=["pixels (orientation applied, sRGB)"],
    )
    # The file name is derived from content, not from the (possibly identifying) input name.
    return decision, out, f"photo_{digest}.{'png' if lossless else 'jpg'}"


def deidentify_paths(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    seed: str | None = None,
    recursive: bool = True,
) -> DeidReport:
    """De-identify many files (folders are walked) into ``out_dir`` with one pseudonym scheme."""
    deid = Deidentifier(seed=seed)
    report = DeidReport(method=deid.method)
    for src in expand_inputs(paths, recursive=recursive):
        report.files.append(deid.deidentify_file(src, out_dir))
    return report


def expand_inputs(paths: Iterable[str | os.PathLike], *, recursive: bool = True) -> list[Path]:
    """Files given, plus the files inside given folders (sorted, hidden files skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            it: Sequence[Path] = sorted(p.rglob("*") if recursive else p.iterdir())
            out.extend(q for q in it if q.is_file() and not q.name.startswith("."))
        else:
            out.append(p)
    return out
