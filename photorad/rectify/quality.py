"""Capture-quality checks for a phone photo of a displayed image.

Each check gives a value with a unit and a status ``"pass"``, ``"warn"`` or ``"fail"``; the
report's overall status is the worst of them. The thresholds and why they are where they are:

``blur`` — Gaussian σ of the image's own border edge, in **original** pixels
    (10–90 % rise distance of the edge / 2.563, divided by the photo pixels per original pixel).
    Blur below 0.7 original px barely changes the image (the display's own pixel footprint is
    ~0.5 px); 0.7–1.5 px visibly softens speckle and small calcifications, which restoration can
    partly undo; above 1.5 px fine structure is lost. Pass ≤ 0.7, warn ≤ 1.5, fail above.
    When no image edge has enough contrast the value is ``None`` and the status ``warn``.
``glare`` — fraction of the image region with a clipped (≥ 250 of 255) colour channel. Clipped
    pixels hold no information at all; a few specular points are harmless. Pass ≤ 0.1 %,
    warn ≤ 2 %, fail above.
``exposure`` — 99th percentile of the region's luma in [0, 1]. Ultrasound is mostly dark, but its
    brightest tissue should reach the upper part of the range; below 0.25 the photo is so dark
    that quantisation and noise dominate. Pass ≥ 0.4, warn ≥ 0.25, fail below.
``keystone`` — angle between the camera axis and the screen normal, in degrees, from the quad's
    homography with an assumed phone focal length of 0.8 × the photo's long side (≈ 26 mm
    equivalent main camera, principal point at the centre). Resolution along the tilt falls as
    cos θ and LCD contrast/gamma shift with viewing angle. Pass ≤ 20°, warn ≤ 35°, fail above.
``edges`` — only for a :class:`Quad` from :func:`~photorad.rectify.detect.detect`: the number of
    image borders seen as clear straight steps onto the viewer background. A border as dark as the
    background (ultrasound far field) cannot be seen in the photo, and the corners there are
    placed at the last visible content. Pass with 4, warn otherwise (with the side named). Also
    warn when ``detect`` reports that the quad may be the whole lit screen rather than the image
    (``details["screen_edge_sides"]``: a thin dark band, then brighter surroundings, beyond two
    or more sides), or that a side seems to lie inside the image (``details["inner_sides"]``:
    the image's borders on either side run on past its corners), or that the quad takes in
    viewer background (``details["background_inside_sides"]``: as flat just inside two or more
    sides as outside the quad).
``resolution`` — photo pixels per original pixel along the image's worse axis. Sampling theory
    asks for ≥ 2 camera pixels per displayed pixel to resolve it (and to keep the pixel grid's
    moiré above the image band); below 1 the photo cannot hold the original's detail.
    Pass ≥ 2, warn ≥ 1, fail below. Without the original's size a nominal 512 px (the larger
    BUS-BRA sides are 300–570 px) is assumed and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from photorad.rectify.geometry import FOCAL_FRACTION, Quad, quad_size, validate_corners

#: (pass_if_at_most, warn_if_at_most) for "lower is better" checks; reversed for the others.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "blur": (0.7, 1.5),
    "glare": (0.001, 0.02),
    "exposure": (0.4, 0.25),
    "keystone": (20.0, 35.0),
    "resolution": (2.0, 1.0),
}
HIGHER_IS_BETTER = {"exposure", "resolution"}
#: Original size assumed when none is given (pixels, long side).
NOMINAL_ORIGINAL_SIDE = 512
#: A colour channel at or above this value counts as clipped.
CLIP_LEVEL = 250
#: Pixels sampled for the region statistics (strided, so clipped values stay exact).
REGION_SAMPLES = 400_000
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Check:
    """One capture-quality measurement."""

    value: float | None
    status: str
    unit: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        v = None if self.value is None else round(float(self.value), 5)
        d: dict[str, Any] = {"value": v, "status": self.status, "unit": self.unit}
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class QualityReport:
    """All checks for one photo; ``status`` is the worst check status."""

    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.checks:
            return "warn"
        return max((c.status for c in self.checks.values()), key=_RANK.__getitem__)

    def __getitem__(self, name: str) -> Check:
        return self.checks[name]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, **{k: c.to_dict() for k, c in self.checks.items()}}


def grade(name: str, value: float | None) -> str:
    """Status of ``value`` for check ``name`` under :data:`THRESHOLDS`."""
    if value is None or not np.isfinite(value):
        return "warn"
    ok, warn = THRESHOLDS[name]
    if name in HIGHER_IS_BETTER:
        return "pass" if value >= ok else ("warn" if value >= warn else "fail")
    return "pass" if value <= ok else ("warn" if value <= warn else "fail")


def keystone_angle(corners: np.ndarray, photo_size: tuple[int, int]) -> float:
    """Camera-axis-to-screen-normal angle in degrees, assuming a typical phone focal length."""
    from photorad.rectify.warp import homography

    w, h = photo_size
    f = FOCAL_FRACTION * max(w, h)
    k_inv = np.array([[1 / f, 0, -(w - 1) / 2 / f], [0, 1 / f, -(h - 1) / 2 / f], [0, 0, 1]])
    unit = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    m = k_inv @ homography(unit, corners)
    n = np.cross(m[:, 0], m[:, 1])
    n /= np.linalg.norm(n)
    return float(np.degrees(np.arccos(min(1.0, abs(n[2])))))


def _region_pixels(photo: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Strided RGB samples (N, 3) of the photo inside the quad (shrunk 2 % off the edges)."""
    h, w = photo.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x1, y1 = min(x1, w), min(y1, h)
    area = max((x1 - x0) * (y1 - y0), 1)
    k = max(1, int(np.sqrt(area / REGION_SAMPLES)))
    crop = photo[y0:y1:k, x0:x1:k]
    c = corners.mean(axis=0)
    inner = c + 0.98 * (corners - c)
    pts = np.round(((inner - [x0, y0]) / k) * 16).astype(np.int32)
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, pts, 1, cv2.LINE_8, shift=4)
    return crop[mask > 0]


