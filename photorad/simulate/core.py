"""The forward model end to end: original → viewer → display → scene → camera → JPEG photo.

Rendering runs once per Bayer site class (R, G, G, B), each on a quarter-resolution lattice, so
every photo pixel is computed exactly once and only for the colour its filter passes. Smooth
quantities (screen coordinates, viewing-angle gain, vignetting, ambient light, glare, the MTF
weights of the sub-pixel harmonics) are evaluated on a coarse grid (every 8 photo pixels) and
upsampled bilinearly; the sharp ones (image content, bezel edges) come from one
``cv2.remap`` of a native-resolution screen texture through the composed lens-distortion and
perspective map.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from photorad.errors import ConfigError, ImageTooSmallError, UnsupportedImageError
from photorad.simulate import camera as cam_mod
from photorad.simulate import display, scene
from photorad.simulate.presets import META_KEYS, REFERENCE_WIDTH, SimParams, sample_params
from photorad.simulate.viewer import render_screen

log = logging.getLogger(__name__)

#: Default output size (width, height): a 12 MP phone photo in landscape.
DEFAULT_SIZE = (4032, 3024)
#: Coarse-grid step in lattice pixels (2 photo pixels each).
_STEP = 4
#: Margin of texture pixels outside the bezel (zero = "not the monitor").
_PAD = 2
#: Fraction of the photo's shorter side kept free around the displayed image.
FRAME_MARGIN = 0.02


@dataclass
class SimResult:
    """One simulated photo and its ground truth.

    Attributes
    ----------
    photo:
        ``uint8`` (H, W, 3) RGB, exactly the pixels of :attr:`jpeg` decoded by
        :func:`photorad.io.load_photo`.
    corners:
        ``float64`` (4, 2), TL, TR, BR, BL, photo pixels (x, y): outer corners of the area where
        the original image's pixels are displayed, lens distortion included.
    params:
        JSON-able: every :class:`SimParams` field, plus ``preset``, ``seed``, ``size`` and
        ``derived`` (resolved distance, exposure gain, screen rectangle, homography …).
    jpeg:
        The photo file as the phone would write it (baseline JPEG, no metadata).
    screen_corners:
        Corners of the whole active panel area in the photo (may lie outside the photo).
    """

    photo: np.ndarray
    corners: np.ndarray
    params: dict[str, Any]
    jpeg: bytes = b""
    screen_corners: np.ndarray = field(default_factory=lambda: np.zeros((4, 2)))


def _as_grey(original: np.ndarray) -> np.ndarray:
    a = np.asarray(original)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise UnsupportedImageError(f"original must be an H×W grey image, got shape {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UnsupportedImageError("original contains NaN or infinite values")
        a = np.clip(a, 0.0, 1.0).astype(np.float32)
    else:
        raise UnsupportedImageError(f"original has unsupported dtype {a.dtype}")
    if min(a.shape) < 8:
        raise ImageTooSmallError(f"original is too small ({a.shape[1]}×{a.shape[0]} px)")
    return a


def _seed_sequence(seed: int | Sequence[int]) -> np.random.SeedSequence:
    entropy = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]  # type: ignore[arg-type]
    if any(e < 0 for e in entropy):
        raise ConfigError("seeds must be non-negative integers")
    return np.random.SeedSequence(entropy)


def resolve_params(
    preset: str, params: SimParams | Mapping[str, Any] | None, rng: np.random.Generator
) -> SimParams:
    """``SimParams`` as given, or drawn from ``preset`` and then overridden by a mapping."""
    if isinstance(params, SimParams):
        return params
    p = sample_params(preset, rng)
    if params:
        p = p.replace(**{k: v for k, v in params.items() if k not in META_KEYS})
    return p


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        w, h = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"size must be (width, height), got {size!r}") from None
    if min(w, h) < 64 or w * h > 60_000_000:
        raise ConfigError(f"size must be at least 64×64 and at most 60 MP, got {w}×{h}")
    return w, h


def _lattice_grid(w2: int, h2: int, ox: int, oy: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo coordinates of the coarse grid of one Bayer lattice (one point outside each edge)."""
    m, n = -(-w2 // _STEP), -(-h2 // _STEP)
    j = (np.arange(-1, m + 1) + 0.5) * _STEP - 0.5
    i = (np.arange(-1, n + 1) + 0.5) * _STEP - 0.5
    return np.meshgrid(2.0 * j + ox, 2.0 * i + oy)


def _upsample(coarse: np.ndarray, w2: int, h2: int, *, copy: bool = True) -> np.ndarray:
    """Exact bilinear interpolation of a :func:`_lattice_grid` field onto the lattice."""
    n, m = coarse.shape
    big = cv2.resize(coarse.astype(np.float32), (m * _STEP, n * _STEP),
                     interpolation=cv2.INTER_LINEAR)
    view = big[_STEP:_STEP + h2, _STEP:_STEP + w2]
    return np.ascontiguousarray(view) if copy else view


def _to_screen(
    cam: cam_mod.CameraModel, hinv: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Photo (distorted) coordinates → screen pixel coordinates."""
    xu, yu = cam.undistort(x, y)
    q = hinv @ np.stack([xu.ravel(), yu.ravel(), np.ones(xu.size)])
    return (q[0] / q[2]).reshape(xu.shape), (q[1] / q[2]).reshape(xu.shape)


def _fit_distance(
    p: SimParams, size: tuple[int, int], aim: tuple[float, float], img_corners: np.ndarray,
    image_height_px: int,
) -> tuple[cam_mod.CameraModel, float]:
    w, h = size
    margin = FRAME_MARGIN * min(w, h)
    if p.distance_m is not None:
        distance = float(p.distance_m)
        tries = 1
    else:
        if not 0.05 <= p.fill <= 1.0:
            raise ConfigError(f"fill must be in [0.05, 1], got {p.fill}")
        f = cam_mod.focal_px(p, size)
        distance = f * image_height_px * p.pixel_pitch_mm / 1000.0 / (p.fill * h)
        tries = 80
    for _ in range(tries):
        cam = cam_mod.make_camera(p, size, aim, distance)
        try:
            c = cam.project(img_corners)
        except ConfigError:
            c = None
        if c is not None and (
            c[:, 0].min() >= margin - 0.5 and c[:, 1].min() >= margin - 0.5
            and c[:, 0].max() <= w - 0.5 - margin and c[:, 1].max() <= h - 0.5 - margin
        ):
            return cam, distance
        distance *= 1.06
    raise ConfigError(
        "the displayed image does not fit in the photo with these camera parameters "
        f"(distance {distance:.2f} m); reduce the angles or increase the distance"
    )


def _line_kernel(dx: float, dy: float) -> np.ndarray:
    """Normalised linear motion kernel of displacement (dx, dy) pixels."""
    length = float(np.hypot(dx, dy))
    r = int(np.ceil(length / 2.0)) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    n = max(int(np.ceil(length * 4)), 2)
    for t in np.linspace(-0.5, 0.5, n):
        x, y = r + t * dx, r + t * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def simulate_photo(
    original: np.ndarray,
    *,
    preset: str = "typical",
    params: SimParams | Mapping[str, Any] | None = None,
    seed: int | Sequence[int] = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> SimResult:
    """Simulate a phone photo of ``original`` shown on a monitor.

    Parameters
    ----------
    original:
        ``float32`` H×W grey image in [0, 1] (uint8/uint16 are scaled; RGB is converted to grey).
    preset:
        ``"ideal"``, ``"typical"`` or ``"hard"``: ranges the parameters are drawn from.
    params:
        A full :class:`SimParams` (used as is), or a mapping of fields that override the values
        drawn from the preset, or ``None``.
    seed:
        Integer or sequence of integers; the same seed gives the same bytes.
    size:
        Output ``(width, height)`` in pixels (default 4032×3024).

    Returns
    -------
    SimResult
        Photo, ground-truth corners (TL, TR, BR, BL) and the parameters used.
    """
    img = _as_grey(original)
    size = _check_size(size)
    w, h = size
    ss = _seed_sequence(seed)
    rng_params, rng_noise = (np.random.default_rng(s) for s in ss.spawn(2))
    p = resolve_params(preset, params, rng_params)
    if not 1 <= int(p.jpeg_quality) <= 100:
        raise ConfigError(f"jpeg_quality must be in 1..100, got {p.jpeg_quality}")

    # --- screen content and emission (native panel resolution)
    screen = render_screen(img, p)
    x0, y0, dw, dh = screen.image_rect
    img_corners_s = screen.image_corners()
    aim = (x0 - 0.5 + dw * (0.5 + p.aim_offset[0]), y0 - 0.5 + dh * (0.5 + p.aim_offset[1]))
    cam, distance = _fit_distance(p, size, aim, img_corners_s, dh)
    hom = cam.homography()
    hinv = np.linalg.inv(hom)
    emis = display.emission(screen.rgb, p)

    # Photo pixels per screen pixel near the aim point (for blur conversions).
    pts = cam.project(np.array([aim, (aim[0] + 1, aim[1]), (aim[0], aim[1] + 1)]))
    jac = np.column_stack([pts[1] - pts[0], pts[2] - pts[0]])  # photo per screen
    scale = float(np.sqrt(abs(np.linalg.det(jac))))
    bscale = w / REFERENCE_WIDTH
    sigma = float(np.hypot(p.optics_blur_px, p.defocus_px)) * bscale
    motion = p.motion_px * bscale

    # --- texture: emission RGB + monitor code (0 outside, 1 bezel, 2 active), bezel padded
    bz = round(p.bezel_mm / p.pixel_pitch_mm)
    off = bz + _PAD
    sh, sw = emis.shape[:2]
    tex = np.zeros((sh + 2 * off, sw + 2 * off, 4), np.float32)
    tex[off:off + sh, off:off + sw, :3] = emis
    tex[_PAD:_PAD + sh + 2 * bz, _PAD:_PAD + sw + 2 * bz, 3] = 1.0
    tex[off:off + sh, off:off + sw, 3] = 2.0
    # Blur in screen space: lens PSF and pixel aperture (anti-aliasing) before sampling.
    sig_s = float(np.sqrt((sigma / scale) ** 2 + (1.0 / scale) ** 2 / 12.0))
    if sig_s > 0.3:
        tex = cv2.GaussianBlur(tex, (0, 0), sig_s)
    if motion > 0.5:
        ang = np.deg2rad(p.motion_angle_deg)
        d = np.linalg.solve(jac, motion * np.array([np.cos(ang), np.sin(ang)]))
        tex = cv2.filter2D(tex, -1, _line_kernel(float(d[0]), float(d[1])),
                           borderType=cv2.BORDER_CONSTANT)
    active = tex[off:off + sh, off:off + sw, 3] > 1.99
    mean_e = [float(emis[..., c][active].mean()) if active.any() else 0.0 for c in range(3)]
    texs = [np.ascontiguousarray(tex[..., [c, 3]]) for c in range(3)]
    del tex

    # --- smooth fields, once per photo on the coarse grid of the largest (R) lattice; the
    # other lattices reuse them: a shift of one photo pixel is invisible in these fields.
    w2, h2 = (w + 1) // 2, (h + 1) // 2
    gx, gy = _lattice_grid(w2, h2, 0, 0)
    u, v = _to_screen(cam, hinv, gx, gy)
    step = 2.0 * _STEP  # photo pixels between coarse points
    du = tuple(g / step for g in np.gradient(u)[::-1])  # (du/dx, du/dy)
    dv = tuple(g / step for g in np.gradient(v)[::-1])
    wp = cam.screen_to_world() @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    ray = cam.centre[:, None] - np.vstack([wp[0], wp[1], np.zeros(u.size)])
    # viewing angle between the panel normal and the ray to the camera
    cos_t = np.clip(-ray[2] / np.linalg.norm(ray, axis=0), 1e-3, 1.0).reshape(u.shape)
    lum = cos_t**p.view_falloff
    kappa = np.clip(p.view_contrast_loss * (1.0 - cos_t**2) / 0.5, 0.0, 1.0)
    cx, cy = cam.principal
    vig = 1.0 - p.vignetting * ((gx - cx) ** 2 + (gy - cy) ** 2) / cam.r_norm**2
    amb = scene.ambient(gx, gy, size, p)
    gl = scene.glare(gx, gy, cam.project(img_corners_s), p)
    smooth = {
        "gain": vig * lum * (1.0 - kappa),
        "offset": vig * lum * kappa,
        "mon": vig * (amb * p.screen_reflectance + gl),
        "bez": vig * (amb * p.bezel_grey + gl),
        "bg": vig * scene.background(gx, gy, size, p),
    }
    f = {k: _upsample(val, w2, h2, copy=False) for k, val in smooth.items()}
    a_coef = [_upsample(a, w2, h2, copy=False) for a in display.harmonic_gains(
        du, duty=p.subpixel_duty, n=display.N_HARMONICS_U, blur_sigma_px=sigma,
        motion_px=motion, motion_angle_deg=p.motion_angle_deg)]
    b_coef = [_upsample(b, w2, h2, copy=False) for b in display.harmonic_gains(
        dv, duty=p.row_fill, n=display.N_HARMONICS_V, blur_sigma_px=sigma,
        motion_px=motion, motion_angle_deg=p.motion_angle_deg)]

    # --- per Bayer lattice (RGGB): exact screen coordinates, texture lookup, sub-pixel mask
    raw = np.empty((h, w), np.float32)
    for oy, ox, c in ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)):
        lw, lh = (w - ox + 1) // 2, (h - oy + 1) // 2
        lx, ly = _lattice_grid(lw, lh, ox, oy)
        lu, lv = _to_screen(cam, hinv, lx, ly)
        mu, mv = _upsample(lu + off, lw, lh), _upsample(lv + off, lw, lh)
        samp = cv2.remap(texs[c], mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
        e, code = samp[..., 0], samp[..., 1]
        alpha = np.clip(code, 0.0, 1.0)
        act = np.clip(code - 1.0, 0.0, 1.0)
        mask = display.stripe_mask(mu, display.SUBPIXEL_OFFSET[c] + off,
                                   [a[:lh, :lw] for a in a_coef])
        mask *= display.stripe_mask(mv, float(off), [b[:lh, :lw] for b in b_coef])
        g = {k: val[:lh, :lw] for k, val in f.items()}
        lat = mask * (g["gain"] * e + act * g["offset"] * np.float32(mean_e[c]))
        lat += act * g["mon"] * np.float32(p.ambient_tint[c])
        lat += (alpha - act) * g["bez"] * np.float32(p.ambient_tint[c])
        lat += (1.0 - alpha) * g["bg"] * np.float32(p.background_tint[c])
        raw[oy::2, ox::2] = lat

    # --- auto-exposure (centre-weighted, on green sites), white balance, noise, ISP, JPEG
    gsub = raw[1::8, 0::8]
    yy, xx = np.mgrid[0:gsub.shape[0], 0:gsub.shape[1]]
    wts = np.exp(-(((xx / gsub.shape[1] - 0.5) ** 2 + (yy / gsub.shape[0] - 0.5) ** 2) / 0.08))
    meter = float((gsub * wts).sum() / wts.sum())
    gain = (p.ae_target / max(meter, 1e-4)) ** p.ae_strength * 2.0**p.exposure_ev
    raw *= np.float32(gain)
    cam_mod.add_sensor_noise(raw, p, rng_noise)
    wb = np.asarray(p.wb_error, np.float32)
    raw[0::2, 0::2] *= wb[0]
    raw[0::2, 1::2] *= wb[1]
    raw[1::2, 0::2] *= wb[1]
    raw[1::2, 1::2] *= wb[2]
    np.clip(raw, 0.0, 1.0, out=raw)
    rgb = cam_mod.develop(raw, p)
    del raw

    from photorad.io import encode_jpeg, load_photo

    jpeg = encode_jpeg(rgb, quality=int(p.jpeg_quality))
    photo = load_photo(jpeg)
    corners = cam.project(img_corners_s)
    panel = np.array([[-0.5, -0.5], [sw - 0.5, -0.5], [sw - 0.5, sh - 0.5], [-0.5, sh - 0.5]])
    out = p.to_dict()
    out["preset"] = preset if not isinstance(params, SimParams) else "custom"
    out["seed"] = [int(s) for s in np.atleast_1d(seed)]
    out["size"] = [w, h]
    out["derived"] = {
        "distance_m": round(distance, 6),
        "exposure_gain": round(gain, 6),
        "photo_px_per_screen_px": round(scale, 6),
        "screen_image_rect": list(screen.image_rect),
        "homography_screen_to_undistorted_photo": (hom / hom[2, 2]).round(9).tolist(),
        "original_shape": list(img.shape),
    }
    return SimResult(photo=photo, corners=corners, params=out, jpeg=jpeg,
                     screen_corners=cam.project(panel) if _in_front(cam, panel) else panel * 0)


def _in_front(cam: cam_mod.CameraModel, uv: np.ndarray) -> bool:
    try:
        cam.project(uv)
    except ConfigError:
        return False
    return True
