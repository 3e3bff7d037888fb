"""Sending to a real Orthanc over STOW-RS and C-STORE: round trips, idempotency, failures."""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pydicom
import pytest

from photorad.cli import main
from photorad.data.bus_bra import load_records
from photorad.data.paths import sample_dir
from photorad.dicom.export import save_dicom, secondary_capture
from photorad.dicom.send import (
    Backoff,
    DimseDestination,
    RejectedError,
    StowDestination,
    TransientError,
    send_files,
    with_retries,
)
from photorad.errors import NetworkError
from photorad.io import load_original
from tests._dicom_factory import make_dicom
from tests._orthanc import DROP_PATIENT_ID, REJECT_PATIENT_ID, free_port, orthanc  # noqa: F401

FAST = Backoff(attempts=2, base_s=0.01)


def _sample_sc(tmp_path, i: int = 0, patient_id: str = "PHOTORAD-T1"):
    rec = load_records(sample_dir())[i]
    img = load_original(rec.path)
    sc = secondary_capture(img, patient_id=patient_id, patient_name="Test^Send",
                           models={"dncnn": "ab" * 32})
    return save_dicom(sc, tmp_path / f"sc_{i}_{patient_id}.dcm"), img


def _lookup(server, sop: str) -> str | None:
    req = urllib.request.Request(server.http_url + "/tools/lookup", data=sop.encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        hits = [h for h in json.loads(r.read()) if h["Type"] == "Instance"]
    return hits[0]["ID"] if hits else None


def _count(server) -> int:
    return int(server.get_json("/statistics")["CountInstances"])


def test_backoff_is_bounded() -> None:
    assert Backoff(attempts=6, base_s=0.5, cap_s=3).delays() == [0.5, 1.0, 2.0, 3.0, 3.0]
    waits: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("busy")
        return "ok"

    assert with_retries(flaky, Backoff(4, 0.5), sleep=waits.append) == ("ok", 3)
    assert waits == [0.5, 1.0]

    def refused() -> None:
        calls["n"] += 1
        raise RejectedError("no")

    calls["n"] = 0
    with pytest.raises(RejectedError):
        with_retries(refused, Backoff(4, 0.5), sleep=waits.append)
    assert calls["n"] == 1, "a refusal is not retried"
    with pytest.raises(TransientError, match="gave up after 3"):
        with_retries(lambda: (_ for _ in ()).throw(TransientError("down")), Backoff(3, 0),
                     sleep=lambda s: None)


@pytest.mark.orthanc
def test_stow_round_trip_and_idempotent(orthanc, tmp_path) -> None:  # noqa: F811
    from dicomweb_client.api import DICOMwebClient

    path, img = _sample_sc(tmp_path, 0)
    sent = pydicom.dcmread(path)
    n0 = _count(orthanc)
    res = send_files([path], StowDestination(orthanc.dicomweb_url), backoff=FAST)
    assert [r.status for r in res] == ["sent"] and res[0].verified, res[0].reason
    assert _count(orthanc) == n0 + 1
    # WADO-RS gives back the same pixels and tags.
    client = DICOMwebClient(orthanc.dicomweb_url)
    back = client.retrieve_instance(sent.StudyInstanceUID, sent.SeriesInstanceUID,
                                    sent.SOPInstanceUID)
    for key in ("PatientID", "SOPInstanceUID", "DerivationDescription", "ConversionType",
                "ImageType", "BurnedInAnnotation"):
        assert back[key].value == sent[key].value, key
    buf = io.BytesIO()
    back.save_as(buf, enforce_file_format=True)
    np.testing.assert_array_equal(load_original(buf.getvalue()), load_original(path))
    np.testing.assert_allclose(load_original(buf.getvalue()), np.rint(img * 255) / 255, atol=1e-6)
    # Same SOP Instance UID again: not re-sent.
    again = send_files([path, path], StowDestination(orthanc.dicomweb_url), backoff=FAST)
    assert [r.status for r in again] == ["already_present", "already_present"]
    assert _count(orthanc) == n0 + 1


@pytest.mark.orthanc
def test_cstore_round_trip_and_cfind(orthanc, tmp_path) -> None:  # noqa: F811
    path, _ = _sample_sc(tmp_path, 1)
    sent = pydicom.dcmread(path)
    dest = DimseDestination("127.0.0.1", orthanc.dicom_port, orthanc.aet)
    assert not dest.has_instance(sent.StudyInstanceUID, sent.SeriesInstanceUID,
                                 sent.SOPInstanceUID)
    res = send_files([path], dest, backoff=FAST)
    assert res[0].status == "sent" and res[0].verified, res[0].reason
    oid = _lookup(orthanc, sent.SOPInstanceUID)
    assert oid is not None
    stored = orthanc.get_bytes(f"/instances/{oid}/file")
    back = pydicom.dcmread(io.BytesIO(stored))
    assert back.PatientID == sent.PatientID and back.StudyInstanceUID == sent.StudyInstanceUID
    np.testing.assert_array_equal(load_original(stored), load_original(path))
    assert dest.has_instance(sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.SOPInstanceUID)
    again = send_files([path], dest, backoff=FAST)
    assert again[0].status == "already_present"


@pytest.mark.orthanc
@pytest.mark.parametrize("protocol", ["stow", "dimse"])
def test_refused_and_dropped_objects(orthanc, tmp_path, protocol) -> None:  # noqa: F811
    refused, _ = _sample_sc(tmp_path, 2, patient_id=REJECT_PATIENT_ID)
    dropped, _ = _sample_sc(tmp_path, 3, patient_id=DROP_PATIENT_ID)
    dest = (StowDestination(orthanc.dicomweb_url) if protocol == "stow"
            else DimseDestination("127.0.0.1", orthanc.dicom_port, orthanc.aet))
    res = send_files([refused, dropped], dest, backoff=FAST)
    assert [r.status for r in res] == ["failed", "failed"]
    assert "refused" in res[0].reason or "did not accept" in res[0].reason
    assert res[0].attempts == 1, "a refusal is not retried"
    assert "verification failed" in res[1].reason
    assert not any(r.verified for r in res)


def test_unreachable_archive(tmp_path, capsys) -> None:
    good = tmp_path / "a.dcm"
    make_dicom(np.zeros((8, 8), np.uint8)).save_as(good, enforce_file_format=True)
    other = tmp_path / "b.dcm"
    make_dicom(np.ones((8, 8), np.uint8)).save_as(other, enforce_file_format=True)
    port = free_port()  # nothing listens there
    for dest in (StowDestination(f"http://127.0.0.1:{port}/dicom-web", timeout_s=2),
                 DimseDestination("127.0.0.1", port, "NOBODY", timeout_s=2)):
        res = send_files([good, other], dest, backoff=FAST)
        assert [r.status for r in res] == ["failed", "failed"]
        assert "cannot reach" in res[0].reason and "gave up after 2" in res[0].reason
        assert "not attempted" in res[1].reason
    rc = main(["send", str(good), "--dimse", f"127.0.0.1:{port}:NOBODY", "--attempts", "1",
               "--timeout", "2"])
    assert rc == NetworkError.exit_code
    err = capsys.readouterr().err
    assert "failed" in err and "cannot reach" in err


def test_bad_inputs_skipped(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not dicom at all" * 10)
    nopix = tmp_path / "nopix.dcm"
    ds = make_dicom(np.zeros((8, 8), np.uint8))
    del ds.PixelData
    ds.save_as(nopix, enforce_file_format=True)

    class NoNetwork(StowDestination):
        def has_instance(self, *a):  # pragma: no cover - must not be called
            raise AssertionError("bad files must not reach the network")

    res = send_files([junk, nopix], NoNetwork("http://127.0.0.1:9/dicom-web"), backoff=FAST)
    assert [r.status for r in res] == ["skipped", "skipped"]
    assert "not a DICOM file" in res[0].reason and res[0].reason.startswith("junk.dcm")
    assert "no pixel data" in res[1].reason
    assert main(["send", str(junk), "--stow", "http://127.0.0.1:9/dicom-web"]) == 2
    assert main(["send", str(junk), "--dimse", "nonsense"]) == NetworkError.exit_code
    assert "HOST:PORT:AET" in capsys.readouterr().err


@pytest.mark.orthanc
def test_cli_send_report_and_audit(orthanc, tmp_path, monkeypatch, capsys) -> None:  # noqa: F811
    from photorad.audit import verify

    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PHOTORAD_AUDIT_LOG", str(log))
    monkeypatch.delenv("PHOTORAD_AUDIT_KEY", raising=False)
    a, _ = _sample_sc(tmp_path, 4)
    b, _ = _sample_sc(tmp_path, 5)
    report = tmp_path / "send.json"
    assert main(["send", str(a), str(b), "--stow", orthanc.dicomweb_url,
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert out.count("sent") >= 2 and "verified" in out
    data = json.loads(report.read_text())
    assert [r["status"] for r in data["results"]] == ["sent", "sent"]
    assert main(["send", str(a), "--dimse", orthanc.dimse]) == 0
    assert "already_present" in capsys.readouterr().out
    res = verify(log)
    assert res.ok and res.n_entries == 1
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["action"] == "send" and len(entry["inputs_sha256"]) == 2
    assert "Test^Send" not in log.read_text() and "PHOTORAD-T1" not in log.read_text()
