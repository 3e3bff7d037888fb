"""The learned image-area segmenter: its geometry helpers, the network and the shipped weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from photorad.models import create_model
from photorad.rectify.geometry import polygon_area
from photorad.rectify.segment import (
    SEG_MULTIPLE,
    SEG_SIDE,
    Segmenter,
    network_input,
    quad_from_prob,
    reduce_photo,
    target_mask,
)

QUAD = np.array([[300.3, 180.6], [1010.2, 150.1], [1060.7, 860.4], [260.9, 900.2]])


def _photo(h: int = 1008, w: int = 1344) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


@pytest.mark.parametrize("shape", [(1008, 1344), (3024, 4032), (1344, 1008), (500, 1700)])
def test_reduce_photo_keeps_the_pixel_grid(shape: tuple[int, int]) -> None:
    red = reduce_photo(_photo(*shape))
    h, w = red.grey.shape
    assert max(red.valid) == SEG_SIDE
    assert h % SEG_MULTIPLE == 0 and w % SEG_MULTIPLE == 0
    assert red.valid[0] <= h and red.valid[1] <= w
    pts = np.array([[0.0, 0.0], [shape[1] - 1.0, shape[0] - 1.0], [123.4, 56.7]])
    np.testing.assert_allclose(red.to_photo(red.to_reduced(pts)), pts, atol=1e-9)
    # the photo's outer edge (-0.5 … size - 0.5) maps onto the reduced photo's outer edge
    edge = red.to_reduced(np.array([[-0.5, -0.5], [shape[1] - 0.5, shape[0] - 0.5]]))
    np.testing.assert_allclose(edge, [[-0.5, -0.5], [red.valid[1] - 0.5, red.valid[0] - 0.5]],
                               atol=1e-9)


def test_reduce_photo_averages_the_area() -> None:
    photo = _photo()
    photo[:, 672:] = 200  # right half bright: the reduced photo is bright on its right half
    red = reduce_photo(photo)
    g = red.grey[: red.valid[0], : red.valid[1]]
    assert g[:, : red.valid[1] // 2 - 1].max() == 0.0
    np.testing.assert_allclose(g[:, red.valid[1] // 2 + 1:], 200 / 255, atol=1e-6)


def test_network_input_channels() -> None:
    x = network_input(np.array([[0.0, 0.25, 1.0]], np.float32))
    assert x.shape == (2, 1, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [-2.0, -1.0, 2.0])
    np.testing.assert_allclose(x[1, 0], [-2.0, 0.0, 2.0])


def test_target_mask_area_matches_the_polygon() -> None:
    red = reduce_photo(_photo())
    m = target_mask(QUAD, red)
    assert m.min() >= 0.0 and m.max() <= 1.0
    # area in reduced pixels against the shoelace formula on the reduced corners
    expected = polygon_area(red.to_reduced(QUAD))
    assert abs(float(m.sum()) - expected) < 0.01 * expected
    # soft only along the border
    assert np.count_nonzero((m > 0.02) & (m < 0.98)) < 0.15 * np.count_nonzero(m > 0.5)


def test_quad_from_prob_recovers_the_quad() -> None:
    red = reduce_photo(_photo())
    prob = target_mask(QUAD, red)
    sq = quad_from_prob(prob, red)
    assert sq is not None
    err = np.hypot(*(sq.corners - QUAD).T)
    # a reduced pixel is 7 photo pixels here; the fit is well within one
    assert err.max() < 0.5 / red.sx
    assert sq.iou_with_mask > 0.98 and sq.confidence > 0.8


def test_quad_from_prob_without_an_area() -> None:
    red = reduce_photo(_photo())
    assert quad_from_prob(np.zeros_like(red.grey), red) is None
    assert quad_from_prob(np.full_like(red.grey, 0.4), red) is None


def test_quad_from_prob_is_unsure_of_a_blob() -> None:
    red = reduce_photo(_photo())
    prob = np.zeros_like(red.grey)
    cv2.circle(prob, (90, 70), 40, 1.0, -1)
    prob = cv2.GaussianBlur(prob, (0, 0), 6.0)
    sq = quad_from_prob(prob, red)
    assert sq is not None and sq.confidence < 0.8


def test_quadseg_maps_b1hw_logits() -> None:
    net = create_model("quadseg_s").eval()
    import torch

    x = torch.from_numpy(network_input(np.random.default_rng(0).random((144, 192), np.float32)))
    with torch.inference_mode():
        y = net(x[None].repeat(2, 1, 1, 1))
    assert y.shape == (2, 1, 144, 192)
    assert torch.isfinite(y).all()


def test_shipped_segmenter_finds_a_simulated_image() -> None:
    seg = Segmenter.shipped()
    if seg is None:
        pytest.fail("the shipped segmenter weights are missing from photorad/weights")
    from photorad.data.paths import sample_dir
    from photorad.io import load_original
    from photorad.simulate import simulate_photo

    original = load_original(sample_dir() / "Images" / "bus_0338-l.png")
    res = simulate_photo(original, preset="typical", seed=3, size=(1344, 1008))
    sq = seg.quad(res.photo)
    assert sq is not None
    red = reduce_photo(res.photo)
    # within two reduced pixels of the truth (before any edge refinement)
    assert np.hypot(*(sq.corners - res.corners).T).max() < 2.0 / red.sx
    assert seg.meta.sha256 is not None


def test_quad_from_prob_notices_an_area_running_off_the_photo() -> None:
    red = reduce_photo(_photo())
    inside = quad_from_prob(target_mask(QUAD, red), red)
    cut = quad_from_prob(target_mask(QUAD - np.array([320.0, 0.0]), red), red)
    assert inside is not None and not inside.touches_edge
    assert cut is not None and cut.touches_edge
