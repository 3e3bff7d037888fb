"""A corpus of ≥ 30 bad files: the readers raise only documented photorad exceptions."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photorad.errors import (
    CorruptImageError,
    DicomError,
    ImageTooLargeError,
    ImageTooSmallError,
    PhotoradError,
    UnsupportedImageError,
)
from photorad.io import encode_jpeg, encode_png, load_original, load_photo

from ._dicom_factory import make_dicom


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _corpus() -> dict[str, tuple[bytes, type[PhotoradError], type[PhotoradError] | None]]:
    """name → (bytes, error expected from load_photo, error expected from load_original or None=ok)."""
    rng = np.random.default_rng(7)
    photo = (rng.random((128, 160, 3)) * 255).astype(np.uint8)
    jpg = encode_jpeg(photo, quality=90)
    png = encode_png(photo)
    gif = io.BytesIO()
    Image.fromarray(photo).save(gif, format="GIF")
    bmp = io.BytesIO()
    Image.fromarray(photo).save(bmp, format="BMP")
    ds_nopix = make_dicom(np.zeros((8, 8), np.uint8))
    del ds_nopix.PixelData
    ds_ok = make_dicom(np.full((80, 80), 100, np.uint8))
    dcm_ok = _dicom_bytes(ds_ok)
    ds_short = make_dicom(np.zeros((64, 64), np.uint16))
    ds_short.PixelData = b"\x00" * 100  # far fewer bytes than Rows × Columns × 2
    png_badcrc = bytearray(png)
    png_badcrc[40] ^= 0xFF
    C, U, L = CorruptImageError, UnsupportedImageError, ImageTooLargeError
    corpus = {
        "empty.jpg": (b"", C, C),
        "empty.png": (b"", C, C),
        "one_byte.jpg": (b"\xff", U, U),
        "random_16.bin": (rng.bytes(16), U, U),
        "random_4k.jpg": (rng.bytes(4096), U, U),
        "random_64k.png": (rng.bytes(65536), U, U),
        "text_renamed.jpg": (b"hello, I am not a photo\n" * 20, U, U),
        "html.png": (b"<!doctype html><html><body>x</body></html>", U, U),
        "pdf.jpg": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", U, U),
        "zip.jpg": (b"PK\x03\x04" + rng.bytes(200), U, U),
        "jpeg_soi_only.jpg": (b"\xff\xd8\xff", C, C),
        "jpeg_trunc_10.jpg": (jpg[:10], C, C),
        "jpeg_trunc_200.jpg": (jpg[:200], C, C),
        "jpeg_trunc_half.jpg": (jpg[: len(jpg) // 2], C, C),
        "jpeg_trunc_end.jpg": (jpg[:-50], C, C),
        "jpeg_garbage_after_header.jpg": (jpg[:300] + rng.bytes(3000), C, C),
        "png_sig_only.png": (png[:8], C, C),
        "png_trunc_30.png": (png[:30], C, C),
        "png_trunc_half.png": (png[: len(png) // 2], C, C),
        "png_bad_crc.png": (bytes(png_badcrc), C, C),
        "png_no_idat.png": (_png_header_only(128, 128), C, C),
        "png_100k_x_100k.png": (_png_header_only(100_000, 100_000), L, L),
        "png_60k_x_1k.png": (_png_header_only(60_000, 1_000), L, C),
        "png_zero_width.png": (_png_header_only(0, 10), C, C),
        "gif.jpg": (gif.getvalue(), U, U),
        "bmp.png": (bmp.getvalue(), U, U),
        "tiny_1x1.png": (encode_png(np.zeros((1, 1, 3), np.uint8)), ImageTooSmallError, None),
        "tiny_8x600.jpg": (encode_jpeg(np.zeros((8, 600, 3), np.uint8)), ImageTooSmallError, None),
        "dicom_as_photo.dcm": (dcm_ok, U, None),
        "dicom_no_pixels.dcm": (_dicom_bytes(ds_nopix), U, DicomError),
        "dicom_short_pixels.dcm": (_dicom_bytes(ds_short), U, DicomError),
        "dicom_truncated.dcm": (dcm_ok[: len(dcm_ok) // 3], U, DicomError),
        "dicom_preamble_only.dcm": (b"\x00" * 128 + b"DICM", U, DicomError),
        "utf16_text.jpg": ("no image here".encode("utf-16"), U, U),
    }
    return corpus


CORPUS = _corpus()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_load_photo_bad_input(name: str, tmp_path: Path) -> None:
    data, expected, _ = CORPUS[name]
    path = tmp_path / name
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(PhotoradError) as info:
            load_photo(source)
        assert isinstance(info.value, expected), f"{name}: got {type(info.value).__name__}: {info.value}"
        assert str(info.value)  # a message a person can read


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_load_original_bad_input(name: str, tmp_path: Path) -> None:
    data, _, expected = CORPUS[name]
    path = tmp_path / name
    path.write_bytes(data)
    if expected is None:
        out = load_original(path)
        assert out.dtype == np.float32 and out.ndim == 2
        assert 0.0 <= out.min() and out.max() <= 1.0
        return
    with pytest.raises(PhotoradError) as info:
        load_original(path)
    assert isinstance(info.value, expected), f"{name}: got {type(info.value).__name__}: {info.value}"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CorruptImageError, match="not found"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(UnsupportedImageError, match="folder"):
        load_original(tmp_path)
    with pytest.raises(UnsupportedImageError):
        load_photo(12345)  # type: ignore[arg-type]


def test_error_messages_carry_no_pixel_data(tmp_path: Path) -> None:
    data = CORPUS["jpeg_trunc_half.jpg"][0]
    with pytest.raises(PhotoradError) as info:
        load_photo(data)
    assert len(str(info.value)) < 300
