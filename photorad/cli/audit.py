"""`photorad audit verify LOG`: check the hash chain of an audit log."""

from __future__ import annotations

import argparse
import json
import os

NAME = "audit"
HELP = "check a tamper-evident audit log (`photorad audit verify LOG`)"
DESCRIPTION = """\
Check a photorad audit log (JSON lines, SHA-256 hash chain).

  photorad audit verify LOG [--expected-head HASH] [--json]

Exit status 0 when every line chains correctly; 5 with the first bad line otherwise.
With PHOTORAD_AUDIT_KEY set, every entry's HMAC is checked too.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify"], help="what to do with the log")
    p.add_argument("log", help="audit log file (JSON lines)")
    p.add_argument(
        "--expected-head",
        metavar="HASH",
        help="last entry hash recorded elsewhere; detects lines removed from the end",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from photorad.audit import ENV_KEY, verify
    from photorad.errors import AuditError

    key = os.environ.get(ENV_KEY)
    res = verify(
        args.log,
        hmac_key=key.encode() if key else None,
        expected_head=args.expected_head,
    )
    if args.json:
        print(json.dumps({
            "ok": res.ok,
            "entries": res.n_entries,
            "first_bad_line": res.first_bad_line,
            "reason": res.reason,
            "head": res.head,
            "hmac_checked": bool(key),
        }))
    else:
        print(res.message())
    return 0 if res.ok else AuditError.exit_code
