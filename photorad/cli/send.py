"""`photorad send FILE... --stow URL | --dimse HOST:PORT:AET`: store DICOM in an archive."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "send"
HELP = "send DICOM files to a PACS (STOW-RS or C-STORE) with retries and verification"
DESCRIPTION = """\
Send DICOM files to an archive and prove it holds them.

  photorad send a.dcm b.dcm --stow http://pacs:8042/dicom-web
  photorad send out/*.dcm   --dimse pacs.example.org:104:PACS_AET

Each file is sent once per SOP Instance UID (instances the archive already lists are not sent
again), transient failures are retried with bounded exponential backoff, and every stored
instance is looked up again (QIDO-RS / C-FIND). Exit status: 0 all stored and verified;
4 any file failed (unreachable archive, refusal, failed verification); 2 only bad input files
were skipped. Every file is listed with what happened to it.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--stow", metavar="URL", help="DICOMweb base URL (…/dicom-web)")
    dest.add_argument("--dimse", metavar="HOST:PORT:AET", help="DIMSE archive for C-STORE")
    p.add_argument("--calling-aet", default="PHOTORAD", help="our AE title (default PHOTORAD)")
    p.add_argument("--attempts", type=int, default=4, help="tries per request (default 4)")
    p.add_argument("--backoff", type=float, default=0.5, metavar="S",
                   help="first retry wait in seconds, doubled each time, capped at 8 s")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="network timeout per request in seconds (default 30)")
    p.add_argument("--no-verify", action="store_true", help="skip the look-up after storing")
    p.add_argument("--resend", action="store_true",
                   help="send even when the archive already lists the SOP Instance UID")
    p.add_argument("--allow-no-pixels", action="store_true",
                   help="also send objects without pixel data (SR, KO …)")
    p.add_argument("--report", metavar="JSON", help="write per-file results as JSON")


def run(args: argparse.Namespace) -> int:
    from photorad.audit import audit_from_env
    from photorad.dicom.deid import expand_inputs
    from photorad.dicom.send import Backoff, destination_from_args, send_files
    from photorad.errors import ConfigError, NetworkError

    if args.attempts < 1 or args.attempts > 10:
        raise ConfigError("--attempts must be between 1 and 10")
    if args.backoff < 0:
        raise ConfigError("--backoff must be ≥ 0")
    dest = destination_from_args(stow=args.stow, dimse=args.dimse,
                                 calling_aet=args.calling_aet, timeout_s=args.timeout)
    files = expand_inputs(args.files)
    results = send_files(
        files, dest,
        backoff=Backoff(attempts=args.attempts, base_s=args.backoff),
        verify=not args.no_verify,
        skip_existing=not args.resend,
        allow_no_pixels=args.allow_no_pixels,
    )
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        check = " verified" if r.verified else ""
        why = f": {r.reason}" if r.reason else ""
        stream = sys.stdout if r.status in ("sent", "already_present") else sys.stderr
        print(f"{r.status:15s}{check:9s} {r.file}{why}", file=stream)
    print(f"{dest.name}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if args.report:
        from photorad.io.save import write_atomic

        write_atomic(Path(args.report), (json.dumps(
            {"destination": dest.name, "results": [r.to_dict() for r in results]}, indent=2)
            + "\n").encode())
    audit = audit_from_env()
    sent = [r for r in results if r.status == "sent"]
    if audit is not None and sent:
        from photorad.provenance import sha256_file

        audit.append(
            "send",
            inputs_sha256=[sha256_file(r.file) for r in sent],
            extra={"protocol": "stow-rs" if args.stow else "c-store",
                   "sent": len(sent), "verified": sum(r.verified for r in sent),
                   "failed": counts.get("failed", 0)},
        )
    if counts.get("failed"):
        return NetworkError.exit_code
    if counts.get("skipped"):
        return 2
    return 0
