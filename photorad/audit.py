"""Tamper-evident, append-only audit trail (JSON lines, SHA-256 hash chain).

Each line is one JSON object::

    {"seq": 3, "time": "2026-11-22T06:01:02.123456+00:00", "action": "export",
     "inputs_sha256": [...], "outputs_sha256": [...], "model_sha256": {...},
     "key_id": "clinic-a", "extra": {...}, "prev": "<hash of line 2>", "hash": "<hash of line 3>"}

``hash = SHA-256(prev + canonical JSON of the entry without "hash")`` where the canonical JSON has
sorted keys and no whitespace, and the first entry's ``prev`` is 64 zeros. Editing, removing,
reordering or inserting any line breaks the chain at that line, and :func:`verify` names it.
Removing lines *at the end* leaves a valid, shorter chain; to catch that, keep the last hash
(``VerifyResult.head``) somewhere else and pass it as ``expected_head``.

When a secret key is configured (``PHOTORAD_AUDIT_KEY``), every entry also carries an
HMAC-SHA-256 of its hash, so that someone who can edit the file cannot simply recompute the chain;
``key_id`` names the key (never the key itself).

No PHI: entries hold hashes, action names, model hashes and a small ``extra`` dict of scalars.
Keys that look like patient identifiers and long strings are refused.

Concurrency: every append takes an exclusive ``fcntl.flock`` on the log file (plus a process-local
lock for threads sharing one :class:`AuditLog`), reads the last entry, and writes the new line with
one ``write`` followed by ``fsync``, so concurrent threads and processes never interleave or fork
the chain.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photorad.errors import AuditError

GENESIS = "0" * 64
ACTIONS = frozenset({"analyze", "export", "send", "deid", "restore", "classify", "rectify"})
ENV_LOG = "PHOTORAD_AUDIT_LOG"
ENV_KEY = "PHOTORAD_AUDIT_KEY"
ENV_KEY_ID = "PHOTORAD_AUDIT_KEY_ID"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Substrings of ``extra`` keys that would invite identifying data into the log.
_PHI_KEY_PARTS = (
    "patient", "name", "birth", "address", "phone", "mrn", "accession", "ssn", "email",
    "pixel", "image_data",
)
_MAX_EXTRA_STR = 200
_MAX_LINE = 64 * 1024
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def canonical_json(obj: Any) -> str:
    """The byte-stable JSON form that is hashed (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 hex of ``prev + canonical JSON(entry without "hash"/"hmac")``."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "hmac")}
    return hashlib.sha256((str(entry.get("prev", "")) + canonical_json(body)).encode()).hexdigest()


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def _check_hashes(name: str, values: Iterable[str] | Mapping[str, str] | None) -> Any:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if isinstance(values, Mapping):
        out_map = {}
        for k, v in values.items():
            v = str(v).lower()
            if not _HEX64.match(v):
                raise AuditError(f"{name}[{k!r}] is not a SHA-256 hex digest")
            out_map[str(k)] = v
        return out_map
    out = []
    for v in values:
        v = str(v).lower()
        if not _HEX64.match(v):
            raise AuditError(f"{name} holds a value that is not a SHA-256 hex digest")
        out.append(v)
    return out


def _check_extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return {}
    out: dict[str, Any] = {}
    for k, v in extra.items():
        key = str(k)
        low = key.lower()
        if any(part in low for part in _PHI_KEY_PARTS):
            raise AuditError(
                f"audit extra key {key!r} looks like patient data; the audit log holds no PHI "
                "(log hashes and counts instead)"
            )
        vals = v if isinstance(v, (list, tuple)) else [v]
        for item in vals:
            if not (item is None or isinstance(item, (bool, int, float, str))):
                raise AuditError(f"audit extra {key!r} must hold scalars, got {type(item).__name__}")
            if isinstance(item, str) and len(item) > _MAX_EXTRA_STR:
                raise AuditError(f"audit extra {key!r} is longer than {_MAX_EXTRA_STR} characters")
        out[key] = list(v) if isinstance(v, tuple) else v
    return out


def _thread_lock(path: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


def _read_last_line(fh) -> bytes:
    """The last line of an open binary file (without its newline); b"" for an empty file."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return b""
    fh.seek(end - 1)
    if fh.read(1) != b"\n":
        raise AuditError(
            "audit log ends with a partial line (truncated or damaged); run "
            "`photorad audit verify` and repair it before appending"
        )
    pos = end - 1  # the final newline is at ``pos``; search backwards for the one before it
    buf = b""
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf
        idx = buf.rfind(b"\n")
        if idx >= 0:
            return buf[idx + 1 :]
    return buf


class AuditLog:
    """Append-only hash-chained audit log at ``path``.

    Parameters
    ----------
    path:
        JSON-lines file; created (with its folder) on the first append.
    key_id:
        Default key/user/device identifier written with each entry (not a person's name).
    hmac_key:
        Optional secret; when given each entry also gets an HMAC of its hash.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        key_id: str | None = None,
        hmac_key: bytes | None = None,
    ) -> None:
        self.path = Path(path)
        self.key_id = key_id
        self._hmac_key = hmac_key

    def __repr__(self) -> str:  # the key never appears
        return f"AuditLog({str(self.path)!r}, key_id={self.key_id!r})"

    def append(
        self,
        action: str,
        *,
        inputs_sha256: Iterable[str] | None = None,
        outputs_sha256: Iterable[str] | None = None,
        model_sha256: Iterable[str] | Mapping[str, str] | None = None,
        key_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one entry and return it (with its ``seq`` and ``hash``).

        Raises
        ------
        AuditError
            Unknown action, malformed hashes, PHI-looking ``extra``, or a damaged log tail.
        """
        if action not in ACTIONS:
            raise AuditError(f"unknown audit action {action!r}; expected one of {sorted(ACTIONS)}")
        base: dict[str, Any] = {
            "action": action,
            "inputs_sha256": _check_hashes("inputs_sha256", inputs_sha256),
            "outputs_sha256": _check_hashes("outputs_sha256", outputs_sha256),
            "model_sha256": _check_hashes("model_sha256", model_sha256),
            "key_id": key_id if key_id is not None else self.key_id,
            "extra": _check_extra(extra),
        }
        if base["key_id"] is not None and len(str(base["key_id"])) > 100:
            raise AuditError("key_id is longer than 100 characters")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(self.path):
            try:
                fh = open(self.path, "a+b")
            except OSError as exc:
                raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from None
            with fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    last = _read_last_line(fh)
                    if last:
                        try:
                            prev_entry = json.loads(last)
                            prev_hash = str(prev_entry["hash"])
                            seq = int(prev_entry["seq"]) + 1
                        except (ValueError, KeyError, TypeError):
                            raise AuditError(
                                f"audit log {self.path.name}: last line is not a valid entry; "
                                "run `photorad audit verify` before appending"
                            ) from None
                    else:
                        prev_hash, seq = GENESIS, 1
                    entry = {
                        "seq": seq,
                        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                        **base,
                        "prev": prev_hash,
                    }
                    entry["hash"] = entry_hash(entry)
                    if self._hmac_key:
                        entry["hmac"] = _mac(self._hmac_key, entry["hash"])
                    line = (canonical_json(entry) + "\n").encode()
                    fh.seek(0, os.SEEK_END)
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return entry


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    ``first_bad_line`` is 1-based; ``head`` is the hash of the last good entry (64 zeros for an
    empty log).
    """

    ok: bool
    n_entries: int
    first_bad_line: int | None = None
    reason: str = ""
    head: str = GENESIS
    key_ids: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def message(self) -> str:
        if self.ok:
            return f"OK: {self.n_entries} entries, hash chain intact (head {self.head[:16]}…)"
        return f"BROKEN at line {self.first_bad_line}: {self.reason}"


def verify(
    path: str | os.PathLike,
    *,
    hmac_key: bytes | None = None,
    expected_head: str | None = None,
) -> VerifyResult:
    """Check every line of an audit log; report the first line where the chain breaks.

    Parameters
    ----------
    path:
        The log file.
    hmac_key:
        When given, every entry must carry a matching HMAC.
    expected_head:
        The last hash recorded elsewhere; detects lines removed from the end.

    Raises
    ------
    AuditError
        The file does not exist or cannot be read (a broken chain is a result, not an error).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"audit log {p} does not exist") from None
    except OSError as exc:
        raise AuditError(f"cannot read audit log {p}: {exc.strerror}") from None
    prev = GENESIS
    n = 0
    keys: set[str] = set()

    def bad(line_no: int, reason: str) -> VerifyResult:
        return VerifyResult(False, n, line_no, reason, prev, sorted(keys))

    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    if complete:
        lines = lines[:-1]
    for i, raw in enumerate(lines, start=1):
        if not complete and i == len(lines):
            return bad(i, "partial last line (file truncated or write interrupted)")
        if len(raw) > _MAX_LINE:
            return bad(i, "line too long to be an audit entry")
        try:
            entry = json.loads(raw)
        except ValueError:
            return bad(i, "not valid JSON")
        if not isinstance(entry, dict) or not {"seq", "prev", "hash", "action"} <= entry.keys():
            return bad(i, "not an audit entry (missing seq/prev/hash/action)")
        if entry["seq"] != i:
            return bad(i, f"sequence number {entry['seq']} where {i} was expected "
                          "(a line was removed, inserted or moved)")
        if entry["prev"] != prev:
            return bad(i, "does not chain to the previous line (removed, inserted or reordered)")
        if entry_hash(entry) != entry["hash"]:
            return bad(i, "content does not match its hash (line was edited)")
        if hmac_key is not None:
            mac = entry.get("hmac")
            if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(hmac_key, entry["hash"])):
                return bad(i, "HMAC missing or wrong (chain recomputed without the key?)")
        prev = entry["hash"]
        n += 1
        if entry.get("key_id"):
            keys.add(str(entry["key_id"]))
    if expected_head is not None and expected_head != prev:
        return VerifyResult(False, n, n + 1, "log ends before the expected head hash "
                            "(lines removed from the end)", prev, sorted(keys))
    return VerifyResult(True, n, None, "", prev, sorted(keys))


def audit_from_env(environ: Mapping[str, str] | None = None) -> AuditLog | None:
    """The :class:`AuditLog` configured by ``PHOTORAD_AUDIT_LOG`` (None when unset).

    ``PHOTORAD_AUDIT_KEY`` (secret, optional) enables HMACs; ``PHOTORAD_AUDIT_KEY_ID`` names it
    (default ``"default"`` when a key is set).
    """
    env = os.environ if environ is None else environ
    path = env.get(ENV_LOG, "").strip()
    if not path:
        return None
    key = env.get(ENV_KEY) or None
    key_id = env.get(ENV_KEY_ID) or ("default" if key else None)
    return AuditLog(path, key_id=key_id, hmac_key=key.encode() if key else None)
