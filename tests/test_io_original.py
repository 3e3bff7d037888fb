"""load_original against reference computations on real (pydicom-data) and synthetic DICOMs."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from photorad.errors import DicomError
from photorad.io import load_original
from photorad.io.original import ColourConvertedWarning

from ._dicom_factory import make_dicom

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array  # noqa: E402


def _testfile(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not in pydicom-data (pip install pydicom-data)")
    return path


def _to_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _reference_grey(path: str) -> np.ndarray:
    """pydicom's own modality + VOI LUT, scaled by its documented output range."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    x = apply_modality_lut(arr, ds)
    y = apply_voi_lut(x, ds).astype(np.float64)
    bits = ds.BitsStored
    y = y / (2**bits - 1)  # unsigned data, no rescale: pydicom windows into [0, 2**bits - 1]
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1.0 - y
    return y


@pytest.mark.parametrize("name", ["RG1_UNCI.dcm", "RG3_UNCI.dcm"])
def test_monochrome1_matches_pydicom_reference(name: str) -> None:
    path = _testfile(name)
    out = load_original(path)
    ref = _reference_grey(path)
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-3  # LINEAR vs pydicom's LINEAR: same formula


def test_monochrome1_bone_is_white() -> None:
    """RG1 is a hand/limb radiograph: bone must be bright, the unexposed background dark."""
    out = load_original(_testfile("RG1_UNCI.dcm"))
    h, w = out.shape
    centre = out[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    assert np.percentile(centre, 99) > 0.8
    # In MONOCHROME1 the raw stored values are low where the image is bright.
    raw = pydicom.dcmread(_testfile("RG1_UNCI.dcm")).pixel_array.astype(float)
    corr = np.corrcoef(raw.ravel()[::97], out.ravel()[::97])[0, 1]
    assert corr < -0.5


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),
        ("RG3_J2KR.dcm", "RG3_UNCR.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("US1_J2KR.dcm", "US1_UNCR.dcm"),
        ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm"),
    ],
)
def test_lossless_syntaxes_identical_to_uncompressed(compressed: str, reference: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ColourConvertedWarning)
        a = load_original(_testfile(compressed))
        b = load_original(_testfile(reference))
    assert a.shape == b.shape
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "US1_J2KI.dcm"])
def test_other_compressed_syntaxes_decode(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ColourConvertedWarning)
        out = load_original(_testfile(name))
    assert out.dtype == np.float32 and out.ndim == 2
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.01


def test_lossy_j2k_close_to_lossless() -> None:
    a = load_original(_testfile("RG1_J2KI.dcm"))
    b = load_original(_testfile("RG1_UNCI.dcm"))
    assert np.abs(a - b).mean() < 0.01


