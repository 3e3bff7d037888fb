"""Every parameter of the forward model (:class:`SimParams`) and the presets that sample them.

Units are explicit in each field name or comment. Lengths that describe blur are given in pixels
*of a 4032-pixel-wide photo* and scaled with the output width, so that a 1600×1200 simulation of
the same scene is a downscaled version of the 12 MP one rather than a blurrier scene.

A preset is a table of ranges: :func:`sample_params` draws one value per field uniformly from the
range (or from the list of choices) with the given random generator, so every photo of a preset
differs within the preset's envelope and is reproducible from its seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photorad.errors import ConfigError

#: Output width (pixels) that blur lengths in :class:`SimParams` refer to.
REFERENCE_WIDTH = 4032


@dataclass
class SimParams:
    """All parameters of one simulated screen photo (JSON-able through :meth:`to_dict`)."""

    # --- viewer (screen content) ---
    screen_w: int = 1920  # native display resolution, pixels
    screen_h: int = 1080
    pixel_pitch_mm: float = 0.2715  # 24-inch full-HD panel
    image_zoom: float = 0.85  # displayed image height / viewport height (limited by width)
    image_offset: tuple[float, float] = (0.0, 0.0)  # shift of the image in viewport fractions
    viewer_interp: str = "linear"  # nearest | linear | cubic | area
    window_width: float = 1.0  # viewer window/level on the [0, 1] original
    window_level: float = 0.5
    ui: bool = True  # toolbar, side panel and overlay text
    viewport_grey: float = 0.02  # drive value of the empty viewport
    toolbar_px: int = 40
    side_panel_px: int = 220
    # --- display ---
    display_gamma: float = 2.2
    black_level: float = 0.003  # luminance of a black pixel / white luminance
    backlight_bleed: float = 0.01  # extra black-level at the panel edges, fraction of white
    backlight_falloff: float = 0.10  # luminance loss at the panel corners (non-uniformity)
    white_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # display white, linear RGB gains
    subpixel_duty: float = 0.30  # lit width of one sub-pixel / pixel width
    row_fill: float = 0.85  # lit height of a pixel row / pixel height (black matrix)
    view_falloff: float = 1.5  # luminance ∝ cos(view angle) ** view_falloff
    view_contrast_loss: float = 0.15  # fraction of contrast lost at 45° off-axis
    bezel_mm: float = 12.0
    bezel_grey: float = 0.04  # bezel reflectance
    # --- scene ---
    ambient: float = 0.03  # room illuminance on the screen, in display-white units
    ambient_tint: tuple[float, float, float] = (1.0, 0.95, 0.85)
    screen_reflectance: float = 0.3  # matte (diffuse) reflectance of the anti-glare coating
    matte_glare: float = 0.0  # peak of a broad Gaussian reflection, display-white units
    matte_glare_sigma: float = 0.4  # its σ, fraction of the displayed image diagonal
    matte_glare_pos: tuple[float, float] = (0.3, 0.3)  # centre, fraction of the image area
    specular_glare: float = 0.0  # peak of a glossy specular patch (saturates when > ~1)
    specular_size: float = 0.08  # patch radius, fraction of the displayed image diagonal
    specular_aspect: float = 1.6
    specular_pos: tuple[float, float] = (0.7, 0.3)
    background: float = 0.08  # room background level, display-white units
    background_tint: tuple[float, float, float] = (1.0, 0.95, 0.9)
    background_seed: int = 0
    # --- camera geometry ---
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    fill: float = 0.7  # displayed image height / photo height (used when distance_m is None)
    distance_m: float | None = None  # camera to aim point; None: derived from ``fill``
    aim_offset: tuple[float, float] = (0.0, 0.0)  # aim point shift, fraction of the image size
    focal_mm_equiv: float = 26.0  # 35 mm-equivalent focal length (diagonal)
    k1: float = 0.0  # radial distortion (undistorted = distorted·(1 + k1 r² + k2 r⁴))
    k2: float = 0.0
    # --- camera optics and sensor ---
    optics_blur_px: float = 0.7  # Gaussian σ of the lens PSF at best focus
    defocus_px: float = 0.0  # extra Gaussian σ from defocus
    motion_px: float = 0.0  # length of linear motion blur
    motion_angle_deg: float = 0.0
    vignetting: float = 0.2  # relative illumination loss at the photo corners
    exposure_ev: float = 0.0  # exposure relative to the auto-exposure
    ae_target: float = 0.18  # auto-exposure: centre-weighted mean linear level it aims for
    ae_strength: float = 0.3  # 1: the metered level always reaches ae_target; 0: fixed gain 1
    iso: float = 100.0
    full_well_e: float = 6000.0  # electrons at saturation, ISO 100
    read_noise_e: float = 3.0
    cfa_crosstalk: float = 0.05  # fraction of each primary seen by the other two CFA colours
    wb_error: tuple[float, float, float] = (1.0, 1.0, 1.0)  # white-balance gain error per channel
    tone_contrast: float = 0.2  # strength of the S-shaped tone curve (0 = sRGB only)
    tone_black: float = 0.0  # output black lift, fraction of full scale
    sharpen: float = 0.3  # unsharp-mask amount
    jpeg_quality: int = 92

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimParams:
        """Build from a dict such as ``SimResult.params``; the recorded metadata keys
        (``derived``, ``preset``, ``seed``, ``size``) are ignored, other unknown keys raise."""
        return cls().replace(**{k: v for k, v in d.items() if k not in META_KEYS})

    def replace(self, **changes: Any) -> SimParams:
        """A copy with ``changes`` applied; unknown names raise :class:`ConfigError`."""
        names = {f.name: f for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - set(names))
        if bad:
            raise ConfigError(f"unknown simulator parameter(s): {', '.join(bad)}")
        fixed = {}
        for k, v in changes.items():
            cur = getattr(self, k)
            if isinstance(cur, tuple) or (isinstance(v, list)):
                v = tuple(float(x) for x in v)
            fixed[k] = v
        return dataclasses.replace(self, **fixed)


#: Keys of ``SimResult.params`` that are records of a run, not parameters.
META_KEYS = ("derived", "preset", "seed", "size")

# A range is (lo, hi) for a uniform float, [a, b, ...] for a choice, or a fixed value.
Range = Any


@dataclass(frozen=True)
class Preset:
    """Ranges of the parameters that vary within a preset; the rest keep the dataclass default."""

    name: str
    description: str
    ranges: dict[str, Range] = field(default_factory=dict)


# "ideal" is the seed paper's capture: a careful, straight-on iPhone photo of an LCD in a dim
# reading room. It is *not* distortion-free: the paper's photos lose ~14 dB PSNR, mostly through
# the tone chain (black level + ambient lift, auto-exposure, phone tone curve) and moiré.
_IDEAL = {
    "image_zoom": (0.8, 0.95),
    "image_offset": [(0.0, 0.0)],
    "viewer_interp": ["linear", "cubic"],
    "display_gamma": (2.1, 2.3),
    "black_level": (0.002, 0.004),
    "backlight_bleed": (0.005, 0.015),
    "backlight_falloff": (0.05, 0.12),
    "ambient": (0.01, 0.02),
    "screen_reflectance": (0.2, 0.4),
    "background": (0.03, 0.1),
    "yaw_deg": (-3.0, 3.0),
    "pitch_deg": (-3.0, 3.0),
    "roll_deg": (-2.0, 2.0),
    "fill": (0.75, 0.9),
    "aim_offset": [(0.0, 0.0)],
    "k1": (-0.01, 0.01),
    "defocus_px": (2.0, 5.0),
    "ae_strength": (0.25, 0.35),
    "exposure_ev": (1.05, 1.45),
    "iso": (400.0, 1000.0),
    "wb_error": [(1.0, 1.0, 1.0)],
    "tone_contrast": (0.1, 0.3),
    "tone_black": (0.0, 0.02),
    "sharpen": (0.2, 0.5),
    "jpeg_quality": [90, 92, 95],
}

_TYPICAL = {
    **_IDEAL,
    "screen_w": [1920, 2560],
    "image_zoom": (0.6, 0.95),
    "image_offset": (-0.05, 0.05),
    "viewer_interp": ["nearest", "linear", "cubic", "area"],
    "display_gamma": (2.0, 2.4),
    "black_level": (0.002, 0.008),
    "backlight_bleed": (0.005, 0.03),
    "backlight_falloff": (0.05, 0.2),
    "white_tint": (0.93, 1.07),
    "ambient": (0.01, 0.06),
    "matte_glare": (0.0, 0.08),
    "matte_glare_pos": (0.1, 0.9),
    "specular_glare": [0.0, 0.0, 0.3, 0.6],
    "specular_pos": (0.1, 0.9),
    "yaw_deg": (-12.0, 12.0),
    "pitch_deg": (-12.0, 12.0),
    "roll_deg": (-6.0, 6.0),
    "fill": (0.55, 0.9),
    "aim_offset": (-0.1, 0.1),
    "focal_mm_equiv": (24.0, 28.0),
    "k1": (-0.03, 0.03),
    "defocus_px": (1.0, 6.0),
    "motion_px": (0.0, 3.0),
    "motion_angle_deg": (0.0, 180.0),
    "ae_strength": (0.2, 0.6),
    "exposure_ev": (0.6, 1.6),
    "iso": (200.0, 1600.0),
    "wb_error": (0.92, 1.08),
    "tone_black": (0.0, 0.04),
    "jpeg_quality": [80, 85, 90, 95],
}

_HARD = {
    **_TYPICAL,
    "screen_w": [1920, 2560, 3840],
    "image_zoom": (0.45, 0.95),
    "image_offset": (-0.15, 0.15),
    "display_gamma": (1.9, 2.6),
    "black_level": (0.003, 0.02),
    "backlight_bleed": (0.01, 0.06),
    "backlight_falloff": (0.1, 0.35),
    "white_tint": (0.85, 1.15),
    "view_contrast_loss": (0.1, 0.4),
    "ambient": (0.05, 0.2),
    "matte_glare": (0.02, 0.3),
    "specular_glare": (0.0, 2.0),
    "specular_size": (0.03, 0.15),
    "yaw_deg": (-25.0, 25.0),
    "pitch_deg": (-25.0, 25.0),
    "roll_deg": (-25.0, 25.0),
    "fill": (0.35, 0.85),
    "aim_offset": (-0.2, 0.2),
    "focal_mm_equiv": (13.0, 52.0),
    "k1": (-0.08, 0.08),
    "k2": (-0.02, 0.02),
    "defocus_px": (2.0, 12.0),
    "motion_px": (0.0, 12.0),
    "ae_strength": (0.2, 0.9),
    "exposure_ev": (-0.5, 2.0),
    "iso": (800.0, 3200.0),
    "wb_error": (0.8, 1.2),
    "tone_contrast": (0.0, 0.5),
    "tone_black": (0.0, 0.08),
    "sharpen": (0.0, 1.0),
    "jpeg_quality": (60, 95),
}

PRESETS: dict[str, Preset] = {
    "ideal": Preset("ideal", "careful straight-on photo in a dim room (seed paper)", _IDEAL),
    "typical": Preset("typical", "hand-held photo, some angle, glare and blur", _TYPICAL),
    "hard": Preset("hard", "oblique, glare, defocus, motion, high ISO, low JPEG quality", _HARD),
}

_SEEDED_FIELDS = ("background_seed",)


def preset(name: str) -> Preset:
    """Return the preset called ``name`` (``ideal``, ``typical`` or ``hard``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown simulator preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def _draw(spec: Range, default: Any, rng: np.random.Generator) -> Any:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(default, tuple):
        lo, hi = spec
        if isinstance(default, int) and not isinstance(default, bool):
            return int(rng.integers(int(lo), int(hi) + 1))
        return float(rng.uniform(lo, hi))
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(default, tuple):
        lo, hi = spec  # an independent uniform draw for each element of a tuple field
        return tuple(float(rng.uniform(lo, hi)) for _ in default)
    return spec


def sample_params(name_or_preset: str | Preset, rng: np.random.Generator) -> SimParams:
    """Draw one :class:`SimParams` from a preset's ranges with ``rng``."""
    p = preset(name_or_preset) if isinstance(name_or_preset, str) else name_or_preset
    base = SimParams()
    values: dict[str, Any] = {}
    for f in dataclasses.fields(SimParams):
        default = getattr(base, f.name)
        if f.name in p.ranges:
            values[f.name] = _draw(p.ranges[f.name], default, rng)
    values["background_seed"] = int(rng.integers(2**31 - 1))
    params = base.replace(**values)
    # Full-HD panels at 1920 keep their 16:9 shape; wider ones get the matching height and pitch.
    h = {1920: 1080, 2560: 1440, 3840: 2160}.get(params.screen_w, round(params.screen_w * 9 / 16))
    pitch = {1920: 0.2715, 2560: 0.2331, 3840: 0.1554}.get(params.screen_w, params.pixel_pitch_mm)
    return params.replace(screen_h=h, pixel_pitch_mm=pitch)
