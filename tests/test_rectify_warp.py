from __future__ import annotations

import itertools

import numpy as np
import pytest
from skimage.transform import ProjectiveTransform
from skimage.transform import warp as sk_warp

from photorad.errors import InvalidCornersError, PhotoradError
from photorad.metrics import psnr
from photorad.rectify import Quad, order_corners, validate_corners, warp
from photorad.rectify.geometry import rect_corners
from photorad.rectify.warp import apply_homography, homography
from tests.test_rectify_synth import render_photo, skewed_corners, textured_original


def test_identity_corners_return_the_grey_photo() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    out = warp(photo, rect_corners(120, 90))
    ref = (photo @ np.array([0.299, 0.587, 0.114])) / 255.0
    assert out.dtype == np.float32 and out.shape == (90, 120)
    np.testing.assert_allclose(out, ref, atol=2e-3)


def test_bt601_luma() -> None:
    for ch, weight in enumerate((0.299, 0.587, 0.114)):
        photo = np.zeros((80, 80, 3), np.uint8)
        photo[..., ch] = 255
        out = warp(photo, rect_corners(80, 80), size=(40, 40))
        # Downscaling converts in 8 bits first (±0.5/255 rounding, documented in warp).
        np.testing.assert_allclose(out, weight, atol=2.5e-3)
        same = warp(photo, rect_corners(80, 80))  # no downscaling: exact float conversion
        np.testing.assert_allclose(same, weight, atol=1e-5)


def test_matches_skimage_when_upsampling() -> None:
    """Against scikit-image's projective warp (an independent implementation)."""
    orig = textured_original(120, 160, seed=3, sigma=3.0)
    photo = np.clip(np.rint(np.repeat(orig[..., None], 3, axis=2) * 255), 0, 255).astype(np.uint8)
    corners = np.array([[10.3, 8.2], [150.1, 14.7], [140.5, 110.2], [20.4, 100.9]])
    out = warp(photo, corners, size=(300, 220))
    h = homography(rect_corners(300, 220), corners)  # output → photo
    ref = sk_warp(photo[..., 1] / 255.0, ProjectiveTransform(h), output_shape=(220, 300),
                  order=3, mode="edge")
    assert np.abs(out - ref).mean() < 3e-3
    assert np.abs(out - ref).max() < 0.03


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_original_from_synthetic_photo(seed: int) -> None:
    orig = textured_original(240, 320, seed=seed)
    corners = skewed_corners(seed=seed)
    photo = render_photo(orig, corners, seed=seed)
    out = warp(photo, Quad(corners, score=1.0, method="manual"), size=(320, 240))
    assert out.shape == (240, 320)
    # The render is a 0.98/1/1.03 tinted RGB, so luma is ~0.99 × the original.
    assert psnr(orig * 0.9935, out, data_range=1.0) > 30.0


def test_downscaling_is_antialiased() -> None:
    """A fine checkerboard far above the output's Nyquist rate must average to grey, not alias."""
    yy, xx = np.mgrid[0:1200, 0:1600]
    board = ((yy + xx) % 2).astype(np.uint8) * 255
    photo = np.repeat(board[..., None], 3, axis=2)
    out = warp(photo, np.array([[100, 80], [1500, 120], [1450, 1100], [150, 1050]], float),
               size=(140, 100))
    assert abs(out.mean() - 0.5) < 0.02
    assert out.std() < 0.03


def test_no_black_borders_at_photo_edge() -> None:
    photo = np.full((100, 100, 3), 128, np.uint8)
    out = warp(photo, rect_corners(100, 100), size=(37, 53))
    assert out.min() > 0.49


def test_default_size_follows_quad() -> None:
    photo = np.full((400, 600, 3), 100, np.uint8)
    out = warp(photo, np.array([[99.5, 49.5], [399.5, 49.5], [399.5, 249.5], [99.5, 249.5]]))
    assert out.shape == (200, 300)


def test_homography_roundtrip() -> None:
    src = rect_corners(300, 200)
    dst = skewed_corners(seed=4)
    h = homography(src, dst)
    np.testing.assert_allclose(apply_homography(h, src), dst, atol=1e-8)


# --- corner ordering and validation -----------------------------------------------------------


def _quads() -> list[np.ndarray]:
    return [
        np.array([[10, 10], [200, 12], [190, 150], [15, 140]], float),
        # strong keystone: BL has a smaller x + y than TL
        np.array([[300, 20], [400, 0], [420, 400], [0, 300]], float),
        # rotated ~30°
        np.array([[50, 0], [223, 100], [173, 187], [0, 87]], float),
        skewed_corners(seed=7),
    ]


@pytest.mark.parametrize("quad", _quads())
def test_order_corners_all_permutations(quad: np.ndarray) -> None:
    for perm in itertools.permutations(range(4)):
        np.testing.assert_array_equal(order_corners(quad[list(perm)]), quad)


def test_order_corners_beats_sum_sort() -> None:
    quad = _quads()[1]
    assert not np.array_equal(quad[np.argmin(quad.sum(axis=1))], quad[0])  # x + y would fail
    np.testing.assert_array_equal(order_corners(quad[::-1]), quad)


def test_validate_accepts_and_reorders() -> None:
    q = _quads()[0]
    np.testing.assert_array_equal(validate_corners(q[[2, 3, 0, 1]], image_size=(300, 200)), q)
    np.testing.assert_array_equal(validate_corners(q[::-1], image_size=(300, 200)), q)


@pytest.mark.parametrize(
    ("corners", "match"),
    [
        ([[10, 10], [200, 12], [15, 140], [190, 150]], "self-intersecting"),
        ([[10, 10], [200, 12], [190, 150], [-40, 140]], "outside"),
        ([[10, 10], [200, 12], [190, 250], [15, 140]], "outside"),
        ([[10, 10], [200, 10], [100, 20], [15, 140]], "convex"),
        ([[10, 10], [12, 10], [12, 12], [10, 12]], "too small"),
        ([[10, 10], [200, 12], [190, 150]], "4"),
        ([[10, np.nan], [200, 12], [190, 150], [15, 140]], "NaN"),
        ("abc", "4"),
    ],
)
def test_validate_rejects(corners: object, match: str) -> None:
    with pytest.raises(InvalidCornersError, match=match):
        validate_corners(corners, image_size=(300, 200))


def test_warp_rejects_bad_input() -> None:
    photo = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(PhotoradError):
        warp(photo, [[0, 0], [50, 50], [0, 50], [50, 0]])
    with pytest.raises(PhotoradError):
        warp(photo, rect_corners(100, 100), size=(0, 10))
    with pytest.raises(PhotoradError):
        warp(np.zeros((10, 10, 3), np.int64), rect_corners(10, 10))


def test_quad_to_dict_is_json() -> None:
    import json

    q = Quad(np.array([[1, 2], [3, 2], [3, 4], [1, 4]]), score=1.7, method="manual")
    d = json.loads(json.dumps(q.to_dict()))
    assert d["score"] == 1.0 and d["corners"][2] == [3.0, 4.0]
