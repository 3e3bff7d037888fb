"""Perspective warp of the displayed-image quad to an upright grey image.

The photo region is usually several times larger than the original image (a 12 MP photo of a
500-pixel ultrasound frame), so a plain cubic warp would alias moiré and noise into the result.
:func:`warp` therefore first area-averages the photo down (``cv2.INTER_AREA``, an exact box
filter) until one photo pixel is about one output pixel, then applies the residual perspective
with bicubic interpolation. Border pixels are replicated, so the output never has black borders.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from photorad.errors import ImageTooSmallError, InvalidCornersError, UnsupportedImageError
from photorad.rectify.geometry import (
    Quad,
    quad_size,
    rect_corners,
    scale_points,
    unscale_points,
    validate_corners,
)

#: BT.601 luma weights (R, G, B), the same as ``cv2.COLOR_RGB2GRAY``.
BT601 = (0.299, 0.587, 0.114)
#: Area pre-filtering starts when the photo has this many pixels per output pixel (linear).
AA_THRESHOLD = 1.25
#: Largest output side accepted, in pixels (a guard against absurd ``size`` values).
MAX_OUTPUT_SIDE = 16384


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3×3 ``float64`` homography mapping 4 ``src`` points onto 4 ``dst`` points (exact DLT)."""
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * i], b[2 * i + 1] = u, v
    try:
        h = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise InvalidCornersError("corners are degenerate (three of them are collinear)") from None
    return np.append(h, 1.0).reshape(3, 3)


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through the 3×3 homography ``h``."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ np.asarray(h, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def to_grey(photo: np.ndarray) -> np.ndarray:
    """``uint8`` RGB (H, W, 3) or grey (H, W) → ``float32`` grey in [0, 1] (BT.601 luma)."""
    a = np.asarray(photo)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype == np.uint8:
        f = a.astype(np.float32) * np.float32(1.0 / 255.0)
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32, copy=False)
    else:
        raise UnsupportedImageError(f"photo must be uint8 RGB or float grey, got dtype {a.dtype}")
    if f.ndim == 3 and f.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
    if f.ndim == 2:
        return f
    raise UnsupportedImageError(f"photo must be H×W×3 RGB or H×W grey, got shape {a.shape}")


def output_size(corners: np.ndarray) -> tuple[int, int]:
    """Default output (width, height): the quad's mean side lengths, rounded."""
    w, h = quad_size(corners)
    return max(1, round(w)), max(1, round(h))


def warp(
    photo: np.ndarray,
    corners_or_quad: Quad | np.ndarray | Any,
    *,
    size: tuple[int, int] | None = None,
    validate: bool = True,
) -> np.ndarray:
    """Rectify the quad of ``photo`` into an upright ``float32`` grey image in [0, 1].

    Parameters
    ----------
    photo:
        ``uint8`` H×W×3 RGB phone photo (or an H×W grey array, uint8 or float in [0, 1]).
    corners_or_quad:
        A :class:`Quad` or (4, 2) corners TL, TR, BR, BL in photo pixels (outer image edges).
    size:
        Output ``(width, height)`` in pixels, e.g. the original image's size when building
        training pairs. Default: the quad's mean side lengths (its aspect ratio, photo resolution).
    validate:
        Check the corners with :func:`validate_corners` (inside the photo, convex).

    Returns
    -------
    numpy.ndarray
        ``float32`` (height, width) grey image in [0, 1]; corner k of the quad maps onto the
        matching outer corner of the output.
    """
    if photo is None or np.asarray(photo).ndim not in (2, 3):
        raise UnsupportedImageError("photo must be an H×W×3 RGB or H×W grey array")
    ph, pw = np.asarray(photo).shape[:2]
    if validate:
        corners = validate_corners(corners_or_quad, image_size=(pw, ph))
    else:
        corners = np.asarray(
            corners_or_quad.corners if isinstance(corners_or_quad, Quad) else corners_or_quad,
            dtype=np.float64,
        ).reshape(4, 2)
    out_w, out_h = output_size(corners) if size is None else (int(size[0]), int(size[1]))
    if out_w < 1 or out_h < 1:
        raise ImageTooSmallError(f"output size must be positive, got {out_w}x{out_h}")
    if max(out_w, out_h) > MAX_OUTPUT_SIDE:
        raise ImageTooSmallError(f"output size {out_w}x{out_h} exceeds {MAX_OUTPUT_SIDE} px")

    # Crop the quad's bounding box (plus a margin for the interpolation kernels) before any
    # per-pixel work: the image area is often a small part of a 12 MP photo.
    margin = 4
    x0 = max(int(np.floor(corners[:, 0].min())) - margin, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - margin, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + margin + 1, pw)
    y1 = min(int(np.ceil(corners[:, 1].max())) + margin + 1, ph)
    crop = np.asarray(photo)[y0:y1, x0:x1]
    src = corners - np.array([x0, y0], dtype=np.float64)

    # Photo pixels per output pixel along each axis, using the *shorter* of the opposite sides so
    # that no part of the image is under-sampled after the box filter.
    tl, tr, br, bl = src
    fx = min(np.hypot(*(tr - tl)), np.hypot(*(br - bl))) / out_w
    fy = min(np.hypot(*(bl - tl)), np.hypot(*(br - tr))) / out_h
    ix, iy = max(1, int(fx)), max(1, int(fy))
    if max(fx, fy) > AA_THRESHOLD and (ix > 1 or iy > 1):
        # Integer box reduction first (OpenCV's fast path). The BT.601 conversion is done in
        # 8 bits here: its ±0.5/255 rounding is averaged over ix·iy ≥ 2 pixels right after.
        hh, ww = crop.shape[0] // iy * iy, crop.shape[1] // ix * ix
        g8 = crop[:hh, :ww]
        if g8.ndim == 3:
            g8 = cv2.cvtColor(np.ascontiguousarray(g8[..., :3]), cv2.COLOR_RGB2GRAY)
        grey = to_grey(g8) if g8.dtype != np.uint8 else g8.astype(np.float32) / 255.0
        grey = cv2.resize(grey, (ww // ix, hh // iy), interpolation=cv2.INTER_AREA)
        src = unscale_points(src, np.array([ix, iy]))
        fx, fy = fx / ix, fy / iy
    else:
        grey = to_grey(crop)
    if max(fx, fy) > AA_THRESHOLD:
        kx, ky = max(fx, 1.0), max(fy, 1.0)
        small_w = max(1, round(grey.shape[1] / kx))
        small_h = max(1, round(grey.shape[0] / ky))
        sx, sy = small_w / grey.shape[1], small_h / grey.shape[0]
        grey = cv2.resize(grey, (small_w, small_h), interpolation=cv2.INTER_AREA)
        src = scale_points(src, np.array([sx, sy]))

    h = homography(src, rect_corners(out_w, out_h))
    out = cv2.warpPerspective(
        grey,
        h,
        (out_w, out_h),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
