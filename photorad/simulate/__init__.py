"""Screen-photo simulator: a physical forward model from an original image to a phone photo.

The chain (every step a field of :class:`SimParams`): the image in a PACS-like viewer →
display gamma, black level, backlight, viewing angle, RGB sub-pixel stripes, bezel → room
background, ambient light, matte and specular glare → camera pose (homography), lens
distortion, blur, exposure, Bayer sampling, Poisson–Gaussian noise, white balance, demosaicing,
tone curve, sharpening, JPEG.

>>> from photorad.simulate import simulate_photo
>>> res = simulate_photo(original, preset="typical", seed=3, size=(2016, 1512))
>>> res.photo.shape, res.corners  # (1512, 2016, 3) uint8 RGB; TL, TR, BR, BL in photo pixels

This package does not import torch.
"""

from __future__ import annotations

from photorad.simulate.core import DEFAULT_SIZE, SimResult, simulate_photo
from photorad.simulate.presets import PRESETS, Preset, SimParams, preset, sample_params

__all__ = [
    "DEFAULT_SIZE",
    "PRESETS",
    "Preset",
    "SimParams",
    "SimResult",
    "preset",
    "sample_params",
    "simulate_photo",
]
