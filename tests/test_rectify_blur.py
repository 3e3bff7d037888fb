"""``detect`` on blurred, noisy photos (the fallback with a blur-scale edge measure, issue #4).

On the simulator's hard preset most failures were photos whose image borders are clear to a
person but spread over several pixels by defocus and camera shake, with high-ISO noise on top:
the sharp edge measure's 3-tap derivative then peaks on noise, and no side gets enough support.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from photorad.errors import NoScreenFoundError
from photorad.rectify import detect
from tests.test_rectify_synth import render_photo, skewed_corners, textured_original


def _dim_original(seed: int, *, fade: float = 0.0) -> np.ndarray:
    """A dim, fine-textured image (0.08–0.23 on a 0.03 viewport); its bottom ``fade`` fraction
    falls linearly to the viewport level, so that its bottom border cannot be seen."""
    o = textured_original(seed=seed, sigma=1.0)
    o = 0.08 + 0.15 * (o - 0.15) / 0.8
    if fade:
        k = int(fade * o.shape[0])
        ramp = np.linspace(1.0, 0.0, k, dtype=np.float32)[:, None]
        o[-k:] = 0.03 + (o[-k:] - 0.03) * ramp
    return o.astype(np.float32)


def _blurred_photo(original: np.ndarray, truth: np.ndarray, *, seed: int, sigma: float = 8.0,
                   noise: float = 0.03) -> np.ndarray:
    """Render, blur by a Gaussian of ``sigma`` px (defocus), then add grey noise (high ISO):
    noise after the blur, as in a camera, so that it is not blurred away."""
    photo = render_photo(original, truth, seed=seed, noise=0.0).astype(np.float32)
    photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    rng = np.random.default_rng(seed + 100)
    photo = photo + rng.normal(0.0, noise * 255.0, photo.shape[:2])[..., None]
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(3))
def test_blurred_noisy_image_is_found(seed: int) -> None:
    # σ = 8 px of blur and noise 0.03 on a step of about 0.1: every side is plain to see, but
    # the old detector raised "screen edges not visible" on all three seeds.
    truth = skewed_corners(seed=seed, skew=0.05)
    quad = detect(_blurred_photo(_dim_original(seed), truth, seed=seed))
    diag = float(np.hypot(*(truth[2] - truth[0])))
    assert np.hypot(*(quad.corners - truth).T).max() < 0.005 * diag
    assert quad.details["edges_not_found"] == []
    assert quad.details["blur_px"] > 0
    assert quad.score > 0.5


@pytest.mark.parametrize("seed", range(2))
def test_blurred_image_without_visible_bottom_is_refused(seed: int) -> None:
    # The bottom half fades into the viewport: the fallback finds three sides at most and must
    # not guess the fourth; the reason says that blur was allowed for (the old detector's did
    # not).
    truth = skewed_corners(seed=seed, skew=0.05)
    photo = _blurred_photo(_dim_original(seed, fade=0.5), truth, seed=seed)
    with pytest.raises(NoScreenFoundError, match="even allowing for blur"):
        detect(photo)


def test_sharp_photo_does_not_use_the_blur_fallback() -> None:
    truth = skewed_corners(seed=1, skew=0.05)
    photo = render_photo(textured_original(seed=1), truth, seed=1)
    assert detect(photo).details["blur_px"] == 0.0
