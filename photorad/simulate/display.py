"""The display: drive values → emitted light, and the RGB sub-pixel stripe structure.

Emission is computed at the panel's native resolution (cheap). The sub-pixel structure, which
is finer than the camera can resolve and causes moiré, is never rasterised: it is a periodic
mask evaluated analytically at each camera pixel's screen coordinate as a short Fourier series,
each harmonic attenuated by the camera's MTF at the harmonic's frequency *in photo pixels*
(pixel aperture, lens blur, motion). Harmonics above the sensor's Nyquist frequency that survive
the MTF alias to low frequencies in the Bayer sampling — the moiré of real screen photos.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.polynomial import chebyshev

from photorad.simulate.presets import SimParams

#: Horizontal offsets of the R, G, B stripes from the pixel centre, in screen pixels.
SUBPIXEL_OFFSET = (-1.0 / 3.0, 0.0, 1.0 / 3.0)
#: Harmonics kept in the Fourier series (columns, rows).
N_HARMONICS_U = 3
N_HARMONICS_V = 2


def panel_field(u: np.ndarray, v: np.ndarray, p: SimParams) -> tuple[np.ndarray, np.ndarray]:
    """Backlight gain and bleed (extra black level) at screen coordinates ``u, v`` (pixels).

    Both are smooth: the gain falls off quadratically toward the corners by
    ``backlight_falloff``; bleed rises near the panel edges (light leaking at the frame).
    """
    x = (2.0 * u / max(p.screen_w - 1, 1) - 1.0).astype(np.float32)
    y = (2.0 * v / max(p.screen_h - 1, 1) - 1.0).astype(np.float32)
    gain = 1.0 - p.backlight_falloff * 0.5 * (x * x + y * y)
    edge = np.maximum(np.abs(x), np.abs(y))
    bleed = p.backlight_bleed * np.clip((edge - 0.6) / 0.4, 0.0, 1.0) ** 2
    return gain.astype(np.float32), bleed.astype(np.float32)


def gamma_lut(p: SimParams) -> np.ndarray:
    """Linear light of each 8-bit drive code before black level: ``(code / 255) ** gamma``."""
    codes = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
    return np.power(codes, np.float32(p.display_gamma))


def mix_matrix(p: SimParams) -> np.ndarray:
    """3×3 map of linear drive (R, G, B) to the light each CFA colour sees: cross-talk·tint.

    Colour filters pass some of the other primaries (``cfa_crosstalk``), and the panel's white
    is tinted (``white_tint``): ``M_cd = crosstalk_cd · tint_d``.
    """
    mix = np.eye(3, dtype=np.float64)
    if p.cfa_crosstalk > 0:
        c = float(p.cfa_crosstalk)
        mix = np.full((3, 3), c / 2.0)
        np.fill_diagonal(mix, 1.0 - c)
    return mix * np.asarray(p.white_tint, dtype=np.float64)[None, :]


def mixed_drive(drive: np.ndarray, p: SimParams) -> np.ndarray:
    """Linear drive mixed by :func:`mix_matrix`: (H, W, 3) ``float32``, before the panel fields.

    ``drive`` is the 8-bit frame buffer (``uint8``, mapped through :func:`gamma_lut`) or float
    drive values in [0, 1].
    """
    if drive.dtype == np.uint8:
        lin = cv2.LUT(drive, gamma_lut(p))  # 256 codes: a table instead of 3·H·W powers
    else:
        lin = np.power(np.clip(drive, 0.0, 1.0).astype(np.float32),
                       np.float32(p.display_gamma))
    return cv2.transform(lin, mix_matrix(p).astype(np.float32))


def panel_terms(u: np.ndarray, v: np.ndarray, p: SimParams) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - black)·gain`` and ``black·gain`` at screen coordinates ``u, v`` (both smooth).

    The emission of colour c is ``scale·mixed_c + offset·Σ_d M_cd`` with ``(scale, offset)``
    from here and ``mixed`` from :func:`mixed_drive`; black = ``black_level`` + bleed.
    """
    gain, bleed = panel_field(u, v, p)
    black = bleed + np.float32(p.black_level)
    return (1.0 - black) * gain, black * gain


