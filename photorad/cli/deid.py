"""`photorad deid IN... --out DIR`: de-identify DICOM files and phone photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "deid"
HELP = "de-identify DICOM files (PS3.15 basic profile) and strip photo metadata"
DESCRIPTION = """\
De-identify DICOM files and phone photos into DIR.

DICOM: PS3.15 Annex E basic profile with consistent pseudonyms, UIDs and date shift for every
file of one run; private tags removed; PatientIdentityRemoved=YES. Photos (JPEG, PNG, HEIC,
WebP): re-encoded without any metadata (EXIF, GPS, ...). Outputs are named by new SOP Instance
UID / content hash, never by the input name.

The JSON report (default: DIR-deid-report.json, *beside* DIR) links input names to outputs:
keep it with the operator and do not ship it with DIR. Exit status 0 when every file was
written, 2 when any was skipped (see the report), with the reason on stderr.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="DICOM files, photos or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--report", metavar="JSON", help="report path (default: DIR-deid-report.json)")
    p.add_argument(
        "--seed",
        help="secret that makes pseudonyms reproducible across runs (default: random per run)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from photorad.audit import audit_from_env
    from photorad.dicom.deid import deidentify_paths
    from photorad.io.save import write_atomic

    out = Path(args.out).resolve()
    report = deidentify_paths(args.inputs, out, seed=args.seed)
    report_path = Path(args.report) if args.report else out.parent / f"{out.name}-deid-report.json"
    write_atomic(report_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    for f in report.files:
        if f.status == "skipped":
            print(f"skipped {f.source}: {f.reason}", file=sys.stderr)
        for w in f.warnings:
            print(f"warning {Path(f.output or f.source).name}: {w}", file=sys.stderr)
    print(f"de-identified {report.n_written} file(s) into {out}; skipped {report.n_skipped}; "
          f"report: {report_path}")
    audit = audit_from_env()
    if audit is not None and report.n_written:
        audit.append(
            "deid",
            inputs_sha256=[f.input_sha256 for f in report.files if f.status == "written"],
            outputs_sha256=[f.output_sha256 for f in report.files if f.status == "written"],
            extra={"written": report.n_written, "skipped": report.n_skipped},
        )
    return 0 if report.n_skipped == 0 else 2
