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
    border is visible as a faint step. ``"flat"``: a flat 0.08 band without texture (camera
    noise only). ``"wavy"``: like ``"dim"`` but the band's upper boundary undulates (±8 % of the
    height), as a real far field's does, so the bright part's lower edge is not a straight line.
    ``"fade"``: fades linearly to the viewport level at the last row, so the bottom border
    cannot be seen at all.
    """
    o = textured_original(seed=seed)
    h, w = o.shape
    k = int(fraction * h)
    if kind == "dim":
        a = (o[-k:] - 0.15) / 0.8
        o[-k:] = 0.07 + 0.07 * a
    elif kind == "flat":
        o[-k:] = 0.08
    elif kind == "wavy":
        cols = np.arange(w)[None, :]
        start = h - k + 0.08 * h * np.sin(cols / w * 3 * np.pi + seed)
        dim = np.arange(h)[:, None] >= start
        o[dim] = (0.07 + 0.07 * (o - 0.15) / 0.8)[dim]
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
    viewport_pad: float | tuple[float, float, float, float] = 0.25,
    bezel: float = 0.06,
    bezel_level: float = 0.10,
    bleed: float = 0.0,
    noise: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Render ``original`` on a dark viewport at ``corners`` (TL, TR, BR, BL) of a photo.

    The viewport (level 0.03) extends ``viewport_pad`` × the image size around the image (one
    value, or left, top, right, bottom), the bezel (``bezel_level``) a further ``bezel``; the room
    around it is a mid-grey gradient. ``bleed`` brightens the viewport towards its edges (a
    backlight-bleed glow falling off over 4 % of the image width), as on real LCD panels.
    """
    w, h = photo_size
    oh, ow = original.shape
    hmat = homography(rect_corners(ow, oh), np.asarray(corners, dtype=np.float64))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    photo = (0.45 + 0.2 * xx / w - 0.1 * yy / h).astype(np.float32)
    pads = np.broadcast_to(np.asarray(viewport_pad, dtype=np.float64), (4,))

    def outline(extra: float) -> np.ndarray:
        left, top, right, bottom = (pads + extra) * np.array([ow, oh, ow, oh])
        return np.array(
            [[-0.5 - left, -0.5 - top], [ow - 0.5 + right, -0.5 - top],
             [ow - 0.5 + right, oh - 0.5 + bottom], [-0.5 - left, oh - 0.5 + bottom]]
        )

    def fill(extra: float, level: float | np.ndarray) -> None:
        q = cv2.perspectiveTransform(outline(extra)[None], hmat)[0]
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.round(q * 16).astype(np.int32), 1, cv2.LINE_AA, shift=4)
        photo[mask > 0] = level if np.isscalar(level) else level[mask > 0]

    fill(bezel, bezel_level)
    viewport: float | np.ndarray = 0.03
    if bleed:
        # Distance of each photo pixel to the viewport's edge, in original pixels.
        back = cv2.perspectiveTransform(np.stack([xx, yy], -1).reshape(1, -1, 2),
                                        np.linalg.inv(hmat))[0].reshape(h, w, 2)
        box = outline(0.0)
        dist = np.minimum.reduce([back[..., 0] - box[0, 0], box[1, 0] - back[..., 0],
                                  back[..., 1] - box[0, 1], box[2, 1] - back[..., 1]])
        viewport = (0.03 + bleed * np.exp(-np.maximum(dist, 0) / (0.04 * ow))).astype(np.float32)
    fill(0.0, viewport)
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