def emission(drive: np.ndarray, p: SimParams) -> np.ndarray:
    """Emitted linear light per channel (display white = 1) for a (H, W, 3) drive image.

    The renderer never makes this full-resolution image: it samples :func:`mixed_drive` and
    applies the smooth :func:`panel_terms` per photo pixel (``simulate_photo``). This is the
    reference definition of the same light.
    """
    h, w = drive.shape[:2]
    # The panel fields are separable in u and v: a row and a column, broadcast to (H, W).
    scale, offset = panel_terms(np.arange(w, dtype=np.float32)[None, :],
                                np.arange(h, dtype=np.float32)[:, None], p)
    e = mixed_drive(drive, p)
    e *= scale[..., None]
    e += offset[..., None] * mix_matrix(p).sum(axis=1).astype(np.float32)
    return e


def _sinc(x: np.ndarray) -> np.ndarray:
    return np.sinc(x).astype(np.float32, copy=False)


def harmonic_gains(
    grad: tuple[np.ndarray, np.ndarray],
    *,
    duty: float,
    n: int,
    blur_sigma_px: float,
    motion_px: float,
    motion_angle_deg: float,
) -> list[np.ndarray]:
    """Fourier coefficients of a unit-mean stripe mask as seen by the camera.

    Parameters
    ----------
    grad:
        (d coord/dx, d coord/dy): screen pixels per photo pixel of the coordinate along which
        the stripes repeat (period 1 screen pixel).
    duty:
        Lit fraction of each period.
    n:
        Number of harmonics.
    blur_sigma_px, motion_px, motion_angle_deg:
        Gaussian lens blur σ and linear motion length in photo pixels.

    Returns
    -------
    list of arrays
        Coefficient of ``cos(2πk(coord - offset))`` for k = 1 … n: the rectangle-wave
        coefficient ``2 sin(πkd) / (πkd)`` times the MTF of the pixel aperture (1×1 box), the
        Gaussian blur and the motion blur at frequency ``k·grad`` (cycles per photo pixel).
    """
    # float32 throughout: these are MTF weights, float64 only made the coarse grid slower.
    gx, gy = (np.asarray(g, dtype=np.float32) for g in grad)
    ang = float(np.deg2rad(motion_angle_deg))
    ca, sa = float(np.cos(ang)), float(np.sin(ang))
    out = []
    for k in range(1, n + 1):
        fx, fy = k * gx, k * gy
        c = float(2.0 * np.sin(np.pi * k * duty) / (np.pi * k * duty))
        mtf = _sinc(fx) * _sinc(fy) * np.exp(
            -2.0 * np.pi**2 * blur_sigma_px**2 * (fx * fx + fy * fy)
        )
        if motion_px > 0:
            mtf = mtf * _sinc(motion_px * (fx * ca + fy * sa))
        out.append((c * mtf).astype(np.float32, copy=False))
    return out


def power_coefficients(coefs: list[np.ndarray]) -> list[np.ndarray]:
    """Rewrite ``1 + Σ_k coefs[k-1] · T_k(c)`` (Chebyshev) as ``Σ_j q_j · c**j``.

    With ``c = cos(2πx)``, ``T_k(c) = cos(2πkx)``: the stripe mask becomes a polynomial in one
    cosine, evaluated per pixel by Horner's rule. The conversion is linear in the coefficients,
    so it can be done on the coarse grid before the (linear) upsampling.
    """
    n = len(coefs)
    q: list[np.ndarray | float] = [1.0] + [0.0] * n
    for k, a in enumerate(coefs, start=1):
        t_k = chebyshev.cheb2poly(np.eye(k + 1)[k])  # power-basis coefficients of T_k
        for j, t in enumerate(t_k):
            if t != 0.0:
                q[j] = q[j] + float(t) * a
    shape = np.shape(coefs[0]) if coefs else ()
    return [np.broadcast_to(np.asarray(x, np.float32), shape).astype(np.float32) for x in q]


def stripe_mask(coord: np.ndarray, offset: float, poly: list[np.ndarray]) -> np.ndarray:
    """Evaluate ``Σ_j poly[j] · cos(2π(coord - offset))**j`` (see :func:`power_coefficients`).

    ``coord`` and the fields in ``poly`` are ``float32`` arrays of one shape; the cosine comes
    from ``cv2.polarToCart`` (several times faster than ``np.cos``, same float32 accuracy).
    """
    phase = coord - np.float32(offset)
    phase *= np.float32(2.0 * np.pi)
    c, _ = cv2.polarToCart(None, phase)
    out = poly[-1] * c
    for q in poly[-2:0:-1]:
        out += q
        out *= c
    out += poly[0]
    return out
