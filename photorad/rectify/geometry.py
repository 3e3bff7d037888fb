"""Quadrilateral geometry: the :class:`Quad` type, corner ordering and validation.

Coordinate convention (shared by the whole package): corners are ``float64`` arrays of shape
(4, 2) holding (x, y) photo-pixel coordinates ordered **TL, TR, BR, BL**, with pixel *centres* at
integer coordinates (OpenCV's convention). A corner marks the outer edge of the displayed image,
so an image shown exactly on photo pixels x = 10 … 109 has its left corners at x = 9.5 and its right
corners at x = 109.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from photorad.errors import InvalidCornersError

#: Smallest accepted quad area, in photo pixels² (an 8×8 image region cannot be rectified).
MIN_QUAD_AREA = 64.0
#: Assumed phone focal length as a fraction of the photo's long side (≈ 26 mm equivalent main
#: camera; principal point at the photo centre). Used where perspective geometry needs a camera.
FOCAL_FRACTION = 0.8


@dataclass(frozen=True, eq=False)
class Quad:
    """A displayed-image quadrilateral found in (or given for) a photo.

    Attributes
    ----------
    corners:
        ``float64`` (4, 2) array, TL, TR, BR, BL, photo pixel coordinates (x, y).
    score:
        Confidence in [0, 1]; 1.0 for user-given corners.
    method:
        How the quad was obtained (``"manual"``, ``"contour"``, ``"edges"`` …).
    details:
        JSON-able extra information (e.g. the screen quad found before the image area).
    """

    corners: np.ndarray
    score: float = 1.0
    method: str = "manual"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = np.asarray(self.corners, dtype=np.float64).reshape(4, 2).copy()
        c.setflags(write=False)
        object.__setattr__(self, "corners", c)
        object.__setattr__(self, "score", float(np.clip(self.score, 0.0, 1.0)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"corners": [[x, y], ...], "score": s, "method": m}``."""
        d: dict[str, Any] = {
            "corners": [[float(x), float(y)] for x, y in self.corners],
            "score": round(self.score, 4),
            "method": self.method,
        }
        if self.details:
            d["details"] = self.details
        return d


def as_corners(corners_or_quad: Quad | np.ndarray | Any) -> np.ndarray:
    """Return the (4, 2) ``float64`` corner array of a :class:`Quad` or array-like."""
    if isinstance(corners_or_quad, Quad):
        return np.array(corners_or_quad.corners, dtype=np.float64)
    try:
        c = np.asarray(corners_or_quad, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidCornersError("corners must be 4 (x, y) number pairs") from None
    if c.size != 8:
        raise InvalidCornersError(f"corners must be 4 (x, y) pairs, got {c.size} numbers")
    return c.reshape(4, 2).copy()


def order_corners(points: np.ndarray | Any) -> np.ndarray:
    """Order 4 points as TL, TR, BR, BL.

    The points are sorted clockwise (as seen on screen, y pointing down) by their angle around
    the centroid, then the cyclic order is rotated so that the *top edge* — the edge whose
    midpoint lies most nearly straight above the centroid — runs from TL to TR. Unlike sorting by
    x + y, this stays correct for strongly skewed or rotated (up to ±45°) quads.
    """
    p = as_corners(points)
    c = p.mean(axis=0)
    ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])
    p = p[np.argsort(ang, kind="stable")]  # ascending angle with y down = clockwise on screen
    mids = (p + np.roll(p, -1, axis=0)) / 2.0 - c
    upness = -mids[:, 1] / np.maximum(np.hypot(mids[:, 0], mids[:, 1]), 1e-12)
    start = int(np.argmax(upness))
    return np.roll(p, -start, axis=0)


