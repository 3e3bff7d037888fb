"""`photorad export-dicom IMAGE --out FILE.dcm`: a restored/rectified image → Secondary Capture."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

NAME = "export-dicom"
HELP = "export a restored or rectified image as a DICOM Secondary Capture"
DESCRIPTION = """\
Export a grey image (PNG/TIFF/DICOM, e.g. the pipeline's restored.png) as a DICOM Secondary
Capture: ImageType DERIVED\\SECONDARY, ConversionType WSD, DerivationDescription with the photorad
version and model SHA-256s, BurnedInAnnotation.

With --ref REF.dcm the patient and study modules are copied from REF and the image becomes a new
series of that study; with --study-uid it joins that study (give --patient-id/--patient-name as
the archive has them); with neither, a new study is created.
"""

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _model(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("--model must look like NAME=SHA256 or NAME=WEIGHTS_FILE")
    if _HEX64.match(value):
        return name, value.lower()
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"--model {name}: {value!r} is neither a SHA-256 nor a file")
    from photorad.provenance import sha256_file

    return name, sha256_file(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="grey image to export (PNG, TIFF or DICOM)")
    p.add_argument("--out", required=True, metavar="FILE.dcm", help="output DICOM file")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ref", metavar="REF.dcm", help="DICOM of the study to join (new series)")
    where.add_argument("--study-uid", metavar="UID", help="Study Instance UID to join")
    p.add_argument("--patient-id", help="Patient ID (without --ref)")
    p.add_argument("--patient-name", help="Patient name, DICOM PN form Family^Given (without --ref)")
    p.add_argument("--kind", choices=["restored", "rectified"], default="restored",
                   help="what the image is (default: restored)")
    p.add_argument("--model", action="append", type=_model, default=[], metavar="NAME=SHA256",
                   help="model that produced the image, with its weights' SHA-256 or file "
                        "(repeatable)")
    p.add_argument("--conversion-type", choices=["WSD", "SYN", "DV", "DI"], default="WSD",
                   help="SC ConversionType (default WSD: computed on a workstation)")
    p.add_argument("--burned-in-annotation", action="store_true",
                   help="the pixels show identifying text (sets BurnedInAnnotation YES)")
    p.add_argument("--lossless-source", action="store_true",
                   help="the source never went through lossy compression (default: assume a "
                        "JPEG photo and set LossyImageCompression 01)")
    p.add_argument("--bits", type=int, choices=[8, 16], default=8, help="stored bits (default 8)")
    p.add_argument("--laterality", choices=["L", "R"], help="laterality of a paired organ")
    p.add_argument("--series-description", help="Series Description (default: 'photorad KIND')")


def run(args: argparse.Namespace) -> int:
    from photorad.audit import audit_from_env
    from photorad.dicom.export import export_image
    from photorad.errors import DicomError
    from photorad.provenance import sha256_file

    if args.ref and (args.patient_id or args.patient_name):
        raise DicomError("--patient-id/--patient-name cannot be combined with --ref "
                         "(the reference's patient module is copied)")
    models = dict(args.model)
    out = export_image(
        args.image,
        args.out,
        ref_path=args.ref,
        study_uid=args.study_uid,
        patient_id=args.patient_id,
        patient_name=args.patient_name,
        kind=args.kind,
        models=models,
        conversion_type=args.conversion_type,
        burned_in_annotation=args.burned_in_annotation,
        lossy_source=not args.lossless_source,
        bits=args.bits,
        laterality=args.laterality,
        series_description=args.series_description,
    )
    print(f"wrote {out}")
    audit = audit_from_env()
    if audit is not None:
        audit.append(
            "export",
            inputs_sha256=[sha256_file(args.image)],
            outputs_sha256=[sha256_file(out)],
            model_sha256=models,
            extra={"kind": args.kind, "joined_study": bool(args.ref or args.study_uid)},
        )
    return 0
