"""De-identification of DICOM files and photos."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from photorad.cli import main
from photorad.dicom.deid import Deidentifier, deidentify_paths
from photorad.io import load_original
from tests._dicom_factory import make_dicom

pytest.importorskip("dicognito")
pytest.importorskip("dicomanonymizer")

PHI = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-99812",
    "PatientBirthDate": "19710304",
    "PatientAddress": "12 Elm Street Springfield",
    "ReferringPhysicianName": "House^Gregory",
    "InstitutionName": "Springfield General",
    "AccessionNumber": "ACC-77731",
    "StudyDescription": "US BREAST Jane Doe left",
    "ImageComments": "call Jane on 555-0199",
    "OperatorsName": "Tech^Tina",
    "DeviceSerialNumber": "SN-4471-X",
    "StudyDate": "20240117",
    "StudyTime": "101500",
}


def _phi_dataset(patient: str = "MRN-99812", study_uid: str | None = None, **kw) -> pydicom.Dataset:
    pixels = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) % 251).astype(np.uint8)
    elements = dict(PHI, PatientID=patient, BurnedInAnnotation="NO", **kw)
    ds = make_dicom(pixels, **elements)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    block = ds.private_block(0x0011, "ACME SECRET", create=True)
    block.add_new(0x01, "LO", "private Jane Doe note")
    return ds


def _write(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dataset_profile_applied() -> None:
    ds = _phi_dataset()
    out, dec = Deidentifier(seed="t").deidentify_dataset(ds)
    assert ds.PatientName == "Doe^Jane", "input must not be modified"
    buf = io.BytesIO()
    out.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    for key, value in PHI.items():
        if key in ("StudyDate", "StudyTime"):
            continue
        assert value.encode() not in raw, f"{key} value leaked"
        for part in value.replace("^", " ").split():
            if len(part) > 3 and part not in {"BREAST"}:
                assert part.encode() not in raw, f"{key}: '{part}' leaked"
    assert out.PatientIdentityRemoved == "YES"
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in out.DeidentificationMethodCodeSequence]
    assert ("113100", "DCM") in codes
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert not any(e.tag.is_private for e in out)
    assert any(r.startswith("private") for r in dec.removed)
    assert "StudyDescription" in dec.removed and "ImageComments" in dec.removed
    assert "PatientName" in dec.replaced and "PixelData" in dec.kept
    assert out.StudyDate != PHI["StudyDate"]
    assert out.PixelData == ds.PixelData
    assert out.SOPInstanceUID != ds.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert dec.warnings == []
    # The report carries keywords only, never values.
    text = json.dumps(dec.__dict__)
    assert "Jane" not in text and "MRN-99812" not in text


def test_consistent_pseudonyms_and_date_shift(tmp_path) -> None:
    study = pydicom.uid.generate_uid()
    a = _write(_phi_dataset(study_uid=study, StudyDate="20240117"), tmp_path / "a.dcm")
    b = _write(_phi_dataset(study_uid=study, StudyDate="20240120"), tmp_path / "b.dcm")
    c = _write(_phi_dataset(patient="MRN-OTHER"), tmp_path / "c.dcm")
    rep = deidentify_paths([a, b, c], tmp_path / "out", seed="run-1")
    assert rep.n_written == 3 and rep.n_skipped == 0
    da, db, dc = (pydicom.dcmread(f.output) for f in rep.files)
    assert da.PatientID == db.PatientID != dc.PatientID
    assert da.StudyInstanceUID == db.StudyInstanceUID != study
    assert da.SOPInstanceUID != db.SOPInstanceUID

    def day(v: str) -> dt.date:
        return dt.datetime.strptime(v, "%Y%m%d").date()

    assert (day(db.StudyDate) - day(da.StudyDate)).days == 3  # interval kept, dates moved
    assert day(da.StudyDate) != day("20240117")
    # Same seed: same pseudonyms; new seed: new ones.
    again = deidentify_paths([a], tmp_path / "out2", seed="run-1")
    other = deidentify_paths([a], tmp_path / "out3", seed="run-2")
    assert pydicom.dcmread(again.files[0].output).PatientID == da.PatientID
    assert pydicom.dcmread(other.files[0].output).PatientID != da.PatientID


@pytest.mark.parametrize("value", ["YES", None])
def test_burned_in_annotation_warns(value) -> None:
    ds = _phi_dataset()
    if value is None:
        del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = value
    out, dec = Deidentifier(seed="t").deidentify_dataset(ds)
    assert any("BurnedInAnnotation" in w for w in dec.warnings)
    assert out.PatientIdentityRemoved == "YES"


def test_real_ultrasound_file_pixels_unchanged(tmp_path) -> None:
    from pydicom.data import get_testdata_file

    src = get_testdata_file("US1_UNCR.dcm")
    if src is None:
        pytest.skip("pydicom test file US1_UNCR.dcm not available")
    rep = deidentify_paths([src], tmp_path / "out", seed="t")
    assert rep.n_written == 1, rep.files[0].reason
    with pytest.warns(UserWarning):
        a = load_original(src)
    with pytest.warns(UserWarning):
        b = load_original(rep.files[0].output)
    np.testing.assert_array_equal(a, b)
    out = pydicom.dcmread(rep.files[0].output)
    assert out.PatientIdentityRemoved == "YES"
    assert str(out.PatientName) != str(pydicom.dcmread(src).PatientName)


def test_bad_inputs_reported_and_skipped(tmp_path) -> None:
    good = _write(_phi_dataset(), tmp_path / "good.dcm")
    text = tmp_path / "notes.txt"
    text.write_text("Jane Doe MRN-99812")
    trunc = tmp_path / "trunc.dcm"
    trunc.write_bytes(good.read_bytes()[:200])
    broken_jpg = tmp_path / "broken.jpg"
    broken_jpg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    out = tmp_path / "out"
    rep = deidentify_paths([good, text, trunc, broken_jpg], out, seed="t")
    status = {Path(f.source).name: f.status for f in rep.files}
    assert status == {"good.dcm": "written", "notes.txt": "skipped", "trunc.dcm": "skipped",
                      "broken.jpg": "skipped"}
    assert all(f.reason for f in rep.files if f.status == "skipped")
    assert len(list(out.iterdir())) == 1, "only the good file is written, nothing half-written"
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))


def _jpeg_with_gps() -> bytes:
    im = Image.fromarray(np.full((90, 120, 3), (200, 120, 40), np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel X"  # Model
    exif[0x0131] = "SecretSoftware"
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), comment=b"Jane Doe")
    return buf.getvalue()


def test_photo_metadata_gone(tmp_path) -> None:
    src = tmp_path / "IMG_Jane_Doe.jpg"
    src.write_bytes(_jpeg_with_gps())
    with Image.open(src) as im:  # the fixture really carries GPS
        assert im.getexif().get_ifd(0x8825)
    png = tmp_path / "scan.png"
    pim = Image.fromarray(np.zeros((70, 90, 3), np.uint8))
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jane Doe")
    pim.save(png, pnginfo=info)
    srcs = [src, png]
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        heic = tmp_path / "photo.heic"
        Image.open(src).save(heic, exif=Image.open(src).getexif().tobytes())
        srcs.append(heic)
    except Exception:  # no HEIF encoder in this build: JPEG/PNG still cover the contract
        pass
    rep = deidentify_paths(srcs, tmp_path / "out")
    assert rep.n_written == len(srcs), [f.reason for f in rep.files]
    for f in rep.files:
        out = Path(f.output)
        assert "Jane" not in out.name and "IMG" not in out.name
        data = out.read_bytes()
        for needle in (b"Exif", b"GPS", b"PhoneMaker", b"PhoneModel", b"SecretSoftware",
                       b"Jane", b"ICC_PROFILE", b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
            assert needle not in data, f"{needle!r} found in {out.name}"
        with Image.open(out) as im:
            assert len(im.getexif()) == 0
            assert not im.getexif().get_ifd(0x8825)
            assert "exif" not in im.info and "icc_profile" not in im.info
            assert "Author" not in im.info


def test_cli_deid(tmp_path, capsys) -> None:
    good = _write(_phi_dataset(), tmp_path / "in" / "good.dcm") if (tmp_path / "in").mkdir() is None else None
    out = tmp_path / "out"
    assert main(["deid", str(tmp_path / "in"), "--out", str(out)]) == 0
    report = json.loads((tmp_path / "out-deid-report.json").read_text())
    assert report["written"] == 1 and report["files"][0]["source"].endswith("good.dcm")
    assert good is not None
    (tmp_path / "in" / "junk.bin").write_bytes(b"\x00\x01garbage")
    assert main(["deid", str(tmp_path / "in"), "--out", str(out), "--report",
                 str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "junk.bin" in err


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm"])
def test_deid_keeps_files_valid(tmp_path, name) -> None:
    """dciodvfy finds no error in the output that was not already in the input."""
    import shutil
    import subprocess

    from pydicom.data import get_testdata_file

    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian dicom3tools) not installed")
    src = get_testdata_file(name)
    if src is None:
        pytest.skip(f"pydicom test file {name} not available")
    rep = deidentify_paths([src], tmp_path / "out", seed="t")
    assert rep.n_written == 1, rep.files[0].reason

    def errors(path) -> set[str]:
        res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
        return {ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")}

    new = errors(rep.files[0].output) - errors(src)
    assert not new, new


def test_grey_png_stays_grey_and_exact(tmp_path) -> None:
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (80, 96), dtype=np.uint8)
    src = tmp_path / "scan.png"
    Image.fromarray(grey, mode="L").save(src)
    rep = deidentify_paths([src], tmp_path / "out")
    assert rep.n_written == 1, rep.files[0].reason
    with Image.open(rep.files[0].output) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), grey)
