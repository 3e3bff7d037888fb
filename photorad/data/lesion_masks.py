"""BUS-BRA lesion masks: ``Masks/mask_XXXX-s.png`` beside ``Images/bus_XXXX-s.png``.

A mask is read through :func:`photorad.io.load_original` (the one place that decodes images)
and checked against its image's size: a mask of another size cannot be registered to the image,
so it is an error that names the file, never a silently stretched target.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from photorad.errors import ConfigError, PhotoradError

__all__ = ["load_mask", "mask_path"]


def mask_path(image_path: str | os.PathLike) -> Path:
    """The BUS-BRA mask file of an image file (``Images/bus_X.png`` → ``Masks/mask_X.png``)."""
    p = Path(image_path)
    return p.parent.parent / "Masks" / p.name.replace("bus_", "mask_", 1)


def load_mask(path: str | os.PathLike, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A binary lesion mask as ``uint8`` (H, W): 255 = lesion, 0 = background.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or its size differs from ``shape`` (rows, columns).
    """
    from photorad.io import load_original

    try:
        m = load_original(path)
    except (OSError, PhotoradError) as exc:
        raise ConfigError(f"lesion mask {Path(path).name}: {exc}") from None
    if shape is not None and m.shape != tuple(shape):
        raise ConfigError(f"lesion mask {Path(path).name} is {m.shape[1]}×{m.shape[0]} px but its "
                          f"image is {shape[1]}×{shape[0]} px; fix or drop that pair")
    return np.where(m > 0.5, 255, 0).astype(np.uint8)
