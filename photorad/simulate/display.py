"""The display: drive values → emitted light, and the RGB sub-pixel stripe structure.

Emission is computed at the panel's native resolution (cheap). The sub-pixel structure, which
is finer than the camera can resolve and causes moiré, is never rasterised: it is a periodic
mask evaluated analytically at each camera pixel's screen coordinate as a short Fourier series,
each harmonic attenuated by the camera's MTF at the harmonic's frequency *in photo pixels*
(pixel aperture, lens blur, motion). Harmonics above the sensor's Nyquist frequency that survive
the MTF alias to low frequencies in the Bayer sampling — the moiré of real screen photos.
"""

from __future__ import annotations

import numpy as np

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


def emission(drive: np.ndarray, p: SimParams) -> np.ndarray:
    """Emitted linear light per channel (display white = 1) for a (H, W, 3) drive image."""
    h, w = drive.shape[:2]
    vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
    gain, bleed = panel_field(uu, vv, p)
    lin = np.power(np.clip(drive, 0.0, 1.0), np.float32(p.display_gamma))
    black = np.float32(p.black_level) + bleed
    e = (black[..., None] + (1.0 - black[..., None]) * lin) * gain[..., None]
    e *= np.asarray(p.white_tint, dtype=np.float32)
    if p.cfa_crosstalk > 0:
        # Colour filters pass some of the other primaries: mix before the CFA picks a channel.
        c = float(p.cfa_crosstalk)
        m = np.full((3, 3), c / 2.0, dtype=np.float32)
        np.fill_diagonal(m, 1.0 - c)
        e = e @ m.T
    return e.astype(np.float32)


def _sinc(x: np.ndarray) -> np.ndarray:
    return np.sinc(x).astype(np.float32)


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
    gx, gy = grad
    ca, sa = np.cos(np.deg2rad(motion_angle_deg)), np.sin(np.deg2rad(motion_angle_deg))
    out = []
    for k in range(1, n + 1):
        fx, fy = k * gx, k * gy
        c = 2.0 * np.sin(np.pi * k * duty) / (np.pi * k * duty)
        mtf = _sinc(fx) * _sinc(fy) * np.exp(
            -2.0 * np.pi**2 * blur_sigma_px**2 * (fx * fx + fy * fy)
        )
        if motion_px > 0:
            mtf = mtf * _sinc(motion_px * (fx * ca + fy * sa))
        out.append((c * mtf).astype(np.float32))
    return out


def stripe_mask(coord: np.ndarray, offset: float, coefs: list[np.ndarray]) -> np.ndarray:
    """Evaluate ``1 + Σ_k coefs[k-1] · cos(2πk(coord - offset))`` (Chebyshev recursion)."""
    c1 = np.cos(np.float32(2.0 * np.pi) * (coord - np.float32(offset)))
    out = 1.0 + coefs[0] * c1
    t_prev, t = np.ones_like(c1), c1
    for a in coefs[1:]:
        t_prev, t = t, 2.0 * c1 * t - t_prev
        out += a * t
    return out
