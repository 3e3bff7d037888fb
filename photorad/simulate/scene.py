"""The room: background behind the monitor, ambient light on the screen, matte and specular glare.

All fields are smooth functions of photo coordinates in linear light, in units of the display's
white luminance, evaluated on the renderer's coarse grid. Glare positions and sizes are given
relative to the displayed image area so that they mean the same at any output size.
"""

from __future__ import annotations

import numpy as np

from photorad.simulate.presets import SimParams


def quad_point(corners: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Bilinear point (fractions ``fx``, ``fy``) inside a TL, TR, BR, BL quad."""
    tl, tr, br, bl = np.asarray(corners, dtype=np.float64)
    top = tl + fx * (tr - tl)
    bottom = bl + fx * (br - bl)
    return top + fy * (bottom - top)


#: Edge padding before the spline prefilter, as ``scipy.ndimage.map_coordinates`` pads for
#: ``mode="nearest"``: the boundary condition of the padded filter then has no effect (< 1e-7).
_SPLINE_PAD = 12


def _spline_coefficients(samples: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients interpolating ``samples`` along axis 0 (mirror boundary).

    Solves the tridiagonal system (c[k-1] + 4 c[k] + c[k+1]) / 6 = s[k] by forward elimination
    and back substitution (no LAPACK: its threads would compete with other worker processes).
    """
    s = np.asarray(samples, dtype=np.float64)
    n = s.shape[0]
    lower = np.full(n, 1.0 / 6.0)
    upper = np.full(n, 1.0 / 6.0)
    upper[0] = lower[-1] = 2.0 / 6.0  # mirror: c[-1] = c[1], c[n] = c[n-2]
    diag = np.full(n, 4.0 / 6.0)
    rhs = s.copy()
    for k in range(1, n):
        m = lower[k] / diag[k - 1]
        diag[k] = diag[k] - m * upper[k - 1]
        rhs[k] = rhs[k] - m * rhs[k - 1]
    out = np.empty_like(rhs)
    out[-1] = rhs[-1] / diag[-1]
    for k in range(n - 2, -1, -1):
        out[k] = (rhs[k] - upper[k] * out[k + 1]) / diag[k]
    return out


def _bspline_weights(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first of 4 coefficients and their cubic B-spline weights at ``t``."""
    i = np.floor(t)
    f = t - i
    w = np.stack([(1.0 - f) ** 3, 4.0 - 6.0 * f * f + 3.0 * f**3,
                  1.0 + 3.0 * f + 3.0 * f * f - 3.0 * f**3, f**3], axis=-1) / 6.0
    return i.astype(np.intp) - 1, w


def spline_field(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Cubic-spline interpolation of a small 2-D ``grid`` at (``rows``, ``cols``) index coordinates.

    The same function as ``scipy.ndimage.map_coordinates(grid, [rows, cols], order=3,
    mode="nearest")`` (to ~1e-14; a test compares them) in a few lines of numpy, so that the
    simulator does not import ``scipy.ndimage`` (over a second per worker process).
    """
    pad = _SPLINE_PAD
    c = np.pad(np.asarray(grid, dtype=np.float64), pad, mode="edge")
    c = _spline_coefficients(_spline_coefficients(c).T).T
    rows, cols = np.broadcast_arrays(np.asarray(rows, np.float64), np.asarray(cols, np.float64))
    # keep the 4 taps inside the padding (beyond it the padded grid is constant anyway)
    rows = np.clip(rows + pad, 1.0, c.shape[0] - 2.0 - 1e-9)
    cols = np.clip(cols + pad, 1.0, c.shape[1] - 2.0 - 1e-9)
    if rows.ndim == 2 and (rows == rows[:, :1]).all() and (cols == cols[:1, :]).all():
        # a grid (rows along axis 0, columns along axis 1): separable, 4 taps per axis
        ir, wr = _bspline_weights(rows[:, 0])
        ic, wc = _bspline_weights(cols[0])
        by_row = sum(wr[:, a, None] * c[ir + a] for a in range(4))
        return sum(wc[None, :, b] * by_row[:, ic + b] for b in range(4))
    ir, wr = _bspline_weights(rows)
    ic, wc = _bspline_weights(cols)
    out = np.zeros(rows.shape)
    for a in range(4):
        for b in range(4):
            out += wr[..., a] * wc[..., b] * c[ir + a, ic + b]
    return out


def background(
    x: np.ndarray, y: np.ndarray, size: tuple[int, int], p: SimParams
) -> np.ndarray:
    """Room behind the monitor: a vertical gradient (wall → desk) and soft random blotches."""
    rng = np.random.default_rng(p.background_seed)
    w, h = size
    nx, ny = x / max(w - 1, 1), y / max(h - 1, 1)
    coarse = rng.uniform(0.4, 1.6, size=(6, 8))
    field = spline_field(coarse, ny * 5.0, nx * 7.0).astype(np.float32)
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
