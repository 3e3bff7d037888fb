from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photorad.errors import PhotoradError
from photorad.io import load_original, save_png


def test_png_8_and_16_bit_roundtrip(tmp_path, rng) -> None:
    img = rng.random((37, 53)).astype(np.float32)
    p8 = save_png(tmp_path / "a8.png", img)
    p16 = save_png(tmp_path / "a16.png", img, bit_depth=16)
    with Image.open(p16) as im:
        assert im.mode.startswith("I;16") or im.mode == "I"
    back8, back16 = load_original(p8), load_original(p16)
    assert np.abs(back8 - img).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back16 - img).max() <= 0.5 / 65535 + 1e-6


def test_rgb_order_preserved(tmp_path) -> None:
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 200  # red
    p = save_png(tmp_path / "red.png", img)
    with Image.open(p) as im:
        assert im.getpixel((0, 0)) == (200, 0, 0)


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 5)), np.zeros((4, 4, 2)), np.full((4, 4), np.nan)]
)
def test_bad_arrays_rejected(tmp_path, bad) -> None:
    with pytest.raises(PhotoradError):
        save_png(tmp_path / "x.png", bad)
    assert not list(tmp_path.iterdir()), "nothing half-written"