def edge_blur_px(photo: np.ndarray, corners: np.ndarray, *, n_profiles: int = 32) -> float | None:
    """Median Gaussian σ (photo px) of the image border edge, or None without a usable edge."""
    from photorad.rectify.detect import _sample_grey

    centre = corners.mean(axis=0)
    half = max(8.0, 0.015 * max(quad_size(corners)))
    step = half / 48.0
    offs = np.arange(-half, half + step / 2, step)
    widths = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        e = b - a
        u = e / max(float(np.hypot(*e)), 1e-9)
        n = np.array([-u[1], u[0]])
        if np.dot((a + b) / 2 - centre, n) < 0:
            n = -n
        ts = np.linspace(0.1, 0.9, n_profiles)
        base = a[None, :] + ts[:, None] * e[None, :]
        prof = _sample_grey(
            photo, base[:, 0:1] + offs[None, :] * n[0], base[:, 1:2] + offs[None, :] * n[1]
        )
        q = len(offs) // 5
        inner = np.median(prof[:, :q], axis=1)
        outer = np.median(prof[:, -q:], axis=1)
        for p, hi, lo in zip(prof, inner, outer, strict=True):
            if hi - lo < 0.1:
                continue
            r = (p - lo) / (hi - lo)
            # Rise distance from 90 % (inside) to 10 % (outside), first crossings from the middle.
            mid = len(offs) // 2
            above = np.nonzero(r[: mid + 1] >= 0.9)[0]
            below = np.nonzero(r[mid:] <= 0.1)[0]
            if len(above) == 0 or len(below) == 0:
                continue
            widths.append(offs[mid + below[0]] - offs[above[-1]])
    if len(widths) < 8:
        return None
    return float(np.median(widths)) / 2.563


