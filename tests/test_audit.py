"""Audit trail: hash chain, tamper detection, concurrency, CLI, no PHI."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import threading
from pathlib import Path

import pytest

from photorad.audit import GENESIS, AuditLog, audit_from_env, verify
from photorad.cli import main
from photorad.errors import AuditError

H1 = hashlib.sha256(b"input").hexdigest()
H2 = hashlib.sha256(b"output").hexdigest()
HM = hashlib.sha256(b"model").hexdigest()


def _fill(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path, key_id="test-key")
    for i in range(n):
        log.append(
            ["analyze", "export", "send", "deid"][i % 4],
            inputs_sha256=[H1],
            outputs_sha256=[H2],
            model_sha256={"restorer": HM},
            extra={"i": i},
        )
    return log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_chain_is_sha256_of_prev_plus_entry(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 3)
    entries = [json.loads(x) for x in _lines(path)]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == GENESIS
    for prev, e in zip([None, *entries[:-1]], entries, strict=True):
        body = {k: v for k, v in e.items() if k != "hash"}
        # independent recomputation of the documented formula
        canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert e["hash"] == hashlib.sha256((e["prev"] + canon).encode()).hexdigest()
        if prev is not None:
            assert e["prev"] == prev["hash"]
    res = verify(path)
    assert res.ok and res.n_entries == 3 and res.head == entries[-1]["hash"]
    assert res.key_ids == ["test-key"]


@pytest.mark.parametrize(
    ("tamper", "bad_line"),
    [
        ("edit", 3),
        ("remove", 3),
        ("reorder", 2),
        ("insert", 3),
        ("remove_first", 1),
        ("truncate", 5),
        ("garbage", 4),
    ],
)
def test_verify_names_first_bad_line(tmp_path, tamper: str, bad_line: int) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 5)
    lines = _lines(path)
    if tamper == "edit":
        e = json.loads(lines[2])
        e["action"] = "deid"
        lines[2] = json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
    elif tamper == "remove":
        del lines[2]
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "insert":
        lines.insert(2, lines[1])
    elif tamper == "remove_first":
        del lines[0]
    elif tamper == "truncate":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    elif tamper == "garbage":
        lines[3] = "{not json\n"
    path.write_text("".join(lines))
    res = verify(path)
    assert not res.ok
    assert res.first_bad_line == bad_line, res.reason


def test_recomputed_chain_caught_only_with_hmac(tmp_path) -> None:
    from photorad.audit import entry_hash

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, key_id="k1", hmac_key=b"secret")
    for _ in range(3):
        log.append("analyze", inputs_sha256=[H1])
    assert verify(path, hmac_key=b"secret").ok
    # An attacker edits line 2 and recomputes every hash after it, but has no key.
    entries = [json.loads(x) for x in _lines(path)]
    entries[1]["inputs_sha256"] = [H2]
    prev = entries[0]["hash"]
    for e in entries[1:]:
        e["prev"] = prev
        e["hash"] = entry_hash(e)
        prev = e["hash"]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert verify(path).ok  # the plain chain cannot tell
    res = verify(path, hmac_key=b"secret")
    assert not res.ok and res.first_bad_line == 2


def test_removed_tail_caught_with_expected_head(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 4)
    head = verify(path).head
    path.write_text("".join(_lines(path)[:-1]))
    assert verify(path).ok
    res = verify(path, expected_head=head)
    assert not res.ok and res.first_bad_line == 4


def test_append_refuses_damaged_tail(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    _fill(path, 2)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AuditError, match="partial line"):
        AuditLog(path).append("analyze")


def test_no_phi_and_bad_values_refused(tmp_path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(AuditError, match="patient"):
        log.append("analyze", extra={"patient_name": "Doe^John"})
    with pytest.raises(AuditError, match="SHA-256"):
        log.append("analyze", inputs_sha256=["not-a-hash"])
    with pytest.raises(AuditError, match="unknown audit action"):
        log.append("delete")
    with pytest.raises(AuditError, match="longer"):
        log.append("analyze", extra={"note": "x" * 1000})
    with pytest.raises(AuditError, match="scalars"):
        log.append("analyze", extra={"stats": {"a": 1}})
    assert not (tmp_path / "a.jsonl").exists() or verify(tmp_path / "a.jsonl").n_entries == 0


def test_concurrent_threads(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    def work() -> None:
        for _ in range(25):
            log.append("analyze", inputs_sha256=[H1])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = verify(path)
    assert res.ok, res.message()
    assert res.n_entries == 200


def _proc_writer(path: str, n: int) -> None:
    log = AuditLog(path)  # a separate AuditLog per process: only flock protects the file
    for _ in range(n):
        log.append("send", outputs_sha256=[H2])


def test_concurrent_processes(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_proc_writer, args=(str(path), 30)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    res = verify(path)
    assert res.ok, res.message()
    assert res.n_entries == 120


def test_audit_from_env(tmp_path) -> None:
    assert audit_from_env({}) is None
    log = audit_from_env({"PHOTORAD_AUDIT_LOG": str(tmp_path / "x.jsonl"),
                          "PHOTORAD_AUDIT_KEY": "s3cret", "PHOTORAD_AUDIT_KEY_ID": "site-a"})
    assert isinstance(log, AuditLog) and log.key_id == "site-a"
    assert "s3cret" not in repr(log)
    e = log.append("deid")
    assert e["key_id"] == "site-a" and "hmac" in e
    assert verify(log.path, hmac_key=b"s3cret").ok


def test_cli_verify(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("PHOTORAD_AUDIT_KEY", raising=False)
    path = tmp_path / "audit.jsonl"
    _fill(path, 3)
    assert main(["audit", "verify", str(path)]) == 0
    assert "OK: 3 entries" in capsys.readouterr().out
    lines = _lines(path)
    path.write_text(lines[0] + lines[2])
    assert main(["audit", "verify", str(path)]) == 5
    assert "line 2" in capsys.readouterr().out
    assert main(["audit", "verify", "--json", str(path)]) == 5
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["first_bad_line"] == 2
    assert main(["audit", "verify", str(tmp_path / "missing.jsonl")]) == 5
    assert "does not exist" in capsys.readouterr().err
