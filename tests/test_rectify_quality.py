from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from photorad.errors import InvalidCornersError
from photorad.rectify import detect, quality
from photorad.rectify.quality import (
    EDGE_WARNING_KEYS,
    THRESHOLDS,
    _edges_check,
    edges_flagged,
    grade,
    keystone_angle,
)
from tests.test_rectify_synth import (
    dark_bottom_original,
    render_photo,
    skewed_corners,
    textured_original,
)


def _photo(seed: int = 0, **kw: float) -> tuple[np.ndarray, np.ndarray]:
    truth = skewed_corners(seed=seed, skew=0.02)
    return render_photo(textured_original(seed=seed, **kw), truth, seed=seed), truth


def test_clean_render_passes() -> None:
    photo, corners = _photo()
    rep = quality(photo, corners, original_size=(320, 240))
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["status"] == rep.status
    assert rep["glare"].status == "pass"
    assert rep["keystone"].status == "pass"
    assert rep["resolution"].value == pytest.approx(2.25, rel=0.1)
    assert rep["resolution"].status == "pass"
    assert rep["blur"].value is not None and rep["blur"].value < 0.7


def test_blur_is_measured_in_photo_pixels() -> None:
    photo, corners = _photo(seed=1)
    sharp = quality(photo, corners, original_size=(320, 240))["blur"].value
    blurred = cv2.GaussianBlur(photo, (0, 0), 4.0)
    rep = quality(blurred, corners, original_size=(320, 240))
    # σ = 4 photo px ≈ 1.8 original px (2.25 photo px per original px) on top of the sharp edge.
    expected = np.hypot(4.0 / 2.25, sharp)
    assert rep["blur"].value == pytest.approx(expected, rel=0.2)
    assert rep["blur"].status == "fail"


def test_glare_and_exposure() -> None:
    photo, corners = _photo(seed=2)
    c = corners.mean(axis=0).astype(int)
    glared = photo.copy()
    cv2.circle(glared, (int(c[0]), int(c[1])), 60, (255, 255, 255), -1)
    rep = quality(glared, corners, original_size=(320, 240))
    assert rep["glare"].value > 0.02 and rep["glare"].status == "fail"
    dark = (photo // 8).astype(np.uint8)
    assert quality(dark, corners)["exposure"].status == "fail"


def test_keystone_angle() -> None:
    w, h = 4000, 3000
    f = 0.8 * w
    # A fronto-parallel rectangle: 0°.
    flat = np.array([[1000, 800], [3000, 800], [3000, 2200], [1000, 2200]], float)
    assert keystone_angle(flat, (w, h)) < 0.5
    # Project a rectangle rotated by 30° about the vertical axis with the same camera model.
    ang = np.radians(30.0)
    pts3 = np.array([[-1, -0.7, 0], [1, -0.7, 0], [1, 0.7, 0], [-1, 0.7, 0]], float)
    rot = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
    cam = pts3 @ rot.T + np.array([0, 0, 5.0])
    proj = cam[:, :2] / cam[:, 2:3] * f + np.array([(w - 1) / 2, (h - 1) / 2])
    assert keystone_angle(proj, (w, h)) == pytest.approx(30.0, abs=0.1)


def test_grades() -> None:
    for name, (ok, warn) in THRESHOLDS.items():
        assert grade(name, ok) == "pass"
        assert grade(name, warn) in ("warn", "pass")
    assert grade("resolution", 0.5) == "fail"
    assert grade("glare", 0.5) == "fail"
    assert grade("blur", None) == "warn"


def test_unknown_original_size_is_noted() -> None:
    photo, corners = _photo(seed=3)
    rep = quality(photo, corners)
    assert "nominal" in rep["resolution"].note


def test_bad_corners() -> None:
    photo, _ = _photo()
    with pytest.raises(InvalidCornersError):
        quality(photo, [[0, 0], [5000, 0], [5000, 10], [0, 10]])


def test_edges_check_only_for_detected_quads() -> None:
    photo, corners = _photo()
    assert "edges" not in quality(photo, corners).checks  # manual corners: nothing to say
    rep = quality(photo, detect(photo))
    assert rep["edges"].status == "pass" and rep["edges"].value == 4


def test_invisible_edge_warns_with_advice() -> None:
    truth = skewed_corners(seed=0, skew=0.05)
    photo = render_photo(dark_bottom_original(0, kind="fade", fraction=0.4), truth, seed=0)
    rep = quality(photo, detect(photo))
    assert rep["edges"].status == "warn"
    assert rep["edges"].value == 3
    assert "bottom edge" in rep["edges"].note and "window level" in rep["edges"].note
    assert rep.status in ("warn", "fail")


def test_screen_like_quad_warns_and_says_why() -> None:
    # detect's "may be the whole screen" report makes the edges check warn even with four sides
    # found, and the note says what to check; both reports together are both named.
    from photorad.rectify.geometry import Quad

    photo, corners = _photo()
    base = {"edges_not_found": [], "screen_edge_sides": ["left", "right"]}
    rep = quality(photo, Quad(corners, score=0.5, method="contour+edges", details=base))
    assert rep["edges"].status == "warn" and rep["edges"].value == 4
    assert "whole screen" in rep["edges"].note and "left and right" in rep["edges"].note
    both = {**base, "edges_not_found": ["bottom"]}
    rep = quality(photo, Quad(corners, score=0.5, method="contour+edges", details=both))
    assert rep["edges"].value == 3
    assert "bottom edge" in rep["edges"].note and "whole screen" in rep["edges"].note


def test_inner_side_quad_warns_and_says_why() -> None:
    # detect's "side inside the image" report (the image's borders run on past the side's
    # corners) makes the edges check warn with four sides found, and the note says what to do.
    from photorad.rectify.geometry import Quad

    photo, corners = _photo()
    details = {"edges_not_found": [], "screen_edge_sides": [], "inner_sides": ["bottom"]}
    rep = quality(photo, Quad(corners, score=0.5, method="contour+edges", details=details))
    assert rep["edges"].status == "warn" and rep["edges"].value == 4
    note = rep["edges"].note
    assert "bottom edge may lie inside the image" in note and "by hand" in note
    assert "whole screen" not in note
    # Without the key (older details) nothing changes.
    del details["inner_sides"]
    rep = quality(photo, Quad(corners, score=0.9, method="contour+edges", details=details))
    assert rep["edges"].status == "pass"


def test_background_inside_quad_warns_and_says_why() -> None:
    # detect's "viewer background inside" report makes the edges check warn with four sides
    # found, and the note names the sides and says what to check.
    from photorad.rectify.geometry import Quad

    photo, corners = _photo()
    details = {"edges_not_found": [], "screen_edge_sides": [], "inner_sides": [],
               "background_inside_sides": ["left", "bottom"]}
    rep = quality(photo, Quad(corners, score=0.5, method="contour+edges", details=details))
    assert rep["edges"].status == "warn" and rep["edges"].value == 4
    note = rep["edges"].note
    assert "viewer background" in note and "left and bottom" in note and "by hand" in note


@pytest.mark.parametrize("key", [None, *EDGE_WARNING_KEYS])
def test_edges_flagged_matches_the_edges_check(key: str | None) -> None:
    # eval_rectify counts a quad as flagged with edges_flagged(); the user sees the edges check.
    # The two must agree for every key detect() can set.
    details: dict[str, list[str]] = {k: [] for k in EDGE_WARNING_KEYS}
    if key is not None:
        details[key] = ["bottom", "left"]
    check = _edges_check(SimpleNamespace(details=details))
    assert check is not None
    assert edges_flagged(details) == (key is not None) == (check.status == "warn")
