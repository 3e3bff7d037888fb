"""The forward model end to end: original → viewer → display → scene → camera → JPEG photo.

Rendering runs once per Bayer site class (R, G, G, B), each on a quarter-resolution lattice, so
every photo pixel is computed exactly once and only for the colour its filter passes. Smooth
quantities (screen coordinates, viewing-angle gain, vignetting, ambient light, glare, the MTF
weights of the sub-pixel harmonics) are evaluated on a coarse grid (every 8 photo pixels) and
upsampled bilinearly; the sharp ones (image content, bezel edges) come from one
``cv2.remap`` of a native-resolution screen texture through the composed lens-distortion and
perspective map. Each lattice is rendered, exposed, made noisy and digitised in strips of
:data:`_ROWS` rows, so that the two dozen per-pixel temporaries stay in the CPU cache and no
full-size float image of the photo is ever made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from photorad.errors import (
    ConfigError,
    ImageTooSmallError,
    PhotoradError,
    UnsupportedImageError,
)
from photorad.simulate import camera as cam_mod
from photorad.simulate import display, scene
from photorad.simulate.presets import META_KEYS, REFERENCE_WIDTH, SimParams, sample_params
from photorad.simulate.viewer import render_screen

log = logging.getLogger(__name__)

#: Default output size (width, height): a 12 MP phone photo in landscape.
DEFAULT_SIZE = (4032, 3024)
#: Coarse-grid step in lattice pixels (2 photo pixels each).
_STEP = 4
#: Lattice rows rendered at once (a multiple of ``_STEP``): at 12 MP one strip's float32
#: temporaries are 2016 × 64 × 4 B = 516 kB each, small enough to stay in the CPU cache.
_ROWS = 16 * _STEP
#: Margin of texture pixels outside the bezel (zero = "not the monitor").
_PAD = 2
#: Fraction of the photo's shorter side kept free around the displayed image.
FRAME_MARGIN = 0.02


class SimResult:
    """One simulated photo and its ground truth.

    Attributes
    ----------
    photo:
        ``uint8`` (H, W, 3) RGB, exactly the pixels of :attr:`jpeg` decoded by
        :func:`photorad.io.load_photo` (decoded on first access: writing data sets needs only
        the file's bytes, and decoding a 12 MP JPEG costs about a tenth of the simulation).
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

    def __init__(
        self,
        *,
        corners: np.ndarray,
        params: dict[str, Any],
        jpeg: bytes,
        screen_corners: np.ndarray | None = None,
        photo: np.ndarray | None = None,
    ) -> None:
        self.corners = corners
        self.params = params
        self.jpeg = jpeg
        self.screen_corners = np.zeros((4, 2)) if screen_corners is None else screen_corners
        self._photo = photo

    @property
    def photo(self) -> np.ndarray:
        if self._photo is None:
            from photorad.io import load_photo

            self._photo = load_photo(self.jpeg)
        return self._photo

    def __repr__(self) -> str:
        w, h = self.params.get("size", ["?", "?"])
        return f"SimResult({w}×{h}, preset={self.params.get('preset')!r}, {len(self.jpeg)} B)"


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


def _upsample_rows(coarse: np.ndarray, r0: int, rows: int, width: int) -> np.ndarray:
    """Rows ``r0 … r0 + rows - 1`` (first ``width`` columns) of :func:`_upsample`.

    Only the coarse rows that contribute are resized (``r0`` is a multiple of ``_STEP``): the
    values are identical to the full upsampling, the work is the strip's.
    """
    k0 = r0 // _STEP
    nb = -(-rows // _STEP)
    m = coarse.shape[1]
    big = cv2.resize(coarse[k0:k0 + nb + 2], (m * _STEP, (nb + 2) * _STEP),
                     interpolation=cv2.INTER_LINEAR)
    return big[_STEP:_STEP + rows, _STEP:_STEP + width]


def _to_screen(
    cam: cam_mod.CameraModel, hinv: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Photo (distorted) coordinates → screen pixel coordinates."""
    xu, yu = cam.undistort(x, y)
    # Written out instead of ``hinv @ points``: a 3×N BLAS product would start OpenBLAS's
    # spinning threads, which steal CPU from the other worker processes.
    h = hinv
    qz = h[2, 0] * xu + h[2, 1] * yu + h[2, 2]
    return (h[0, 0] * xu + h[0, 1] * yu + h[0, 2]) / qz, (h[1, 0] * xu + h[1, 1] * yu + h[1, 2]) / qz


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


def _textures(
    mixed: np.ndarray, *, bz: int, sigma: float, kernel: np.ndarray | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Blurred screen textures: one plane per colour (mixed linear drive) and the monitor code.

    The monitor code is 0 outside the monitor, 1 on the bezel and 2 on the active area; after
    the blur it gives the coverage of the bezel and of the active area at any point. Separate
    planes: a one-channel remap each is cheaper than building interleaved textures.
    """
    off = bz + _PAD
    planes = [cv2.copyMakeBorder(ch, off, off, off, off, cv2.BORDER_CONSTANT, value=0)
              for ch in cv2.split(mixed)]
    code = np.zeros_like(planes[0])
    code[_PAD:-_PAD, _PAD:-_PAD] = 1.0
    code[off:-off, off:-off] = 2.0
    planes.append(code)
    for k, pl in enumerate(planes):
        if sigma > 0.3:
            cv2.GaussianBlur(pl, (0, 0), sigma, dst=pl)
        if kernel is not None:
            planes[k] = cv2.filter2D(pl, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return planes[:3], planes[3]


def _mean_emission(mixed: np.ndarray, code: np.ndarray, off: int, p: SimParams) -> list[float]:
    """Mean emitted light per colour over the active area (not reached by the bezel's blur).

    Evaluated on every second screen pixel in each direction: it only sets the level of the
    off-axis veil (``view_contrast_loss``).
    """
    sh, sw = mixed.shape[:2]
    active = (code[off:off + sh:2, off:off + sw:2] > 1.99).view(np.uint8)
    if not active.any():
        return [0.0, 0.0, 0.0]
    sub = mixed[::2, ::2]
    scale, offset = display.panel_terms(np.arange(0, sw, 2, dtype=np.float32)[None, :],
                                        np.arange(0, sh, 2, dtype=np.float32)[:, None], p)
    weighted = np.ascontiguousarray(sub * scale[..., None])
    mix_sum = display.mix_matrix(p).sum(axis=1)
    base = cv2.mean(weighted, mask=active)[:3]
    level = cv2.mean(np.ascontiguousarray(offset), mask=active)[0]
    return [float(base[c] + level * mix_sum[c]) for c in range(3)]


def _auto_exposure(green: np.ndarray, p: SimParams) -> float:
    """Exposure gain from a centre-weighted meter on every 4th site of a green lattice."""
    gsub = green[::4, ::4]
    yy, xx = np.mgrid[0:gsub.shape[0], 0:gsub.shape[1]]
    wts = np.exp(-(((xx / gsub.shape[1] - 0.5) ** 2 + (yy / gsub.shape[0] - 0.5) ** 2) / 0.08))
    meter = float((gsub * wts).sum() / wts.sum())
    return float((p.ae_target / max(meter, 1e-4)) ** p.ae_strength * 2.0**p.exposure_ev)


@dataclass(frozen=True)
class _Lattice:
    """What one Bayer lattice needs to render any strip of its rows (linear light, pre-gain).

    ``maps``: coarse screen coordinates (texture pixels, (n, m, 2)) of the lattice's own grid;
    ``tex``/``code``: the colour's texture plane and the monitor code (:func:`_textures`);
    ``shared``: coarse gain G and the stripe polynomials (``u``, ``v``) on the R lattice grid;
    ``channel``: the coarse P1…P4 of the lattice's colour (see ``simulate_photo``).
    """

    maps: np.ndarray
    tex: np.ndarray
    code: np.ndarray
    width: int
    u_offset: float
    v_offset: float
    shared: dict[str, Any]
    channel: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

    def render(self, r0: int, rows: int) -> np.ndarray:
        """Rows ``r0 … r0 + rows - 1``: mask·(G·e + act·P1) + act·P2 + alpha·P3 + P4."""

        def up(coarse: np.ndarray) -> np.ndarray:
            return _upsample_rows(coarse, r0, rows, self.width)

        uv = up(self.maps)  # (rows, width, 2): OpenCV's interleaved float map, one resize
        e = cv2.remap(self.tex, uv, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0)
        code = cv2.remap(self.code, uv, None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mu, mv = uv[..., 0], uv[..., 1]
        alpha = np.clip(code, 0.0, 1.0)
        act = code - 1.0
        np.clip(act, 0.0, 1.0, out=act)
        mask = display.stripe_mask(mu, self.u_offset, [up(q) for q in self.shared["u"]])
        mask *= display.stripe_mask(mv, self.v_offset, [up(q) for q in self.shared["v"]])
        p1, p2, p3, p4 = self.channel
        lat = up(self.shared["gain"]) * e
        lat += act * up(p1)
        lat *= mask
        act *= up(p2)
        lat += act
        alpha *= up(p3)
        lat += alpha
        lat += up(p4)
        return lat


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

    # --- screen content and linear drive (native panel resolution)
    screen = render_screen(img, p)
    x0, y0, dw, dh = screen.image_rect
    img_corners_s = screen.image_corners()
    aim = (x0 - 0.5 + dw * (0.5 + p.aim_offset[0]), y0 - 0.5 + dh * (0.5 + p.aim_offset[1]))
    cam, distance = _fit_distance(p, size, aim, img_corners_s, dh)
    hom = cam.homography()
    hinv = np.linalg.inv(hom)
    mixed = display.mixed_drive(screen.rgb8, p)

    # Photo pixels per screen pixel near the aim point (for blur conversions).
    pts = cam.project(np.array([aim, (aim[0] + 1, aim[1]), (aim[0], aim[1] + 1)]))
    jac = np.column_stack([pts[1] - pts[0], pts[2] - pts[0]])  # photo per screen
    scale = float(np.sqrt(abs(np.linalg.det(jac))))
    bscale = w / REFERENCE_WIDTH
    sigma = float(np.hypot(p.optics_blur_px, p.defocus_px)) * bscale
    motion = p.motion_px * bscale

    # --- textures: mixed linear drive per colour + monitor code (0 outside, 1 bezel, 2 active)
    f32 = np.float32
    bz = round(p.bezel_mm / p.pixel_pitch_mm)
    off = bz + _PAD
    # Blur in screen space: lens PSF and pixel aperture (anti-aliasing) before sampling.
    sig_s = float(np.sqrt((sigma / scale) ** 2 + (1.0 / scale) ** 2 / 12.0))
    kernel = None
    if motion > 0.5:
        ang = np.deg2rad(p.motion_angle_deg)
        d = np.linalg.solve(jac, motion * np.array([np.cos(ang), np.sin(ang)]))
        kernel = _line_kernel(float(d[0]), float(d[1]))
    texs, code = _textures(mixed, bz=bz, sigma=sig_s, kernel=kernel)
    mean_e = _mean_emission(mixed, code, off, p)
    del mixed

    # --- smooth fields, once per photo on the coarse grid of the largest (R) lattice; the
    # other lattices reuse them: a shift of one photo pixel is invisible in these fields.
    w2, h2 = (w + 1) // 2, (h + 1) // 2
    gx, gy = _lattice_grid(w2, h2, 0, 0)
    u, v = _to_screen(cam, hinv, gx, gy)
    step = 2.0 * _STEP  # photo pixels between coarse points
    du = tuple(g / step for g in np.gradient(u)[::-1])  # (du/dx, du/dy)
    dv = tuple(g / step for g in np.gradient(v)[::-1])
    s2w = cam.screen_to_world()  # affine: written out (no BLAS threads, see _to_screen)
    rx = cam.centre[0] - (s2w[0, 0] * u + s2w[0, 2])
    ry = cam.centre[1] - (s2w[1, 1] * v + s2w[1, 2])
    rz = cam.centre[2]
    # viewing angle between the panel normal and the ray to the camera
    cos_t = np.clip(-rz / np.sqrt(rx * rx + ry * ry + rz * rz), 1e-3, 1.0)
    lum = cos_t**p.view_falloff
    kappa = np.clip(p.view_contrast_loss * (1.0 - cos_t**2) / 0.5, 0.0, 1.0)
    cx, cy = cam.principal
    vig = 1.0 - p.vignetting * ((gx - cx) ** 2 + (gy - cy) ** 2) / cam.r_norm**2
    amb = scene.ambient(gx, gy, size, p)
    gl = scene.glare(gx, gy, cam.project(img_corners_s), p)
    bez = vig * (amb * p.bezel_grey + gl)
    bg = vig * scene.background(gx, gy, size, p)
    # The panel's backlight gain and black level are smooth on the screen: applied here, per
    # photo pixel, instead of to a full-resolution emission image before the (linear) blur.
    pscale, poffset = display.panel_terms(u.astype(f32), v.astype(f32), p)
    mix_sum = display.mix_matrix(p).sum(axis=1)
    # Per pixel: mask·(gain·e + act·offset·mean_e) + act·mon·tint + (alpha - act)·bez·tint
    # + (1 - alpha)·bg·bg_tint, with e = pscale·mixed + act·poffset·Σ_d M_cd, regrouped as
    # mask·(G·mixed + act·P1) + act·P2 + alpha·P3 + P4 with smooth G, P1…P4 combined here,
    # on the coarse grid (upsampling is linear).
    gain_view = vig * lum * (1.0 - kappa)
    shared = {
        "gain": (gain_view * pscale).astype(f32),
        "u": display.power_coefficients(display.harmonic_gains(
            du, duty=p.subpixel_duty, n=display.N_HARMONICS_U, blur_sigma_px=sigma,
            motion_px=motion, motion_angle_deg=p.motion_angle_deg)),
        "v": display.power_coefficients(display.harmonic_gains(
            dv, duty=p.row_fill, n=display.N_HARMONICS_V, blur_sigma_px=sigma,
            motion_px=motion, motion_angle_deg=p.motion_angle_deg)),
    }
    per_channel = []
    for c in range(3):
        at, bt = p.ambient_tint[c], p.background_tint[c]
        per_channel.append((  # P1 … P4; P2 = (mon − bez)·tint, where the glare cancels
            (vig * lum * kappa * mean_e[c] + gain_view * poffset * mix_sum[c]).astype(f32),
            (vig * amb * (p.screen_reflectance - p.bezel_grey) * at).astype(f32),
            (bez * at - bg * bt).astype(f32),
            (bg * bt).astype(f32),
        ))

    # --- per Bayer lattice (RGGB), strip by strip: exact screen coordinates, texture lookup,
    # sub-pixel mask, then exposure, noise, white balance and the 12-bit ADC. The second green
    # lattice goes first and whole: the auto-exposure meters on it.
    codes = np.empty((h, w), np.uint16)
    wb = [float(x) for x in p.wb_error]
    cam_mod.seed_noise(int(rng_noise.integers(2**31)))
    gain = 1.0
    for oy, ox, c in ((1, 0, 1), (0, 0, 0), (0, 1, 1), (1, 1, 2)):
        lw, lh = (w - ox + 1) // 2, (h - oy + 1) // 2
        lx, ly = _lattice_grid(lw, lh, ox, oy)
        lu, lv = _to_screen(cam, hinv, lx, ly)
        lattice = _Lattice(
            maps=np.dstack([lu + off, lv + off]).astype(f32), tex=texs[c], code=code, width=lw,
            u_offset=display.SUBPIXEL_OFFSET[c] + off, v_offset=float(off), shared=shared,
            channel=per_channel[c])
        wb_c = f32(wb[0] if c == 0 else wb[2] if c == 2 else wb[1])
        if (oy, ox) == (1, 0):
            green = np.empty((lh, lw), np.float32)
            for r0 in range(0, lh, _ROWS):
                green[r0:r0 + _ROWS] = lattice.render(r0, min(_ROWS, lh - r0))
            gain = _auto_exposure(green, p)
            strips = (green[r0:r0 + _ROWS] for r0 in range(0, lh, _ROWS))
        else:
            strips = (lattice.render(r0, min(_ROWS, lh - r0)) for r0 in range(0, lh, _ROWS))
        for k, strip in enumerate(strips):
            r0 = k * _ROWS
            strip *= f32(gain)
            cam_mod.add_sensor_noise(strip, p)
            strip *= wb_c
            np.clip(strip, 0.0, 1.0, out=strip)
            codes[oy + 2 * r0:oy + 2 * (r0 + strip.shape[0]):2, ox::2] = cam_mod.adc_codes(strip)

    # --- phone ISP and JPEG. The ISP works in BGR so that the encoder gets OpenCV's channel
    # order without a 36 MB flip; the bytes are those of photorad.io.encode_jpeg(RGB).
    bgr = cam_mod.develop(codes, p, bgr=True)
    del codes
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)])
    if not ok:
        raise PhotoradError("JPEG encoding failed")
    jpeg = buf.tobytes()
    corners = cam.project(img_corners_s)
    sw, sh = screen.rgb8.shape[1], screen.rgb8.shape[0]
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
    return SimResult(corners=corners, params=out, jpeg=jpeg,
                     screen_corners=cam.project(panel) if _in_front(cam, panel) else panel * 0)


def _in_front(cam: cam_mod.CameraModel, uv: np.ndarray) -> bool:
    try:
        cam.project(uv)
    except ConfigError:
        return False
    return True
