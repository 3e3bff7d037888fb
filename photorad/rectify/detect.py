"""Find the displayed medical image (not the monitor) in a phone photo.

Medical viewers (PACS, ultrasound consoles) show the image on a near-black viewport inside a dark
bezel. :func:`detect` works in two passes:

1. **Coarse, at reduced resolution** (long side :data:`WORK_SIDE` px, area-averaged): the dark
   screen/viewport level is estimated from the darkest part of the photo; pixels clearly above it
   are "content". Content blobs are closed (ultrasound images contain black cysts and shadows) and
   every blob that is enclosed by the dark viewport — i.e. does not run off the photo — is fitted
   with a quadrilateral; the most rectangular, largest one wins.
2. **Sub-pixel, at full resolution**: along each edge of the coarse quad, intensity profiles are
   sampled across the edge from the full-resolution photo; the edge position on each profile is
   the peak of the derivative (parabola-interpolated). A robust total-least-squares line is fitted
   per edge (outliers from glare or dark image borders dropped) and adjacent lines are
   intersected to give the corners.

When nothing plausible is found, :class:`~photorad.errors.NoScreenFoundError` says why, in words a
person can act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from photorad.errors import ImageTooSmallError, NoScreenFoundError, UnsupportedImageError
from photorad.rectify.geometry import Quad, is_convex, order_corners, polygon_area, quad_size

log = logging.getLogger(__name__)

#: Long side of the working image for the coarse pass, in pixels.
WORK_SIDE = 800
#: Smallest photo side accepted, in pixels.
MIN_PHOTO_SIDE = 64
#: Smallest image area accepted, as a fraction of the photo area.
MIN_AREA_FRACTION = 0.01
#: Smallest acceptable fill of the fitted quad by the content blob (rectangularity).
MIN_RECTANGULARITY = 0.80
#: Profiles along an edge used by the sub-pixel refinement.
N_PROFILES = 48

#: Thresholds tried, as fractions of the way from the viewport level to the bright level.
THRESHOLD_FRACTIONS = (0.15, 0.3, 0.45)
#: Largest long/short side ratio of a displayed medical image (thin UI bars are not images).
MAX_ASPECT = 4.0
#: Smallest step (grey levels in [0, 1]) between image border and viewport for an edge sample.
MIN_EDGE_CONTRAST = 0.03
#: Half-length of the first refinement pass's profiles, in working-resolution pixels.
FIRST_SEARCH_WORK_PX = 6.0
#: Smallest fraction of edge profiles that must agree with the fitted sides.
MIN_SUPPORT = 0.3
#: Most candidates scored by edge support per photo.
MAX_CANDIDATES = 8

_SMOOTH = np.array([[0.25, 0.5, 0.25]], dtype=np.float32)


@dataclass(frozen=True)
class _Candidate:
    corners: np.ndarray  # working-resolution corners, TL, TR, BR, BL
    area: float
    fill: float
    touches: tuple[str, ...]


def _working_grey(photo: np.ndarray) -> tuple[np.ndarray, float]:
    """Area-averaged grey copy with long side ≈ WORK_SIDE, and its scale (work px / photo px).

    The reduction uses an integer factor k (OpenCV's fast box-filter path); the photo is cropped
    to a multiple of k at the right/bottom, which does not move the pixel grid.
    """
    h, w = photo.shape[:2]
    k = max(1, round(max(h, w) / WORK_SIDE))
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) if photo.ndim == 3 else photo
    if k > 1:
        hh, ww = h // k * k, w // k * k
        grey = cv2.resize(grey[:hh, :ww], (ww // k, hh // k), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32) / 255.0, 1.0 / k


def _check_photo(photo: np.ndarray) -> np.ndarray:
    a = np.asarray(photo)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise UnsupportedImageError(
            f"detect needs a uint8 H×W×3 RGB photo (photorad.io.load_photo), got "
            f"{a.dtype} {a.shape}"
        )
    if min(a.shape[:2]) < MIN_PHOTO_SIDE:
        raise ImageTooSmallError(
            f"photo is {a.shape[1]}x{a.shape[0]} px; at least {MIN_PHOTO_SIDE} px per side needed"
        )
    return a


def _fit_quad(contour: np.ndarray) -> np.ndarray | None:
    """Four-corner polygon approximating a blob's convex hull, or None."""
    hull = cv2.convexHull(contour)
    peri = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * peri, True)
        if len(approx) == 4:
            return order_corners(approx.reshape(4, 2).astype(np.float64))
        if len(approx) < 4:
            break
    # Fall back to the minimum-area rectangle (e.g. a blob with rounded corners).
    rect = cv2.boxPoints(cv2.minAreaRect(hull))
    return order_corners(rect.astype(np.float64))