def quality(
    photo: np.ndarray,
    corners_or_quad: Quad | np.ndarray | Any,
    *,
    original_size: tuple[int, int] | None = None,
) -> QualityReport:
    """Capture-quality report for the displayed image ``corners_or_quad`` of ``photo``.

    Parameters
    ----------
    photo:
        ``uint8`` H×W×3 RGB photo.
    corners_or_quad:
        A :class:`Quad` or corners TL, TR, BR, BL in photo pixels.
    original_size:
        ``(width, height)`` of the original image in pixels, when known; otherwise a nominal
        :data:`NOMINAL_ORIGINAL_SIDE` px long side with the quad's aspect ratio is assumed.
    """
    photo = np.asarray(photo)
    h, w = photo.shape[:2]
    corners = validate_corners(corners_or_quad, image_size=(w, h))
    qw, qh = quad_size(corners)
    note = ""
    if original_size is None:
        s = NOMINAL_ORIGINAL_SIDE / max(qw, qh)
        original_size = (max(1, round(qw * s)), max(1, round(qh * s)))
        note = f"original size unknown; nominal {original_size[0]}x{original_size[1]} assumed"
    ow, oh = original_size
    # Use the shorter of the opposite sides: the worse-sampled part of the image decides.
    tl, tr, br, bl = corners
    res = min(
        min(np.hypot(*(tr - tl)), np.hypot(*(br - bl))) / ow,
        min(np.hypot(*(bl - tl)), np.hypot(*(br - tr))) / oh,
    )
    checks: dict[str, Check] = {}
    sigma_px = edge_blur_px(photo, corners)
    blur = None if sigma_px is None else sigma_px / max(res, 1e-9)
    checks["blur"] = Check(
        blur, grade("blur", blur), "original px (Gaussian σ)",
        "" if blur is not None else "no image edge with enough contrast to measure blur",
    )
    px = _region_pixels(photo, corners)
    if px.size == 0:
        px = photo.reshape(-1, photo.shape[-1]) if photo.ndim == 3 else photo.reshape(-1, 1)
    if px.ndim == 1:
        px = px[:, None]
    clipped = float(np.mean((px >= CLIP_LEVEL).any(axis=1)))
    checks["glare"] = Check(clipped, grade("glare", clipped), "fraction clipped")
    luma = (px[:, :3] @ np.array([0.299, 0.587, 0.114])[: px.shape[1]]) / 255.0
    if px.shape[1] == 1:
        luma = px[:, 0] / 255.0
    p99 = float(np.percentile(luma, 99))
    checks["exposure"] = Check(p99, grade("exposure", p99), "99th percentile luma")
    ks = keystone_angle(corners, (w, h))
    checks["keystone"] = Check(ks, grade("keystone", ks), "degrees")
    checks["resolution"] = Check(res, grade("resolution", res), "photo px per original px", note)
    edges = _edges_check(corners_or_quad)
    if edges is not None:
        checks["edges"] = edges
    return QualityReport(checks)


#: ``Quad.details`` keys of :func:`~photorad.rectify.detect.detect` that name sides the user
#: should check; any of them non-empty makes the ``edges`` check warn.
EDGE_WARNING_KEYS = ("edges_not_found", "screen_edge_sides", "inner_sides",
                     "background_inside_sides")


def edges_flagged(details: dict[str, Any]) -> bool:
    """Whether detection ``details`` make the quality report's ``edges`` check warn."""
    return any(details.get(k) for k in EDGE_WARNING_KEYS)


def _edges_check(quad: Any) -> Check | None:
    """Whether :func:`~photorad.rectify.detect.detect` saw all four image borders (None when the
    corners were not detected, e.g. given by hand)."""
    details = getattr(quad, "details", None) or {}
    if "edges_not_found" not in details:
        return None
    if not edges_flagged(details):
        return Check(4.0, "pass", "sides found")
    unseen = list(details["edges_not_found"])
    screen = list(details.get("screen_edge_sides", []))
    inner = list(details.get("inner_sides", []))
    background = list(details.get("background_inside_sides", []))
    notes = []
    if unseen:
        sides = " and ".join(unseen)
        notes.append(
            f"the image's {sides} edge was not found (it may be as dark as the viewer background, "
            "so the corners there are guessed from the last visible content): raise the window "
            "level or zoom so that the whole image edge is visible, or give the corners by hand"
        )
    if screen:
        sides = " and ".join(screen)
        notes.append(
            f"the detected area may be the whole screen rather than the displayed image (beyond "
            f"its {sides} edges lies a thin dark band and then something brighter, like a "
            "monitor's bezel and the room): check the corners, or give them by hand"
        )
    if inner:
        sides = " and ".join(inner)
        notes.append(
            f"the detected {sides} edge may lie inside the image (the image's borders on either "
            "side run on past its corners, e.g. a bright band ending above a dim part of the "
            "image): check the corners, raise the window level so that the whole image is "
            "clearly brighter than the background, or give the corners by hand"
        )
    if background:
        sides = " and ".join(background)
        notes.append(
            f"the detected area may take in viewer background or be the whole screen (just "
            f"inside its {sides} edges the photo is as flat as outside them, not image "
            "content): check the corners, or give them by hand"
        )
    return Check(float(4 - len(unseen)), "warn", "sides found", "; ".join(notes))
