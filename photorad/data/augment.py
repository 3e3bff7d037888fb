"""Seeded training augmentations for grey-scale images (float32 H×W in [0, 1]).

The reference paper trained its classifier on originals only and relied on augmentation to make it
robust to phone photos; these are the photo-like degradations that matter for that: horizontal
flips, a small affine jitter, brightness/contrast/gamma (display tone curves), Gaussian blur
(defocus), sensor noise and JPEG compression (what phones send). Every random draw comes from the
``numpy.random.Generator`` passed in, so a (seed, epoch, index) triple fixes the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["AugmentConfig", "augment"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (angles in degrees, sizes as fractions)."""

    hflip: float = 0.5
    #: Ultrasound has a fixed skin-at-top orientation; vertical flips are off by default.
    vflip: float = 0.0
    affine_p: float = 0.7
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05  #: fraction of the side
    tone_p: float = 0.8
    brightness: float = 0.1  #: additive, in [0, 1] intensity units
    contrast: float = 0.2  #: multiplicative about the mean: 1 ± contrast
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)  #: pixels at the model input size
    noise_p: float = 0.3
    noise_sigma: tuple[float, float] = (0.005, 0.04)
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        d = dict(d or {})
        for k in ("scale", "gamma", "blur_sigma", "noise_sigma", "jpeg_quality"):
            if k in d:
                d[k] = tuple(d[k])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            from photorad.errors import ConfigError

            raise ConfigError(f"unknown augmentation option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _affine(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    h, w = img.shape
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    scale = rng.uniform(*cfg.scale)
    tx, ty = rng.uniform(-cfg.translate, cfg.translate, size=2) * (w, h)
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    m[:, 2] += (tx, ty)
    # Reflection keeps image statistics at the borders (a black wedge would be a shortcut cue).
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from photorad.io import encode_jpeg, load_original

    return load_original(encode_jpeg(img, quality=quality)).astype(np.float32)


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> np.ndarray:
    """Return a randomly augmented copy of ``img`` (float32 H×W in [0, 1])."""
    cfg = cfg or AugmentConfig()
    x = np.asarray(img, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"augment expects a grey H×W image, got shape {x.shape}")
    if rng.random() < cfg.hflip:
        x = x[:, ::-1]
    if rng.random() < cfg.vflip:
        x = x[::-1, :]
    x = np.ascontiguousarray(x)
    if rng.random() < cfg.affine_p:
        x = _affine(x, rng, cfg)
    if rng.random() < cfg.tone_p:
        g = rng.uniform(*cfg.gamma)
        x = np.power(np.clip(x, 0.0, 1.0), g)
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        mean = float(x.mean())
        x = (x - mean) * c + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.blur_p:
        s = rng.uniform(*cfg.blur_sigma)
        x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigmaX=s, sigmaY=s,
                             borderType=cv2.BORDER_REFLECT_101)
    if rng.random() < cfg.noise_p:
        x = x + rng.normal(0.0, rng.uniform(*cfg.noise_sigma), size=x.shape)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    if rng.random() < cfg.jpeg_p:
        lo, hi = cfg.jpeg_quality
        x = _jpeg(x, int(rng.integers(lo, hi + 1)))
    return x
