"""Secondary Capture export (highdicom), validated with dciodvfy when installed."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from photorad import __version__
from photorad.cli import main
from photorad.dicom.export import save_dicom, secondary_capture
from photorad.errors import DicomError
from photorad.io import load_original, save_png
from tests._dicom_factory import make_dicom

pytest.importorskip("highdicom")

SHA = "ab" * 32


def _image(h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 13.0) + 0.05 * rng.standard_normal((h, w))
    return np.clip(img, 0, 1).astype(np.float32)


def _ref() -> pydicom.Dataset:
    ds = make_dicom(np.zeros((8, 8), np.uint8), PatientName="Ref^Patient", PatientID="REF-1",
                    PatientBirthDate="19800101", PatientSex="F", StudyDate="20240301",
                    StudyTime="091500", StudyID="42", AccessionNumber="A-1",
                    ReferringPhysicianName="Ref^Doc", Modality="US")
    return ds


def _dciodvfy(path) -> tuple[list[str], list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian dicom3tools) not installed")
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (res.stdout + res.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    warns = [ln for ln in lines if ln.startswith("Warning")]
    return errors, warns


@pytest.mark.parametrize("bits", [8, 16])
def test_pixels_round_trip(tmp_path, bits: int) -> None:
    img = _image()
    path = save_dicom(secondary_capture(img, patient_id="P1", bits=bits), tmp_path / "sc.dcm")
    back = load_original(path)
    peak = (1 << bits) - 1
    np.testing.assert_allclose(back, np.rint(img * peak) / peak, atol=1e-6)
    assert np.abs(back - img).max() <= 0.5 / peak + 1e-6


def test_attributes_and_new_series_in_ref_study(tmp_path) -> None:
    ref = _ref()
    sc = secondary_capture(_image(), ref=ref, models={"dncnn": SHA, "xception": "cd" * 32},
                           kind="restored")
    assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert sc.ConversionType == "WSD"
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert f"photorad {__version__}" in sc.DerivationDescription
    assert f"dncnn sha256:{SHA}" in sc.DerivationDescription
    assert "not a diagnosis" in sc.DerivationDescription
    assert sc.BurnedInAnnotation == "NO"
    assert sc.LossyImageCompression == "01"
    # Patient and study copied; a new series of the same study.
    for key in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyID",
                "AccessionNumber", "StudyDate"):
        assert str(sc[key].value) == str(ref[key].value), key
    assert sc.SeriesInstanceUID != ref.SeriesInstanceUID
    assert sc.SOPInstanceUID != ref.SOPInstanceUID
    path = save_dicom(sc, tmp_path / "sc.dcm")
    errors, warns = _dciodvfy(path)
    print("dciodvfy warnings:", *warns, sep="\n  ")
    assert errors == []


def test_study_uid_and_options(tmp_path) -> None:
    uid = pydicom.uid.generate_uid()
    sc = secondary_capture(_image(), study_uid=uid, patient_id="P2", patient_name="A^B",
                           kind="rectified", burned_in_annotation=True, lossy_source=False,
                           laterality="L", conversion_type="SYN")
    assert sc.StudyInstanceUID == uid and sc.PatientID == "P2"
    assert sc.BurnedInAnnotation == "YES" and "LossyImageCompression" not in sc
    assert sc.Laterality == "L" and sc.ConversionType == "SYN"
    assert "rectified" in sc.DerivationDescription
    errors, _ = _dciodvfy(save_dicom(sc, tmp_path / "sc.dcm"))
    assert errors == []


def test_bad_arguments() -> None:
    with pytest.raises(DicomError, match="not a valid DICOM UID"):
        secondary_capture(_image(), study_uid="1.2.abc")
    with pytest.raises(DicomError, match="grey"):
        secondary_capture(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DicomError, match="float"):
        secondary_capture(np.zeros((4, 4), np.uint8))
    with pytest.raises(DicomError, match="NaN"):
        secondary_capture(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(DicomError, match="ConversionType"):
        secondary_capture(_image(), conversion_type="XX")


def test_real_ultrasound_reference(tmp_path) -> None:
    from pydicom.data import get_testdata_file

    src = get_testdata_file("US1_UNCR.dcm")
    if src is None:
        pytest.skip("pydicom test file not available")
    ref = pydicom.dcmread(src, stop_before_pixels=True)
    sc = secondary_capture(_image(), ref=ref, models={"dncnn": SHA})
    assert sc.StudyInstanceUID == ref.StudyInstanceUID
    errors, _ = _dciodvfy(save_dicom(sc, tmp_path / "sc.dcm"))
    assert errors == []


def test_cli_export(tmp_path, capsys) -> None:
    png = tmp_path / "restored.png"
    save_png(png, _image())
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    ref = tmp_path / "ref.dcm"
    _ref().save_as(ref, enforce_file_format=True)
    out = tmp_path / "out.dcm"
    assert main(["export-dicom", str(png), "--out", str(out), "--ref", str(ref),
                 "--model", f"dncnn={weights}", "--model", f"xception={SHA}"]) == 0
    ds = pydicom.dcmread(out)
    import hashlib

    assert hashlib.sha256(b"weights").hexdigest() in ds.DerivationDescription
    assert ds.StudyInstanceUID == pydicom.dcmread(ref).StudyInstanceUID
    np.testing.assert_allclose(load_original(out), load_original(png), atol=1e-6)
    # Bad inputs: clear one-line errors and non-zero exit, no output file.
    (tmp_path / "notes.txt").write_text("hello")
    nopix = tmp_path / "nopix.dcm"
    ds2 = _ref()
    del ds2.PixelData
    ds2.save_as(nopix, enforce_file_format=True)
    capsys.readouterr()
    for bad_args, needle in (
        ([str(tmp_path / "notes.txt")], "not a recognised image"),
        ([str(nopix)], "no pixel data"),
        ([str(png), "--ref", str(tmp_path / "notes.txt")], "not a DICOM file"),
        ([str(png), "--study-uid", "bad uid"], "not a valid DICOM UID"),
    ):
        bad_out = tmp_path / "bad.dcm"
        assert main(["export-dicom", *bad_args, "--out", str(bad_out)]) == 2
        assert needle in capsys.readouterr().err
        assert not bad_out.exists()


def test_cli_export_and_deid_write_audit(tmp_path, monkeypatch) -> None:
    from photorad.audit import verify
    from photorad.provenance import sha256_file

    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PHOTORAD_AUDIT_LOG", str(log))
    monkeypatch.setenv("PHOTORAD_AUDIT_KEY", "k")
    monkeypatch.setenv("PHOTORAD_AUDIT_KEY_ID", "test-site")
    png = tmp_path / "restored.png"
    save_png(png, _image())
    out = tmp_path / "out.dcm"
    assert main(["export-dicom", str(png), "--out", str(out), "--patient-id", "SECRET-ID",
                 "--model", f"dncnn={SHA}"]) == 0
    assert main(["deid", str(out), "--out", str(tmp_path / "deid")]) == 0
    res = verify(log, hmac_key=b"k")
    assert res.ok and res.n_entries == 2 and res.key_ids == ["test-site"]
    import json

    entries = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["export", "deid"]
    assert entries[0]["inputs_sha256"] == [sha256_file(png)]
    assert entries[0]["outputs_sha256"] == [sha256_file(out)]
    assert entries[0]["model_sha256"] == {"dncnn": SHA}
    assert entries[1]["inputs_sha256"] == [sha256_file(out)]
    assert "SECRET-ID" not in log.read_text()


def test_from_analysis() -> None:
    from types import SimpleNamespace

    from photorad.dicom.export import secondary_capture_from_analysis

    img = _image()
    analysis = SimpleNamespace(
        rectified=img, restored=np.clip(img + 0.1, 0, 1).astype(np.float32),
        models={"restorer": {"name": "dncnn_s", "sha256": SHA},
                "classifier": {"name": "xception", "sha256": "cd" * 32}},
    )
    sc = secondary_capture_from_analysis(analysis, study_uid=pydicom.uid.generate_uid())
    assert f"dncnn_s sha256:{SHA}" in sc.DerivationDescription
    back = sc.pixel_array.astype(np.float32) / 255
    np.testing.assert_allclose(back, analysis.restored, atol=0.5 / 255 + 1e-6)
    rect = secondary_capture_from_analysis(analysis, which="rectified")
    assert "rectified" in rect.DerivationDescription and "sha256" not in rect.DerivationDescription
