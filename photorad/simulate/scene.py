"""The room: background behind the monitor, ambient light on the screen, matte and specular glare.

All fields are smooth functions of photo coordinates in linear light, in units of the display's
white luminance, evaluated on the renderer's coarse grid. Glare positions and sizes are given
relative to the displayed image area so that they mean the same at any output size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from photorad.simulate.presets import SimParams


def quad_point(corners: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Bilinear point (fractions ``fx``, ``fy``) inside a TL, TR, BR, BL quad."""
    tl, tr, br, bl = np.asarray(corners, dtype=np.float64)
    top = tl + fx * (tr - tl)
    bottom = bl + fx * (br - bl)
    return top + fy * (bottom - top)


def background(
    x: np.ndarray, y: np.ndarray, size: tuple[int, int], p: SimParams
) -> np.ndarray:
    """Room behind the monitor: a vertical gradient (wall → desk) and soft random blotches."""
    rng = np.random.default_rng(p.background_seed)
    w, h = size
    nx, ny = x / max(w - 1, 1), y / max(h - 1, 1)
    coarse = rng.uniform(0.4, 1.6, size=(6, 8))
    field = ndimage.map_coordinates(
        coarse, [ny * 5.0, nx * 7.0], order=3, mode="nearest"
    ).astype(np.float32)
    desk = float(rng.uniform(0.6, 0.9))
    wall = 1.0 - 0.4 * nx * float(rng.uniform(-1, 1))
    g = np.where(ny > desk, 0.6, 1.0) * wall
    return (p.background * np.clip(field, 0.2, 2.0) * g).astype(np.float32)


def ambient(x: np.ndarray, y: np.ndarray, size: tuple[int, int], p: SimParams) -> np.ndarray:
    """Room illuminance on the screen plane: ``ambient`` with a gentle linear gradient."""
    rng = np.random.default_rng(p.background_seed + 1)
    w, h = size
    a, b = rng.uniform(-0.3, 0.3, size=2)
    return (p.ambient * (1.0 + a * (x / w - 0.5) + b * (y / h - 0.5))).astype(np.float32)


def glare(
    x: np.ndarray, y: np.ndarray, image_corners: np.ndarray, p: SimParams
) -> np.ndarray:
    """Reflections of lamps and windows: a broad Gaussian (matte) plus a soft specular patch."""
    diag = float(np.hypot(*(image_corners[2] - image_corners[0])))
    out = np.zeros(np.broadcast(x, y).shape, dtype=np.float32)
    if p.matte_glare > 0:
        cx, cy = quad_point(image_corners, *p.matte_glare_pos)
        s = max(p.matte_glare_sigma * diag, 1.0)
        out += p.matte_glare * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    if p.specular_glare > 0:
        cx, cy = quad_point(image_corners, *p.specular_pos)
        r = max(p.specular_size * diag, 1.0)
        ang = np.random.default_rng(p.background_seed + 2).uniform(0, np.pi)
        dx, dy = x - cx, y - cy
        a = (dx * np.cos(ang) + dy * np.sin(ang)) / (r * p.specular_aspect)
        b = (-dx * np.sin(ang) + dy * np.cos(ang)) / r
        out += p.specular_glare * np.exp(-((a * a + b * b) ** 2))  # flat top, soft edge
    return out.astype(np.float32)