def _blobs(smooth: np.ndarray, thr: float) -> list[_Candidate]:
    """Quad candidates from the blobs of ``smooth > thr`` (closed to bridge dark image parts)."""
    h, w = smooth.shape
    mask = (smooth > thr).astype(np.uint8)
    k = max(3, round(0.012 * max(h, w))) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    # RETR_CCOMP lists the outer boundary of every blob, also of blobs inside holes of others
    # (the image inside the dark viewport inside the bright room).
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    border = 2
    for cnt, hh in zip(contours, hier[0] if hier is not None else [], strict=False):
        if hh[3] != -1:
            continue  # a hole, not a blob
        # Convex-hull area: dark image parts open to the viewport (a black band at an image
        # edge, an anechoic mass) bite into the blob but not into its hull.
        area = float(cv2.contourArea(cv2.convexHull(cnt)))
        if area < MIN_AREA_FRACTION * h * w:
            continue
        x, y, bw, bh = cv2.boundingRect(cnt)
        touches = tuple(
            name
            for name, hit in (
                ("left", x <= border),
                ("top", y <= border),
                ("right", x + bw >= w - border),
                ("bottom", y + bh >= h - border),
            )
            if hit
        )
        quad = _fit_quad(cnt)
        if quad is None or not is_convex(quad):
            continue
        qarea = polygon_area(quad)
        if qarea <= 0:
            continue
        out.append(_Candidate(quad, area, min(area / qarea, qarea / area), touches))
    return out


def _candidates(grey: np.ndarray) -> tuple[list[_Candidate], dict[str, float]]:
    """Candidates over several thresholds between the viewport level and the bright level.

    One global threshold fails under glare (the glare halo bridges the image to the bezel and
    the room); a higher threshold then still separates the image, so several are tried and the
    most rectangular large blob wins later.
    """
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0)
    sample = smooth[::3, ::3]  # percentiles of a 1-in-9 subsample: same levels, 9× cheaper
    dark, bright = (float(v) for v in np.percentile(sample, [3, 97]))
    stats = {"dark_level": dark, "bright_level": bright}
    if bright - dark < 0.08:
        return [], stats
    stats["threshold"] = dark + max(0.05, 0.15 * (bright - dark))
    out: list[_Candidate] = []
    for frac in THRESHOLD_FRACTIONS:
        out += _blobs(smooth, dark + max(0.05, frac * (bright - dark)))
    # Texture: the viewport is flat (even when veiling glare or ambient light lifts it to the
    # image's grey level), while ultrasound speckle is not.
    tex = _local_std(grey)
    t_tex = _otsu(tex)
    stats["texture_threshold"] = t_tex
    if t_tex > 0:
        out += _blobs(tex, t_tex)
        out += _blobs(tex, 0.5 * t_tex)
    return out, stats


def _local_std(grey: np.ndarray, *, win: int = 7) -> np.ndarray:
    """Local standard deviation in a ``win``×``win`` window (after a light denoising blur)."""
    g = cv2.GaussianBlur(grey, (0, 0), 0.7)
    m = cv2.blur(g, (win, win))
    m2 = cv2.blur(g * g, (win, win))
    return np.sqrt(np.maximum(m2 - m * m, 0.0))


def _otsu(values: np.ndarray) -> float:
    """Otsu threshold of a non-negative float map (0 when it is flat)."""
    top = float(np.percentile(values[::3, ::3], 99.5))
    if top <= 1e-6:
        return 0.0
    u8 = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0 * top


