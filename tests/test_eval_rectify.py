"""eval/eval_rectify.py: the measures computed from the original and the simulator's settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "eval_rectify.py"

# A viewer showing the original as is (window 1, level 0.5), a dark viewport, some ambient light.
PARAMS = {"window_width": 1.0, "window_level": 0.5, "black_level": 0.005, "display_gamma": 2.2,
          "viewport_grey": 0.02, "ambient": 0.03, "screen_reflectance": 0.05}


@pytest.fixture(scope="module")
def ev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_rectify", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_content_box_is_the_visible_part(ev: ModuleType) -> None:
    # Content in rows 0–59 and columns 10–89 of a 100×100 image; the rest is as dark as the
    # viewport (drive 0.02): the box covers 60 × 80 pixels.
    img = np.full((100, 100), 0.02, np.float32)
    img[:60, 10:90] = 0.5
    assert ev.content_box_fraction(img, PARAMS) == pytest.approx(0.6 * 0.8)


def test_content_box_ignores_rows_with_a_few_visible_pixels(ev: ModuleType) -> None:
    # One bright pixel in the last row (1 % of the row, below the 2 % rule) does not extend the
    # box; three (3 %) do.
    img = np.full((100, 100), 0.02, np.float32)
    img[:50] = 0.5
    img[99, 40] = 1.0
    assert ev.content_box_fraction(img, PARAMS) == pytest.approx(0.5)
    img[99, 41:43] = 1.0
    assert ev.content_box_fraction(img, PARAMS) == pytest.approx(1.0)


def test_content_box_of_an_image_as_dark_as_the_viewport_is_empty(ev: ModuleType) -> None:
    assert ev.content_box_fraction(np.full((40, 60), 0.02, np.float32), PARAMS) == 0.0


def test_edge_contrast_sees_a_dark_bottom(ev: ModuleType) -> None:
    img = np.full((100, 100), 0.5, np.float32)
    img[-10:] = 0.02
    c = ev.edge_contrast(img, PARAMS)
    assert c["bottom"] == pytest.approx(0.0, abs=1e-6)
    assert min(c["top"], c["left"], c["right"]) > ev.VISIBLE_CONTRAST