def scale_points(points: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """Points in an image resized by ``scale`` (per axis if an array), pixel centres at integers.

    ``cv2.resize`` maps pixel centres as ``x' = (x + 0.5) · scale − 0.5``; a point that names a
    pixel centre in one image names the same place in the other.
    """
    return (points + 0.5) * scale - 0.5


def unscale_points(points: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """The inverse of :func:`scale_points`: ``x = (x' + 0.5) / scale − 0.5``."""
    return (points + 0.5) / scale - 0.5


def polygon_area(corners: np.ndarray) -> float:
    """Signed shoelace area; positive for TL, TR, BR, BL order in image coordinates (y down)."""
    x, y = corners[:, 0], corners[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    def orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def is_convex(corners: np.ndarray) -> bool:
    """True when the closed polygon TL→TR→BR→BL turns the same way at every corner."""
    e = np.roll(corners, -1, axis=0) - corners
    cross = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def fit_quad(contour: np.ndarray) -> np.ndarray:
    """Four-corner polygon (TL, TR, BR, BL) approximating a blob contour's convex hull.

    The hull is simplified with ``approxPolyDP`` at growing tolerances (1 … 8 % of its
    perimeter) until it has four vertices; a blob with rounded corners that never gives four
    falls back to its minimum-area rectangle.
    """
    hull = cv2.convexHull(contour)
    peri = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            return order_corners(approx.reshape(4, 2).astype(np.float64))
        if len(approx) < 4:
            break
    rect = cv2.boxPoints(cv2.minAreaRect(hull))
    return order_corners(rect.astype(np.float64))


def intersect_lines(p1: np.ndarray, d1: np.ndarray, p2: np.ndarray, d2: np.ndarray
                    ) -> np.ndarray | None:
    """Crossing of the lines ``p1 + t d1`` and ``p2 + s d2``, or None when they are parallel."""
    a = np.array([d1, -d2]).T
    if abs(np.linalg.det(a)) < 1e-9:
        return None
    t = np.linalg.solve(a, p2 - p1)
    return p1 + t[0] * d1


def validate_corners(
    corners_or_quad: Quad | np.ndarray | Any,
    *,
    image_size: tuple[int, int] | None = None,
    tolerance_px: float = 2.0,
    min_area_px: float = MIN_QUAD_AREA,
) -> np.ndarray:
    """Check user-given (or detected) corners and return them as ``float64`` (4, 2), TL, TR, BR, BL.

    Parameters
    ----------
    corners_or_quad:
        A :class:`Quad` or 4 (x, y) pairs in photo pixels. A convex quad given in another cyclic
        order or counter-clockwise is re-ordered with :func:`order_corners`.
    image_size:
        ``(width, height)`` of the photo in pixels; when given, every corner must lie inside the
        photo (pixel edges at -0.5 and W-0.5), give or take ``tolerance_px``.
    tolerance_px:
        How far outside the photo a corner may lie, in pixels (clicks on the very edge).
    min_area_px:
        Smallest accepted quad area in photo pixels².

    Raises
    ------
    InvalidCornersError
        Not 4 finite pairs, outside the photo, self-intersecting, not convex or too small.
    """
    c = as_corners(corners_or_quad)
    if not np.isfinite(c).all():
        raise InvalidCornersError("corners contain NaN or infinite values")
    if image_size is not None:
        w, h = image_size
        lo, hi_x, hi_y = -0.5 - tolerance_px, w - 0.5 + tolerance_px, h - 0.5 + tolerance_px
        bad = (c[:, 0] < lo) | (c[:, 0] > hi_x) | (c[:, 1] < lo) | (c[:, 1] > hi_y)
        if bad.any():
            names = ", ".join(n for n, b in zip(("TL", "TR", "BR", "BL"), bad, strict=True) if b)
            raise InvalidCornersError(
                f"corner(s) {names} lie outside the {w}x{h} photo; give corners inside the photo"
            )
    if _segments_cross(c[0], c[1], c[2], c[3]) or _segments_cross(c[1], c[2], c[3], c[0]):
        raise InvalidCornersError(
            "corners are self-intersecting (a bow-tie); give them in the order TL, TR, BR, BL"
        )
    if not is_convex(c):
        raise InvalidCornersError(
            "corners do not form a convex quadrilateral (three are collinear or one is inside)"
        )
    c = order_corners(c)
    area = polygon_area(c)
    if area < min_area_px:
        raise InvalidCornersError(
            f"the quadrilateral is too small ({area:.0f} px² < {min_area_px:.0f} px²)"
        )
    return c


def quad_size(corners: np.ndarray) -> tuple[float, float]:
    """Mean (width, height) of a TL, TR, BR, BL quad in pixels: mean of opposite side lengths."""
    tl, tr, br, bl = corners
    w = (np.hypot(*(tr - tl)) + np.hypot(*(br - bl))) / 2.0
    h = (np.hypot(*(bl - tl)) + np.hypot(*(br - tr))) / 2.0
    return float(w), float(h)


def rect_corners(width: float, height: float) -> np.ndarray:
    """Corners of a ``width``×``height`` pixel image (outer pixel edges), TL, TR, BR, BL."""
    return np.array(
        [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]],
        dtype=np.float64,
    )