@pytest.mark.parametrize(("name", "n_frames"), [("examples_ybr_color.dcm", 30), ("color3d_jpeg_baseline.dcm", 120)])
def test_multiframe_colour_ultrasound(name: str, n_frames: int) -> None:
    path = _testfile(name)
    ds = pydicom.dcmread(path)
    for frame in (0, n_frames // 2, n_frames - 1):
        with pytest.warns(ColourConvertedWarning):
            out = load_original(path, frame=frame)
        rgb = pixel_array(ds, index=frame).astype(np.float64)  # YBR → RGB by pydicom
        ref = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
        assert out.shape == (ds.Rows, ds.Columns)
        assert np.abs(out - ref).max() < 1e-5
    with pytest.raises(DicomError, match="frame"):
        load_original(path, frame=n_frames)


def test_frames_differ_and_default_is_first() -> None:
    frames = np.stack([np.full((8, 8), v, np.uint8) for v in (10, 100, 200)])
    data = _to_bytes(make_dicom(frames))
    assert np.allclose(load_original(data), 10 / 255)
    assert np.allclose(load_original(data, frame=2), 200 / 255)


def test_synthetic_window_linear_hand_values() -> None:
    px = np.array([[0, 100, 149, 150, 151, 200, 1000]], np.uint16).repeat(4, axis=0)
    ds = make_dicom(px, bits_stored=12, WindowCenter=150, WindowWidth=101)
    out = load_original(_to_bytes(ds))[0]
    # y = (x - (c - 0.5)) / (w - 1) + 0.5 = (x - 149.5)/100 + 0.5, clipped to [0, 1]
    expected = np.clip((np.array([0, 100, 149, 150, 151, 200, 1000]) - 149.5) / 100 + 0.5, 0, 1)
    assert np.allclose(out, expected, atol=1e-6)


def test_synthetic_monochrome1_and_rescale() -> None:
    px = np.array([[0, 1000, 2000, 4095]], np.uint16).repeat(3, axis=0)
    ds = make_dicom(
        px, photometric="MONOCHROME1", bits_stored=12,
        RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1000, WindowWidth=2001,
    )
    out = load_original(_to_bytes(ds))[0]
    hu = px[0] * 2.0 - 1000.0
    lin = np.clip((hu - 999.5) / 2000 + 0.5, 0, 1)
    assert np.allclose(out, 1.0 - lin, atol=1e-6)


def test_synthetic_voi_lut_sequence() -> None:
    px = np.array([[0, 1, 2, 3, 10]], np.uint16).repeat(2, axis=0)
    item = pydicom.Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item.LUTData = np.array([0, 51, 102, 255], '<u2').tobytes()
    ds = make_dicom(px, bits_stored=8, VOILUTSequence=pydicom.Sequence([item]))
    ds.PixelData = px.astype(np.uint16).tobytes()
    out = load_original(_to_bytes(ds))[0]
    assert np.allclose(out, [0, 0.2, 0.4, 1.0, 1.0], atol=1e-6)  # 10 clamps to the last entry


def test_synthetic_sigmoid_window() -> None:
    px = np.array([[50, 100, 150]], np.uint8).repeat(2, axis=0)
    ds = make_dicom(px, WindowCenter=100, WindowWidth=50, VOILUTFunction="SIGMOID")
    out = load_original(_to_bytes(ds))[0]
    expected = 1 / (1 + np.exp(-4 * (np.array([50, 100, 150]) - 100) / 50))
    assert np.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize(
    "syntax", ["RLELossless", "JPEGLSLossless", "JPEG2000Lossless"],
)
def test_synthetic_compressed_roundtrip(syntax: str) -> None:
    import pydicom.uid as uids

    rng = np.random.default_rng(0)
    px = (rng.random((2, 32, 48)) * 4095).astype(np.uint16)
    ds = make_dicom(px, bits_stored=12, photometric="MONOCHROME1")
    plain = load_original(_to_bytes(ds), frame=1)
    try:
        ds.compress(getattr(uids, syntax))
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"no encoder for {syntax}: {exc}")
    assert ds.file_meta.TransferSyntaxUID == getattr(uids, syntax)
    comp = load_original(_to_bytes(ds), frame=1)
    assert np.array_equal(plain, comp)
    assert np.allclose(plain, 1.0 - px[1] / 4095.0, atol=1e-6)


def test_no_pixel_data_is_clear_error() -> None:
    ds = make_dicom(np.zeros((4, 4), np.uint8))
    del ds.PixelData
    with pytest.raises(DicomError, match="no pixel data"):
        load_original(_to_bytes(ds))


def test_png_8_16_tiff_and_jpeg(tmp_path) -> None:
    g8 = (np.arange(40 * 30) % 256).astype(np.uint8).reshape(40, 30)
    g16 = (np.arange(40 * 30) * 50 % 65536).astype(np.uint16).reshape(40, 30)
    Image.fromarray(g8).save(tmp_path / "a.png")
    Image.fromarray(g16).save(tmp_path / "b.png")
    Image.fromarray(g16).save(tmp_path / "c.tif")
    Image.fromarray(g8).save(tmp_path / "d.jpg", quality=100)
    assert np.array_equal(load_original(tmp_path / "a.png"), (g8 / 255.0).astype(np.float32))
    assert np.allclose(load_original(tmp_path / "b.png"), g16 / 65535.0, atol=1e-7)
    assert np.allclose(load_original(tmp_path / "c.tif"), g16 / 65535.0, atol=1e-7)
    assert np.abs(load_original(tmp_path / "d.jpg") - g8 / 255.0).mean() < 0.01
    # shape is (rows, columns): no transpose
    assert load_original(tmp_path / "a.png").shape == (40, 30)


def test_grey_rgb_png_is_exact_colour_png_warns(tmp_path) -> None:
    g = (np.arange(32 * 32) % 256).astype(np.uint8).reshape(32, 32)
    Image.fromarray(np.dstack([g, g, g])).save(tmp_path / "grey.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(load_original(tmp_path / "grey.png"), (g / 255.0).astype(np.float32))
    c = np.dstack([g, np.zeros_like(g), 255 - g])
    Image.fromarray(c).save(tmp_path / "colour.png")
    with pytest.warns(ColourConvertedWarning):
        out = load_original(tmp_path / "colour.png")
    assert np.allclose(out, (0.299 * g + 0.114 * (255 - g)) / 255.0, atol=1e-6)


def test_bus_bra_sample_matches_opencv(sample_root) -> None:
    import cv2

    for p in sorted((sample_root / "Images").glob("*.png"))[:5]:
        ref = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        assert np.array_equal(load_original(p), ref)