def _sample_grey(photo: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear BT.601 grey values of the full-resolution photo at float coordinates."""
    mx = xs.astype(np.float32)
    my = ys.astype(np.float32)
    rgb = cv2.remap(photo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rgb = rgb.astype(np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0


def _fit_line(pts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust total-least-squares line through pts: (point, unit direction, inlier mask)."""
    keep = np.ones(len(pts), bool)
    for _ in range(4):
        p, wts = pts[keep], weights[keep]
        c = (p * wts[:, None]).sum(0) / wts.sum()
        d = p - c
        cov = (d * wts[:, None]).T @ d
        evals, evecs = np.linalg.eigh(cov)
        direction = evecs[:, 1]
        normal = evecs[:, 0]
        res = np.abs((pts - c) @ normal)
        mad = float(np.median(res[keep])) * 1.4826
        new_keep = res <= max(3.0 * mad, 0.5)
        if new_keep.sum() < 6 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return c, direction, keep


def _intersect(p1: np.ndarray, d1: np.ndarray, p2: np.ndarray, d2: np.ndarray) -> np.ndarray | None:
    a = np.array([d1, -d2]).T
    if abs(np.linalg.det(a)) < 1e-9:
        return None
    t = np.linalg.solve(a, p2 - p1)
    return p1 + t[0] * d1


def refine_corners(
    photo: np.ndarray, corners: np.ndarray, *, search_px: float, n_profiles: int = N_PROFILES
) -> tuple[np.ndarray, float]:
    """Sub-pixel corners from edge profiles at full resolution.

    Parameters
    ----------
    photo:
        Full-resolution ``uint8`` RGB photo.
    corners:
        Approximate corners TL, TR, BR, BL in photo pixels.
    search_px:
        Half-length of each profile across the edge, in photo pixels (≥ the coarse error).

    Returns
    -------
    (corners, support)
        Refined corners, and the fraction of profiles that found a clear edge and agree with
        the fitted line (0 … 1).
    """
    centre = corners.mean(axis=0)
    step = max(search_px / 24.0, 0.25)
    offs = np.arange(-search_px, search_px + step / 2, step)
    lines = []
    supports = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        e = b - a
        length = float(np.hypot(*e))
        u = e / max(length, 1e-9)
        n = np.array([-u[1], u[0]])
        if np.dot((a + b) / 2 - centre, n) < 0:
            n = -n  # outward normal
        # Stay clear of the corners, where the neighbouring edge would disturb the profile.
        ts = np.linspace(0.08, 0.92, n_profiles)
        base = a[None, :] + ts[:, None] * e[None, :]
        xs = base[:, 0:1] + offs[None, :] * n[0]
        ys = base[:, 1:2] + offs[None, :] * n[1]
        prof = _sample_grey(photo, xs, ys)
        prof = cv2.filter2D(prof, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
        deriv = np.gradient(prof, axis=1)  # inside (negative offs) → outside: bright → dark
        neg = -deriv
        k = np.argmax(neg, axis=1)
        inner = np.median(prof[:, : len(offs) // 4], axis=1)
        outer = np.median(prof[:, -len(offs) // 4 :], axis=1)
        contrast = inner - outer
        # Outside a displayed image lies the flat viewport; an "edge" inside image content has
        # texture on both sides.
        outer_std = np.std(prof[:, -len(offs) // 6 :], axis=1)
        peak = neg[np.arange(n_profiles), k]
        ok = (
            (contrast > MIN_EDGE_CONTRAST)
            & (outer_std < np.maximum(0.015, 0.3 * contrast))
            & (peak > 0)
            & (k > 0)
            & (k < len(offs) - 1)
        )
        # Parabola through the derivative peak for the sub-sample position.
        km = np.clip(k, 1, len(offs) - 2)
        y0 = neg[np.arange(n_profiles), km - 1]
        y1 = neg[np.arange(n_profiles), km]
        y2 = neg[np.arange(n_profiles), km + 1]
        denom = y0 - 2 * y1 + y2
        frac = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0)
        frac = np.clip(frac, -0.5, 0.5)
        pos = offs[km] + frac * step
        pts = base + pos[:, None] * n[None, :]
        if ok.sum() < 6:
            lines.append(None)
            supports.append(0.0)
            continue
        c, d, inl = _fit_line(pts[ok], np.maximum(contrast[ok], 1e-3))
        lines.append((c, d))
        # Support: profiles with a clear step within a fixed distance of the fitted line.
        res = np.abs((pts[ok] - c) @ np.array([-d[1], d[0]]))
        supports.append(float(np.sum(res <= 1.0 + 0.002 * length)) / n_profiles)
    refined = corners.copy()
    for i in range(4):
        prev_line, line = lines[(i - 1) % 4], lines[i]
        if prev_line is None or line is None:
            continue
        p = _intersect(prev_line[0], prev_line[1], line[0], line[1])
        if p is not None and np.hypot(*(p - corners[i])) <= 2.0 * search_px:
            refined[i] = p
    return refined, float(np.mean(supports))


def _aspect(corners: np.ndarray) -> float:
    w, h = quad_size(corners)
    return max(w, h) / max(min(w, h), 1e-9)


def _dedupe(cands: list[_Candidate], *, tol: float = 4.0) -> list[_Candidate]:
    """Drop candidates whose corners all lie within ``tol`` working px of an earlier one."""
    out: list[_Candidate] = []
    for c in cands:
        if all(np.abs(c.corners - o.corners).max() > tol for o in out):
            out.append(c)
    return out


def _describe_failure(cands: list[_Candidate], stats: dict[str, float]) -> str:
    if "threshold" not in stats:
        if stats["bright_level"] < 0.08:
            return "the photo is almost completely dark; is the screen switched on?"
        if stats["dark_level"] > 0.9:
            return "the photo is saturated (overexposed); lower the exposure or avoid glare"
        return (
            "the photo has no contrast between a dark screen and a displayed image; photograph "
            "the whole image with the dark viewer background around it"
        )
    cut = [c for c in cands if c.touches]
    if cut and not [c for c in cands if not c.touches]:
        best = max(cut, key=lambda c: c.area)
        sides = " and ".join(best.touches)
        return (
            f"the image is cut off at the {sides} edge of the photo; step back so that the "
            "whole image and some dark screen around it are visible, or give the corners by hand"
        )
    if cands:
        return (
            "screen edges not visible: no rectangular image area on a dark background was found "
            "(glare, a cluttered viewer or strong blur?); retake the photo or give the corners by "
            "hand"
        )
    return (
        "screen edges not visible: no bright image area surrounded by the dark viewer was found; "
        "photograph the whole displayed image, or give the corners by hand"
    )


def detect(photo: np.ndarray) -> Quad:
    """Find the displayed image area of a phone photo.

    Parameters
    ----------
    photo:
        ``uint8`` H×W×3 RGB photo as returned by :func:`photorad.io.load_photo`.

    Returns
    -------
    Quad
        Corners TL, TR, BR, BL (outer edges of the displayed image, photo pixels, sub-pixel),
        ``score`` in [0, 1] (rectangularity × edge support) and ``method`` ``"contour+edges"``
        (refined) or ``"contour"`` (coarse only).

    Raises
    ------
    NoScreenFoundError
        No plausible image quadrilateral, with the reason (dark photo, image cut off at an edge,
        screen edges not visible …).
    """
    photo = _check_photo(photo)
    h, w = photo.shape[:2]
    grey, s = _working_grey(photo)
    cands, stats = _candidates(grey)
    good = [
        c for c in cands
        if not c.touches and c.fill >= MIN_RECTANGULARITY and _aspect(c.corners) <= MAX_ASPECT
    ]
    if not good:
        raise NoScreenFoundError(_describe_failure(cands, stats))
    # Several thresholds and maps give overlapping candidates; the one whose edges are real —
    # sharp steps along the whole side, as the border of a displayed image is — wins.
    good = _dedupe(sorted(good, key=lambda c: -c.area))[:MAX_CANDIDATES]
    search = max(6.0, FIRST_SEARCH_WORK_PX / s)
    trials = []
    for cand in good:
        coarse = (cand.corners + 0.5) / s - 0.5
        refined, support = refine_corners(photo, coarse, search_px=search)
        size = (cand.area / good[0].area) ** 0.25
        trials.append((cand.fill * support * size, cand, coarse, refined, support))
    _, best, coarse, refined, support = max(trials, key=lambda t: t[0])
    if support < MIN_SUPPORT:
        raise NoScreenFoundError(
            "screen edges not visible: a candidate image area was found but its borders are not "
            "clear straight edges on a dark background (glare, blur, or an image that fades into "
            "the background?); retake the photo or give the corners by hand"
        )
    refined, support = refine_corners(photo, refined, search_px=max(3.0, 1.5 / s))
    method = "contour+edges"
    corners = refined if support >= MIN_SUPPORT else coarse
    if support < MIN_SUPPORT:
        method = "contour"
    if not is_convex(corners) or polygon_area(corners) < MIN_AREA_FRACTION * h * w:
        corners, method = coarse, "contour"
    score = float(np.clip(best.fill, 0, 1) * np.clip(0.5 + support, 0, 1))
    log.debug("detect: %s score %.3f support %.2f", method, score, support)
    return Quad(
        corners,
        score=score,
        method=method,
        details={"edge_support": round(support, 3), "rectangularity": round(best.fill, 3)},
    )
