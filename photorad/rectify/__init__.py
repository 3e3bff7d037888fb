"""Stage 1: find the displayed medical image in a phone photo and undo the perspective.

* :func:`detect` — photo → :class:`Quad` (TL, TR, BR, BL corners of the displayed image area,
  score, method); raises :class:`~photorad.errors.NoScreenFoundError` with an actionable reason.
* :func:`warp` — photo + quad (or user-given corners) → ``float32`` grey image in [0, 1].
* :func:`quality` — blur, glare, exposure, keystone and effective resolution checks.
* :func:`align` — precise photo → original registration (features + RANSAC + ECC).
* :func:`order_corners`, :func:`validate_corners` — corner hygiene for user input.

This package does not import torch.
"""

from __future__ import annotations

from photorad.rectify.align import Alignment, align
from photorad.rectify.detect import detect, refine_corners
from photorad.rectify.geometry import Quad, order_corners, validate_corners
from photorad.rectify.quality import Check, QualityReport, quality
from photorad.rectify.warp import warp

__all__ = [
    "Alignment",
    "Check",
    "Quad",
    "QualityReport",
    "align",
    "detect",
    "order_corners",
    "quality",
    "refine_corners",
    "validate_corners",
    "warp",
]
