"""Small synthetic screen photos with known corners, for the rectify tests.

These are deliberately simple renders (a textured image on a black viewport inside a bezel,
perspective-warped into a room), independent of ``photorad.simulate``: they test the geometry,
not the photographic realism.
"""

from __future__ import annotations

import cv2
import numpy as np

from photorad.rectify.geometry import rect_corners
from photorad.rectify.warp import homography


def textured_original(
    height: int = 240, width: int = 320, *, seed: int = 0, sigma: float = 2.0
) -> np.ndarray:
    """Smooth random texture, ``float32`` in [0.15, 0.95] (no black border)."""
    rng = np.random.default_rng(seed)
    a = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), sigma)
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-6)
    return (0.15 + 0.8 * a).astype(np.float32)


def dark_bottom_original(
    seed: int = 0, *, kind: str = "dim", fraction: float = 0.3
) -> np.ndarray:
    """:func:`textured_original` whose bottom ``fraction`` is dark, like an ultrasound far field.

    ``"dim"``: textured but dim (0.07–0.14, a little above the viewport's 0.03), so the bottom
    border is visible as a faint step. ``"fade"``: fades linearly to the viewport level at the
    last row, so the bottom border cannot be seen at all.
    """
    o = textured_original(seed=seed)
    k = int(fraction * o.shape[0])
    if kind == "dim":
        a = (o[-k:] - 0.15) / 0.8
        o[-k:] = 0.07 + 0.07 * a
    elif kind == "fade":
        ramp = np.linspace(1.0, 0.0, k, dtype=np.float32)[:, None]
        o[-k:] = 0.03 + (o[-k:] - 0.03) * ramp
    else:
        raise ValueError(kind)
    return o


def render_photo(
    original: np.ndarray,
    corners: np.ndarray,
    *,
    photo_size: tuple[int, int] = (1600, 1200),
    viewport_pad: float = 0.25,
    bezel: float = 0.06,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Render ``original`` on a dark viewport at ``corners`` (TL, TR, BR, BL) of a photo.

    The viewport (level 0.03) extends ``viewport_pad`` × the image size around the image, the
    bezel (0.10) a further ``bezel``; the room around it is a mid-grey gradient.
    """
    w, h = photo_size
    oh, ow = original.shape
    hmat = homography(rect_corners(ow, oh), np.asarray(corners, dtype=np.float64))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    photo = (0.45 + 0.2 * xx / w - 0.1 * yy / h).astype(np.float32)

    def fill(pad: float, level: float) -> None:
        px, py = pad * ow, pad * oh
        quad = np.array(
            [[-0.5 - px, -0.5 - py], [ow - 0.5 + px, -0.5 - py],
             [ow - 0.5 + px, oh - 0.5 + py], [-0.5 - px, oh - 0.5 + py]]
        )
        q = cv2.perspectiveTransform(quad[None], hmat)[0]
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.round(q * 16).astype(np.int32), 1, cv2.LINE_AA, shift=4)
        photo[mask > 0] = level

    fill(viewport_pad + bezel, 0.10)
    fill(viewport_pad, 0.03)
    # Supersample the image area 4× so that its edges are anti-aliased like a real camera's.
    s = 4
    up = np.diag([s, s, 1.0]) @ hmat
    up = np.array([[1, 0, (s - 1) / 2], [0, 1, (s - 1) / 2], [0, 0, 1]]) @ up
    big = cv2.warpPerspective(original, up, (w * s, h * s), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    # Coverage from nearest-neighbour sampling of a ones image: exact to 1/(2s) photo pixel.
    cover = cv2.warpPerspective(np.ones_like(original), up, (w * s, h * s),
                                flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0.0)
    valid = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    img = cv2.resize(big * cover, (w, h), interpolation=cv2.INTER_AREA)
    inside = valid > 0
    photo[inside] = photo[inside] * (1 - valid[inside]) + img[inside]
    rng = np.random.default_rng(seed)
    photo = photo + rng.normal(0, noise, photo.shape).astype(np.float32)
    rgb = np.stack([photo * 0.98, photo, photo * 1.03], axis=-1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def skewed_corners(
    photo_size: tuple[int, int] = (1600, 1200), *, scale: float = 0.45, skew: float = 0.08,
    seed: int = 0,
) -> np.ndarray:
    """A random perspective quad around the photo centre, TL, TR, BR, BL."""
    rng = np.random.default_rng(seed)
    w, h = photo_size
    cx, cy = w / 2, h / 2
    hw, hh = scale * w / 2, scale * w / 2 * 0.75
    base = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    jitter = rng.uniform(-skew, skew, (4, 2)) * np.array([w, h])
    return base + jitter + np.array([cx, cy])


def test_render_places_image_at_corners() -> None:
    orig = textured_original()
    corners = skewed_corners(seed=1)
    photo = render_photo(orig, corners, noise=0.0)
    assert photo.shape == (1200, 1600, 3)
    centre = corners.mean(axis=0).round().astype(int)
    assert photo[centre[1], centre[0], 1] > 0.1 * 255
