"""Find the displayed medical image (not the monitor) in a phone photo.

Medical viewers (PACS, ultrasound consoles) show the image on a near-black viewport inside a dark
bezel. :func:`detect` works in two passes:

1. **Coarse, at reduced resolution** (long side :data:`WORK_SIDE` px, area-averaged): the dark
   screen/viewport level is estimated from the darkest part of the photo; pixels clearly above it
   are "content". Content blobs are closed (ultrasound images contain black cysts and shadows) and
   every blob that is enclosed by the dark viewport — i.e. does not run off the photo — is fitted
   with a quadrilateral. A side whose outside is clearly brighter than the viewport next to its
   neighbours lies inside the image (a dim far-field band) and is moved out to where the level
   falls to the viewport's (:func:`expand_sides`).
2. **Sub-pixel, at full resolution**: along each edge of the coarse quad, intensity profiles are
   sampled across the edge from the full-resolution photo; the edge position on each profile is
   the peak of the derivative (parabola-interpolated). A robust total-least-squares line is fitted
   per edge (outliers from glare or dark image borders dropped) and adjacent lines are
   intersected to give the corners; the best-supported candidate wins. A side without a clear
   step that the dim-band expansion had moved out is put back on the blob's side if it is found
   there. A single side still without a clear step gets a second, relaxed outward search (and
   failing that a line-integrated sweep along its two neighbouring sides) that is kept only if
   it ends on a real edge; failing both, a sweep along lines through the side's vanishing point
   (fixed by the three found sides and a typical phone camera) moves it to a faint border as a
   better guess that stays reported as not found (so do two unfound sides). A found side whose
   outside is darker than the viewport beside the image is taken for the bezel's edge beyond a
   strip of viewport or toolbar and moved in to the image's own border (:func:`_trim_side`). A side that remains without a clear step is reported in
   ``Quad.details["edges_not_found"]`` (its border is probably as dark as the viewport, so the
   corners there sit at the last visible content) and caps the score at 0.5.

A quad beyond two or more of whose sides lies a thin dark band and then something brighter
(a monitor's bezel and the room, :func:`_bezel_sides`) may be the whole lit screen rather than the
image: it is reported in ``Quad.details["screen_edge_sides"]`` and caps the score at 0.5 too.
Such a quad, or one with viewer background just inside two or more sides, is searched again
(:func:`detect`): only blobs inside it count, with levels taken inside it, and a blob that
reaches one of its flagged sides runs off it. An answer that is neither screen-like nor holds
background, with at most two sides unfound, replaces it (``details["inside_of"]`` keeps it).
When every blob holding the image runs off the photo (the image merged with a toolbar that does),
the blobs are opened with a kernel wider than such strips and the freed blobs are tried as a
fallback, kept only when all four sides are clear edges.

A side past whose corners the image's own side borders run on is a boundary inside the image
(a bright band above a far field as dark as the viewport): it is moved out to where those
borders end (:func:`_extend_inner_side`) and reported as not found; when they run on to the
photo's edge it stays, reported in ``Quad.details["inner_sides"]``. An unfound bottom is moved
out to where the faint content beyond it ends (:func:`_content_end`); one whose corners the
image's found side borders do not reach is first searched for inward, and moved in to where the
content ends. Flat background just inside two or more sides is reported in
``Quad.details["background_inside_sides"]``. Both cap the score at 0.5.

When no candidate has clear edges at all, every candidate is measured again with edge profiles
averaged along the side and low-passed across it at three blur scales (defocus, camera shake); such
a quad is kept only with all four sides found and no side like the bezel (``details["blur_px"]``
gives the scale used, 0 for the ordinary measure).

**Second opinion.** A geometric quad that is flagged (any of the above caps its score at 0.5)
or no geometric quad at all is settled by a learned segmenter (:mod:`photorad.rectify.segment`,
a small U-Net trained on simulated photos): it reads the whole screen layout from the photo
reduced to a 192-pixel long side and gives the image area as a quad, whose sides are then
measured at full resolution by the same edge profiles (a side without a clear step keeps the
segmenter's line and is reported as not found). That quad is taken, with its own flags
(:func:`_second_opinion`); without the shipped weights, or when the segmenter is not confident,
the geometric answer stands.

When nothing plausible is found, :class:`~photorad.errors.NoScreenFoundError` says why, in words a
person can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from photorad.errors import (
    ImageTooSmallError,
    InvalidCornersError,
    NoScreenFoundError,
    UnsupportedImageError,
)
from photorad.rectify.geometry import (
    FOCAL_FRACTION,
    Quad,
    fit_quad,
    intersect_lines,
    is_convex,
    polygon_area,
    quad_size,
    scale_points,
    unscale_points,
    validate_corners,
)
from photorad.rectify.segment import quad_from_prob

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
#: The same for the relaxed retry of a side not found (a dim far-field band's border).
MIN_DIM_EDGE_CONTRAST = 0.012
#: Half-length of the first refinement pass's profiles, in working-resolution pixels.
FIRST_SEARCH_WORK_PX = 6.0
#: Smallest fraction of edge profiles that must agree with the fitted sides.
MIN_SUPPORT = 0.3
#: Names of the sides in corner order (TL-TR, TR-BR, BR-BL, BL-TL).
SIDE_NAMES = ("top", "right", "bottom", "left")
#: Smallest fraction of a side's profiles on its fitted line for the side to count as found.
MIN_SIDE_SUPPORT = 0.5
#: Highest score of a quad with a side that was not found.
UNSEEN_SIDE_SCORE = 0.5
#: Most candidates scored by edge support per photo.
MAX_CANDIDATES = 8
#: Side of the square opening that splits a blob running off the photo into the image and the
#: thin UI strips merged with it, as a fraction of the working image's long side.
SPLIT_FRACTION = 0.04
#: How much wider the first edge search around such a split blob's quad is.
SPLIT_SEARCH_FACTOR = 4.0
#: Unfound sides allowed on a quad split off a blob that runs off the photo (it is then flagged).
#: None was allowed before; one raised the simulated hard mean Jaccard by 0.0065 / 0.0128 on seeds
#: 0 / 1 (5 photos answered instead of refused, one of them a flagged bad quad), typical unchanged.
SPLIT_MAX_UNSEEN = 1

_SMOOTH = np.array([[0.25, 0.5, 0.25]], dtype=np.float32)
#: Blur scales (σ of the matched low-pass, working px) tried by the fallback for photos whose
#: borders the sharp measure cannot place (:func:`_blur_pass`): defocus and camera shake spread a
#: border over several pixels, and the sharp measure's 3-tap derivative then peaks on noise.
BLUR_SCALES_WORK_PX = (0.75, 1.5, 3.0)
#: Smallest side support for a side of a blurred photo's quad to count as found: the blurred
#: measure averages and low-passes, so a bright/dim boundary inside the image can line up over
#: half of a side; weaker evidence than this is reported as not found.
BLUR_MIN_SIDE_SUPPORT = 0.7
#: Found sides needed for a quad from the blurred-photo fallback: all four. It runs where the
#: first pass saw no clear edges at all, and with a side guessed there the quad was mostly wrong
#: on simulated hard photos (a UI panel, the lit screen, half the image).
BLUR_MIN_FOUND_SIDES = 4
#: How much wider the blurred-photo fallback's wide first search is.
BLUR_WIDE_SEARCH_FACTOR = 4.0
#: Parallel profiles averaged into one by the blurred-photo measure (:func:`_blur_profiles`).
BLUR_TANGENT_LINES = 5
#: Reach of the blurred-photo measure's profiles on either side of the edge, in blur scales.
BLUR_REACH = 4.0


# The second search inside a screen-like quad (:func:`detect`): the most sides its answer may
# leave unfound, and the width of the rim along the first quad's flagged sides that its blobs
# may not reach (working px).
INSIDE_MAX_UNSEEN = 2
INSIDE_RIM_PX = 5

@dataclass(frozen=True)
class _Region:
    """Where a second search looks for blobs (working resolution, 0/1 masks): ``mask`` the
    area, ``rim`` the part of its border that a blob may not reach."""

    mask: np.ndarray
    rim: np.ndarray


@dataclass(frozen=True)
class _Candidate:
    corners: np.ndarray  # working-resolution corners, TL, TR, BR, BL
    area: float
    fill: float
    touches: tuple[str, ...]
    split: bool = False  # freed from a blob running off the photo by :data:`SPLIT_FRACTION`


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


def _blobs(smooth: np.ndarray, thr: float, *, masks: list[np.ndarray] | None = None,
           within: _Region | None = None) -> list[_Candidate]:
    """Quad candidates from the blobs of ``smooth > thr`` (closed to bridge dark image parts).

    When a blob runs off the photo and ``masks`` is given, the closed mask is appended to it for
    :func:`_split_candidates`. ``within`` limits the blobs to a region; a blob that reaches its
    rim runs off it (:func:`_mask_candidates`).
    """
    h, w = smooth.shape
    mask = (smooth > thr).astype(np.uint8)
    k = max(3, round(0.012 * max(h, w))) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    if within is not None:
        mask &= within.mask
    out = _mask_candidates(mask, within=within)
    if masks is not None and any(c.touches for c in out):
        masks.append(mask)
    return out


def _split_candidates(masks: list[np.ndarray], *, within: _Region | None = None
                      ) -> list[_Candidate]:
    """Candidates freed from blobs that run off the photo by opening their masks.

    A blob that runs off the photo may be the image merged with a UI strip (a toolbar or the
    lit viewport edge along the bezel) that runs off the photo; such strips are thin, so the
    mask is opened with a square wider than they are (:data:`SPLIT_FRACTION`) and the blobs
    that this frees from the photo's edge are returned (marked ``split``).
    """
    out: list[_Candidate] = []
    for mask in masks:
        ks = max(5, round(SPLIT_FRACTION * max(mask.shape)))
        opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN,
                                  cv2.getStructuringElement(cv2.MORPH_RECT, (ks, ks)))
        out += [replace(c, split=True) for c in _mask_candidates(opened, within=within)
                if not c.touches]
    return out


def _mask_candidates(mask: np.ndarray, *, within: _Region | None = None
                     ) -> list[_Candidate]:
    """One candidate per blob of a binary mask (large enough, with a convex quad fit).

    A blob that reaches the rim of the ``within`` region (when given) runs off it, as one that
    reaches the photo's edge runs off the photo: its ``touches`` lists ``"region"``.
    """
    h, w = mask.shape
    rim = None if within is None else within.rim
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
        if rim is not None and rim[cnt[:, 0, 1], cnt[:, 0, 0]].any():
            touches += ("region",)
        quad = fit_quad(cnt)
        if quad is None or not is_convex(quad):
            continue
        qarea = polygon_area(quad)
        if qarea <= 0:
            continue
        out.append(_Candidate(quad, area, min(area / qarea, qarea / area), touches))
    return out


def _candidates(
    smooth: np.ndarray, tex: np.ndarray, *, masks: list[np.ndarray] | None = None,
    within: _Region | None = None,
) -> tuple[list[_Candidate], dict[str, float]]:
    """Candidates over several thresholds between the viewport level and the bright level.

    One global threshold fails under glare (the glare halo bridges the image to the bezel and
    the room); a higher threshold then still separates the image, so several are tried and the
    most rectangular large blob wins later. ``smooth`` is the working grey image blurred by
    σ = 1 px, ``tex`` its :func:`_local_std`. The closed masks with a blob that runs off the
    photo are appended to ``masks`` (for :func:`_split_candidates`). With ``within``, levels
    and blobs are taken inside that region only.
    """
    # Percentiles of a 1-in-9 subsample: same levels, 9× cheaper.
    sample = smooth[::3, ::3] if within is None else smooth[::3, ::3][within.mask[::3, ::3] > 0]
    dark, bright = (float(v) for v in np.percentile(sample, [3, 97]))
    stats = {"dark_level": dark, "bright_level": bright}
    if bright - dark < 0.08:
        return [], stats
    stats["threshold"] = dark + max(0.05, 0.15 * (bright - dark))
    out: list[_Candidate] = []
    for frac in THRESHOLD_FRACTIONS:
        out += _blobs(smooth, dark + max(0.05, frac * (bright - dark)), masks=masks,
                      within=within)
    # Texture: the viewport is flat (even when veiling glare or ambient light lifts it to the
    # image's grey level), while ultrasound speckle is not.
    t_tex = _otsu(tex, within=None if within is None else within.mask)
    stats["texture_threshold"] = t_tex
    if t_tex > 0:
        out += _blobs(tex, t_tex, masks=masks, within=within)
        out += _blobs(tex, 0.5 * t_tex, masks=masks, within=within)
    return out, stats


def _local_std(grey: np.ndarray, *, win: int = 7) -> np.ndarray:
    """Local standard deviation in a ``win``×``win`` window (after a light denoising blur)."""
    g = cv2.GaussianBlur(grey, (0, 0), 0.7)
    m = cv2.blur(g, (win, win))
    m2 = cv2.blur(g * g, (win, win))
    return np.sqrt(np.maximum(m2 - m * m, 0.0))


def _otsu(values: np.ndarray, *, within: np.ndarray | None = None) -> float:
    """Otsu threshold of a non-negative float map (0 when it is flat), inside ``within``."""
    if within is not None:
        values = values[within > 0].reshape(-1, 1)
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


def refine_corners(
    photo: np.ndarray, corners: np.ndarray, *, search_px: float, n_profiles: int = N_PROFILES
) -> tuple[np.ndarray, float]:
    """Sub-pixel corners from edge profiles at full resolution.

    See :func:`_refine` (which also returns per-side figures) for how.

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
    refined, sides = _refine(photo, corners, search_px=search_px, n_profiles=n_profiles)
    return refined, float(np.mean([sd.support for sd in sides]))


@dataclass(frozen=True)
class _Side:
    support: float  # fraction of profiles with a clear step on the fitted line
    contrast: float  # median inside − outside step of the profiles with a clear step


def _blur_profiles(
    photo: np.ndarray, base: np.ndarray, u: np.ndarray, n: np.ndarray, offs: np.ndarray,
    *, blur_px: float, spacing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Profiles across a side for a blurred photo: (smoothed profiles, unsmoothed profiles).

    Each profile is the mean of :data:`BLUR_TANGENT_LINES` parallel profiles spread along the
    side (up to ±0.4 × the profile spacing, at most ±``blur_px``), which averages camera noise
    without mixing in distant parts of a bent side; the smoothed profiles are then low-passed
    across the side with a Gaussian of σ = ``blur_px``: a matched filter for a border blurred
    about that much, whose derivative peak then stands above the noise.
    """
    half = min(0.4 * spacing, blur_px)
    tan = np.linspace(-half, half, BLUR_TANGENT_LINES)
    pts = base[:, None, :] + tan[None, :, None] * u[None, None, :]  # (P, T, 2)
    xs = pts[..., 0:1] + offs[None, None, :] * n[0]
    ys = pts[..., 1:2] + offs[None, None, :] * n[1]
    p, t = pts.shape[:2]
    raw = _sample_grey(photo, xs.reshape(p * t, -1), ys.reshape(p * t, -1))
    raw = raw.reshape(p, t, -1).mean(axis=1)
    sig = blur_px / float(offs[1] - offs[0])
    ksize = 2 * int(np.ceil(3.0 * sig)) + 1
    g = cv2.getGaussianKernel(ksize, sig).astype(np.float32).reshape(1, -1)
    smooth = cv2.filter2D(raw, -1, g, borderType=cv2.BORDER_REPLICATE)
    return smooth, raw


def _refine(
    photo: np.ndarray, corners: np.ndarray, *, search_px: float, n_profiles: int = N_PROFILES,
    min_contrast: float = MIN_EDGE_CONTRAST, blur_px: float = 0.0,
) -> tuple[np.ndarray, list[_Side]]:
    """:func:`refine_corners` with per-side support and contrast (sides TL-TR, TR-BR, BR-BL, BL-TL).

    With ``blur_px`` > 0 (the fallback for blurred photos, :func:`_blur_pass`) each profile
    reaches at least :data:`BLUR_REACH` × ``blur_px`` out, is averaged along the side and
    low-passed at that scale (:func:`_blur_profiles`), and the fitted line accepts profiles up to
    ``blur_px`` / 2 farther away (a blurred border's derivative peak is broad). ``blur_px`` = 0
    is the ordinary, sharp measure.
    """
    lines, supports = _refine_lines(photo, corners, search_px=search_px, n_profiles=n_profiles,
                                    min_contrast=min_contrast, blur_px=blur_px)
    refined = corners.copy()
    for i in range(4):
        prev_line, line = lines[(i - 1) % 4], lines[i]
        if prev_line is None or line is None:
            continue
        p = intersect_lines(prev_line[0], prev_line[1], line[0], line[1])
        if p is not None and np.hypot(*(p - corners[i])) <= 2.0 * search_px:
            refined[i] = p
    return refined, supports


def _refine_lines(
    photo: np.ndarray, corners: np.ndarray, *, search_px: float, n_profiles: int = N_PROFILES,
    min_contrast: float = MIN_EDGE_CONTRAST, blur_px: float = 0.0,
) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], list[_Side]]:
    """The edge lines :func:`_refine` fits, one per side (a point and a unit direction, or None
    when fewer than six profiles found a step), with each side's support and contrast."""
    centre = corners.mean(axis=0)
    if blur_px > 0:
        search_px = max(search_px, BLUR_REACH * blur_px)
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
        if blur_px > 0:
            prof, raw = _blur_profiles(photo, base, u, n, offs, blur_px=blur_px,
                                       spacing=0.84 * length / max(n_profiles - 1, 1))
        else:
            xs = base[:, 0:1] + offs[None, :] * n[0]
            ys = base[:, 1:2] + offs[None, :] * n[1]
            prof = _sample_grey(photo, xs, ys)
            prof = cv2.filter2D(prof, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
            raw = prof
        deriv = np.gradient(prof, axis=1)  # inside (negative offs) → outside: bright → dark
        neg = -deriv
        k = np.argmax(neg, axis=1)
        inner = np.median(prof[:, : len(offs) // 4], axis=1)
        outer = np.median(prof[:, -len(offs) // 4 :], axis=1)
        contrast = inner - outer
        # Outside a displayed image lies the flat viewport; an "edge" inside image content has
        # texture on both sides.
        # (For a blurred photo on the tangentially averaged but not low-passed profile: the
        # low-pass would make texture look flat.)
        outer_std = np.std(raw[:, -len(offs) // 6 :], axis=1)
        peak = neg[np.arange(n_profiles), k]
        ok = (
            (contrast > min_contrast)
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
            supports.append(_Side(0.0, float(np.median(contrast))))
            continue
        c, d, inl = _fit_line(pts[ok], np.maximum(contrast[ok], 1e-3))
        lines.append((c, d))
        # Support: profiles with a clear step within a fixed distance of the fitted line.
        res = np.abs((pts[ok] - c) @ np.array([-d[1], d[0]]))
        tol = 1.0 + 0.002 * length + 0.5 * blur_px
        supports.append(_Side(float(np.sum(res <= tol)) / n_profiles,
                              float(np.median(contrast[ok]))))
    return lines, supports


#: Smallest excess (grey levels) of the level just outside a side over the viewport level next to
#: the neighbouring sides that marks the side as lying inside the image (a dim image band).
MIN_SIDE_EXCESS = 0.015
#: Farthest a side is moved outwards, as a fraction of the neighbouring sides' mean length.
MAX_EXPAND_FRACTION = 0.75
#: The same for the relaxed retry of the one side not found: the blob may hold only the bright
#: upper part of the image (the retry is kept only when it ends on a real straight edge).
MAX_RETRY_EXPAND_FRACTION = 2.5
#: Profiles along the swept line of :func:`_sweep_side`.
SWEEP_PROFILES = 32
#: Smallest fraction of the swept profiles with a border candidate on the chosen line.
MIN_SWEEP_SUPPORT = 0.4
#: Distance (working px) of a candidate from a line that counts as on it.
SWEEP_TOL = 1.5
#: Most border candidates considered by the sweep (the strongest steps).
MAX_SWEEP_CANDIDATES = 160
#: Smallest share of a sweep candidate's inside excess over the viewport that its step makes up.
SWEEP_STEP_SHARE = 0.5
#: Largest difference of the level beyond a sweep candidate from the viewport beside the image,
#: as a fraction of its step (at least 0.008).
SWEEP_OUTSIDE_TOL = 0.3
#: Deepest inward search of :func:`_trim_side`, as a fraction of the neighbouring sides' length.
TRIM_FRACTION = 0.25
#: Smallest drop of a side's outside level below the viewport next to its neighbours for the
#: side to be taken for the bezel's edge (:func:`_trim_side`).
MIN_BEZEL_STEP = 0.015
#: Largest median difference between the strip a trimmed side crosses and the level beside the
#: image at the same distance from the bezel (outside the neighbouring sides).
MAX_STRIP_DIFF = 0.08
#: Smallest ratio of local texture (speckle) between the old and the new side to the texture of
#: the viewport beyond the new side.
MIN_TEXTURE_RATIO = 1.0
#: The same when the crossing is a sharp step (see :func:`_step_sharpness`) of about the band's
#: excess: ``SHARP_STEP_RANGE`` bounds step / excess.
MIN_SHARP_TEXTURE_RATIO = 0.8
SHARP_STEP_RANGE = (0.45, 1.5)
#: Smallest rise of the level from just outside a side to 5–10 % of the quad's size outside it
#: for the side to look like the monitor's bezel with the room beyond (:func:`_bezel_sides`).
#: On the evaluation's simulated photos the second-largest rise was ≤ 0.04 on every correct
#: quad and ≥ 0.066 on every quad that was the whole viewport.
MIN_BEZEL_RISE = 0.055
#: Bezel-like sides from which a quad is reported as possibly the whole screen.
MIN_BEZEL_SIDES = 2
#: Smallest fraction of outward profiles that must reach the viewport for a side to be moved
#: (glare spots or overlay text over the border block some of them).
MIN_REACH_FRACTION = 0.5
#: Distances (working px) outside a side where its outside level is measured: far enough that
#: blur and veiling glare from bright image content right at the border have faded.
OUTSIDE_OFFSETS = (5.0, 10.0)


def _sample_map(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 working map (replicated borders)."""
    return cv2.remap(img, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _outward_normals(corners: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(start corner, unit direction, outward unit normal) of the four sides."""
    centre = corners.mean(axis=0)
    out = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        u = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
        n = np.array([-u[1], u[0]])
        if np.dot((a + b) / 2 - centre, n) < 0:
            n = -n
        out.append((a, u, n))
    return out


def _end_levels(smooth: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(4, 2) medians of ``smooth`` just outside each side near its start and its end corner.

    The band lies :data:`OUTSIDE_OFFSETS` working px outside the side, along 8–22 % (start) and
    78–92 % (end) of its length. One bilinear lookup for all eight bands.
    """
    near = np.linspace(0.08, 0.22, 6)
    ts = np.concatenate([near, 1.0 - near])
    offs = np.arange(OUTSIDE_OFFSETS[0], OUTSIDE_OFFSETS[1] + 0.5, 1.0)
    xs, ys = [], []
    for i, (a, _, n) in enumerate(_outward_normals(corners)):
        b = corners[(i + 1) % 4]
        base = a[None, :] + ts[:, None] * (b - a)[None, :]
        xs.append(base[:, 0:1] + offs[None, :] * n[0])
        ys.append(base[:, 1:2] + offs[None, :] * n[1])
    v = _sample_map(smooth, np.concatenate(xs), np.concatenate(ys))
    v = v.reshape(4, 2, len(near) * len(offs))
    return np.median(v, axis=2)


def _line_of(corners: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = corners[side], corners[(side + 1) % 4]
    return a, (b - a) / max(float(np.hypot(*(b - a))), 1e-9)


def _replace_side(corners: np.ndarray, side: int, c: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Corners with ``side`` moved onto the line (point ``c``, direction ``d``).

    The side's two corners become the new line's intersections with the neighbouring sides;
    ``None`` when the line is parallel to one of them.
    """
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    pa, da = _line_of(corners, prev_side)
    pb, db = _line_of(corners, next_side)
    p1, p2 = intersect_lines(pa, da, c, d), intersect_lines(pb, db, c, d)
    if p1 is None or p2 is None:
        return None
    new = corners.copy()
    new[side], new[next_side] = p1, p2
    return new


def _expand_side(
    smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray, side: int, *,
    relaxed: bool = False, levels: np.ndarray | None = None,
) -> np.ndarray | None:
    """Move ``side`` outwards when it lies inside the image rather than on the viewport.

    Ultrasound images are often dim towards one border (depth attenuation): a brightness blob
    then ends at the bright/dim transition inside the image. Such a side is recognised by the
    level just outside it being clearly brighter than the viewport just outside the two
    neighbouring sides (near the shared corners, where display and lighting gradients are
    small); the true border is then the first place along each outward profile where the level
    falls to the viewport's (for good) — the dim band's own step. Returns new working corners or
    ``None`` (side kept).

    ``relaxed`` (used only when the three other sides are known to be real edges, and the result
    is accepted only if the moved side then shows a real edge) also moves sides that are inside
    the image at one end only (a blob cut diagonally through a dim corner).
    """
    h, w = smooth.shape
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    if levels is None:
        levels = _end_levels(smooth, corners)
    own_a, own_b = levels[side]
    vp_a, vp_b = levels[prev_side, 1], levels[next_side, 0]
    # Both ends must be inside: a side that touches the viewport at one end is not moved.
    # Both ends must be inside: a side that meets the viewport at one end is left alone (a
    # diagonal cut through a dim corner is not handled; moving such sides caused more harm than
    # good on simulated photos).
    excess = (max if relaxed else min)(own_a - vp_a, own_b - vp_b)
    log.debug("expand side %d: excess %.4f / %.4f", side, own_a - vp_a, own_b - vp_b)
    if excess < MIN_SIDE_EXCESS:
        return None
    a, u, n = _outward_normals(corners)[side]
    b = corners[(side + 1) % 4]
    reach = (MAX_RETRY_EXPAND_FRACTION if relaxed else MAX_EXPAND_FRACTION) * 0.5 * (
        float(np.hypot(*(corners[side] - corners[prev_side])))
        + float(np.hypot(*(corners[(side + 2) % 4] - b)))
    )
    steps = np.arange(0.0, max(reach, 4.0), 1.0)
    ts = np.linspace(0.1, 0.9, 24)
    base = a[None, :] + ts[:, None] * (b - a)[None, :]
    xs = base[:, 0:1] + steps[None, :] * n[0]
    ys = base[:, 1:2] + steps[None, :] * n[1]
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    prof = _sample_map(smooth, xs, ys)
    tprof = _sample_map(tex, xs, ys)
    # Viewport level along the side (linear between the two corners) and the level halfway
    # between it and the dim band: the border is where the profile drops below it for good.
    vp = vp_a + ts * (vp_b - vp_a)
    thr = vp + 0.5 * excess
    below = (prof < thr[:, None]) & inside
    hold = 4  # working px the profile must stay at the viewport level (not a dark speckle)
    run = np.ones_like(below)
    for k in range(hold):
        run[:, : len(steps) - k] &= below[:, k:]
        run[:, len(steps) - k :] = False
    # First sample of each profile from which it stays at the viewport level (-1: none).
    first = np.where(run.any(axis=1), np.argmax(run, axis=1), -1)
    found = first > 0
    at_vp = (first == 0) & relaxed  # already on the viewport here (relaxed mode only)
    pts = [base[i] for i in np.flatnonzero(at_vp)]
    rows = np.flatnonzero(found)
    j = first[rows]
    # Sub-pixel: linear interpolation of the threshold crossing before sample j.
    p0, p1 = prof[rows, j - 1], prof[rows, j]
    f = np.clip((p0 - thr[rows]) / np.maximum(p0 - p1, 1e-6), 0.0, 1.0)
    pts += list(base[rows] + (steps[j - 1] + f)[:, None] * n[None, :])
    wts = [1.0] * len(pts)
    # Per-profile statistics of what was crossed and what lies beyond, as masked medians.
    k = np.arange(len(steps))[None, :]
    jj = j[:, None]

    def masked_median(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.nanmedian(np.where(mask, a, np.nan), axis=1)

    t_in = list(masked_median(tprof[rows], k < jj))
    t_out = list(masked_median(tprof[rows], (k >= jj) & (k < jj + 3 * hold)))
    long = j >= 4
    rise = list(
        masked_median(prof[rows[long]], (k >= jj[long] // 2) & (k < jj[long]))
        - masked_median(prof[rows[long]], k < jj[long] // 2)
    ) if long.any() else []
    sharp = _step_sharpness(prof[rows], j, width=hold) / excess if len(rows) else 0.0
    log.debug("expand side %d: %d/%d profiles reach the viewport, sharpness %.2f", side,
              len(pts), len(ts), sharp)
    if len(pts) < MIN_REACH_FRACTION * len(ts):
        return None
    # What was crossed must be image (speckle), not more flat viewport: a side already on the
    # border would otherwise walk on to the bezel or the UI chrome.
    log.debug("expand side %d: texture %.4f crossed, %.4f beyond", side, np.median(t_in),
              np.median(t_out))
    # Camera noise can make a dim band's speckle as "flat" as the viewport at this scale; a
    # sharp drop of about the band's excess right at the crossing (its border, not a lighting
    # gradient across the viewport, nor a step onto the darker bezel) then vouches for it.
    if t_in:
        ratio = float(np.median(t_in) / max(float(np.median(t_out)), 1e-9))
        sharp_ok = SHARP_STEP_RANGE[0] <= sharp <= SHARP_STEP_RANGE[1]
        if ratio < MIN_TEXTURE_RATIO and not (sharp_ok and ratio >= MIN_SHARP_TEXTURE_RATIO):
            return None
    # A dim image band fades (or stays level) towards its border; getting brighter on the way
    # out means the walk crossed the viewport into UI chrome (toolbar, side panel).
    if rise and np.median(rise) > 0.5 * excess:
        log.debug("expand side %d: rise %.4f > half excess %.4f", side, np.median(rise), excess)
        return None
    c, d, keep = _fit_line(np.array(pts), np.array(wts))
    if keep.sum() < 0.4 * len(ts):
        log.debug("expand side %d: line fits %d/%d profiles only", side, keep.sum(), len(ts))
        return None
    new = _replace_side(corners, side, c, d)
    if new is None:
        return None
    p1, p2 = new[side], new[next_side]
    moved = (max if relaxed else min)(np.dot(p1 - corners[side], n), np.dot(p2 - b, n))
    if moved < 1.0 or not is_convex(new):
        log.debug("expand side %d: moved %.1f px, convex %s", side, moved, is_convex(new))
        return None
    if np.any(new < -0.5) or np.any(new[:, 0] > w - 0.5) or np.any(new[:, 1] > h - 0.5):
        log.debug("expand side %d: leaves the photo", side)
        return None
    log.debug("expand side %d: moved by %.1f px", side, moved)
    return new


def _step_sharpness(prof: np.ndarray, j: np.ndarray, *, width: int) -> float:
    """Median step ``mean(prof[j-width:j]) - mean(prof[j:j+width])`` over the rows of ``prof``.

    A displayed image's border is a sharp step (a few pixels of camera blur), a lighting
    gradient across the viewport is not: the level drop right at the crossing tells them apart.
    """
    n = prof.shape[1]
    cs = np.concatenate([np.zeros((len(prof), 1), prof.dtype), np.cumsum(prof, axis=1)], axis=1)
    r = np.arange(len(prof))
    lo, hi = np.clip(j - width, 0, n), np.clip(j + width, 0, n)
    before = (cs[r, j] - cs[r, lo]) / np.maximum(j - lo, 1)
    after = (cs[r, hi] - cs[r, j]) / np.maximum(hi - j, 1)
    return float(np.median(before - after))


def expand_sides(
    smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray, *, rounds: int = 2
) -> np.ndarray:
    """Apply :func:`_expand_side` to every side until nothing moves (at most ``rounds`` times)."""
    for _ in range(rounds):
        changed = False
        levels = _end_levels(smooth, corners)
        for side in range(4):
            new = _expand_side(smooth, tex, corners, side, levels=levels)
            if new is not None:
                corners, changed = new, True
                levels = _end_levels(smooth, corners)
        if not changed:
            break
    return corners


def _sweep_side(smooth: np.ndarray, corners: np.ndarray, side: int) -> np.ndarray | None:
    """Outward search for the straight border of ``side`` (working px corners in and out).

    :data:`SWEEP_PROFILES` profiles run outwards from the side, each along the direction
    interpolated between the two neighbouring side lines (so they follow the perspective). On
    each profile every sharp drop is a border candidate when (1) the step is at least
    :data:`MIN_DIM_EDGE_CONTRAST` and at least half the inside's excess over the viewport (an
    edge, not a lighting gradient), (2) the inside is above the viewport level and (3) the
    outside is at the viewport level — measured outside the two neighbouring sides at the same
    distance, so that display and lighting gradients along the screen cancel — and (4) the
    inside is also above the viewport level next to the current corners (where the neighbours'
    extensions run onto the bezel, the level "outside them" is the bezel's). The border is the
    straight line through candidates of the most profiles (all pairs of candidates are tried);
    it must hold candidates of :data:`MIN_SWEEP_SUPPORT` of the profiles. The blob's side need
    not be parallel to the border (a brightness contour inside the image). Returns the new
    corners, or ``None``.
    """
    h, w = smooth.shape
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    ca, cb = corners[side], corners[next_side]
    ea = ca - corners[prev_side]
    eb = cb - corners[(side + 2) % 4]
    la, lb = float(np.hypot(*ea)), float(np.hypot(*eb))
    if min(la, lb) < 8.0:
        return None
    ea, eb = ea / la, eb / lb
    width = 4  # working px averaged on each side of a step
    offs = np.arange(-width, MAX_RETRY_EXPAND_FRACTION * 0.5 * (la + lb), 1.0)
    tau = np.linspace(0.1, 0.9, SWEEP_PROFILES)[:, None]
    dirs = (1 - tau) * ea[None] + tau * eb[None]
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    base = (1 - tau) * ca[None] + tau * cb[None]
    xs = base[:, 0:1] + offs[None, :] * dirs[:, 0:1]
    ys = base[:, 1:2] + offs[None, :] * dirs[:, 1:2]
    inside_photo = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    prof = _sample_map(smooth, xs, ys).astype(np.float64)
    # Viewport level outside the two neighbours at the same distance out.
    normals = _outward_normals(corners)
    vo = np.arange(OUTSIDE_OFFSETS[0], OUTSIDE_OFFSETS[1] + 0.5, 1.0)

    def vp_along(c: np.ndarray, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        px = c[0] + offs[None, :] * e[0] + vo[:, None] * n[0]
        py = c[1] + offs[None, :] * e[1] + vo[:, None] * n[1]
        return np.median(_sample_map(smooth, px, py), axis=0)

    vp = (1 - tau) * vp_along(ca, ea, normals[prev_side][2])[None] + tau * vp_along(
        cb, eb, normals[next_side][2])[None]
    cs = np.concatenate([np.zeros((len(prof), 1)), np.cumsum(prof, axis=1)], axis=1)
    j = np.arange(width, len(offs) - 2 * width)
    before = (cs[:, j] - cs[:, j - width]) / width
    after = (cs[:, j + width] - cs[:, j]) / width
    beyond = (cs[:, j + 2 * width] - cs[:, j + 2]) / (2 * width - 2)
    step = before - after
    vp_start = np.median(vp[:, (offs >= 0) & (offs <= 2 * width)], axis=1)
    inside = before - vp[:, j]
    outside = beyond - vp[:, j]
    peak = np.zeros_like(step, bool)
    peak[:, 1:-1] = (step[:, 1:-1] >= step[:, :-2]) & (step[:, 1:-1] > step[:, 2:])
    cand = (
        peak
        & (offs[j] >= 2.0)[None, :]
        & inside_photo[:, j + 2 * width]
        & (step >= MIN_DIM_EDGE_CONTRAST)
        & (step >= SWEEP_STEP_SHARE * inside)
        & (inside >= MIN_SIDE_EXCESS)
        & (np.abs(outside) <= np.maximum(SWEEP_OUTSIDE_TOL * step, 0.008))
        # Inside also above the viewport level at the start: where the neighbours' extensions
        # run onto the bezel, "the level outside them" is the bezel's, and the viewport→bezel
        # step would pass for the border.
        & (before - vp_start[:, None] >= MIN_SIDE_EXCESS)
    )
    if log.isEnabledFor(logging.DEBUG):
        base_ok = peak & (step >= MIN_DIM_EDGE_CONTRAST) & inside_photo[:, j + 2 * width]
        for name, c in (("half", step >= SWEEP_STEP_SHARE * inside),
                        ("inside", inside >= MIN_SIDE_EXCESS),
                        ("outside", np.abs(outside) <= np.maximum(SWEEP_OUTSIDE_TOL * step, 0.008)),
                        ("start", before - vp_start[:, None] >= MIN_SIDE_EXCESS)):
            log.debug("sweep side %d: %s fails on %d of %d steps", side, name,
                      int((base_ok & ~c).sum()), int(base_ok.sum()))
    rows, cols = np.nonzero(cand)
    if len(np.unique(rows)) < MIN_SWEEP_SUPPORT * SWEEP_PROFILES:
        log.debug("sweep side %d: candidates on %d profiles only", side, len(np.unique(rows)))
        return None
    if len(rows) > MAX_SWEEP_CANDIDATES:  # keep the strongest steps
        top = np.argsort(-step[rows, cols])[:MAX_SWEEP_CANDIDATES]
        rows, cols = rows[top], cols[top]
    pts = base[rows] + offs[j[cols]][:, None] * dirs[rows]
    # All pairs of candidates on profiles at least a third of the side apart define lines; a
    # line's support is the number of profiles with a candidate within SWEEP_TOL px of it.
    i1, i2 = np.triu_indices(len(pts), k=1)
    far = np.abs(rows[i1] - rows[i2]) >= SWEEP_PROFILES // 3
    i1, i2 = i1[far], i2[far]
    if len(i1) == 0:
        return None
    d = pts[i2] - pts[i1]
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)
    dist = np.abs(np.einsum("pcx,px->pc", pts[None, :, :] - pts[i1][:, None, :], nrm))
    near = dist <= SWEEP_TOL
    hit = np.zeros((len(i1), SWEEP_PROFILES), bool)
    for r in np.unique(rows):
        hit[:, r] = near[:, rows == r].any(axis=1)
    support = hit.sum(axis=1)
    # Most support wins; among equals the innermost line (mean distance out).
    out_dist = (offs[j[cols]][i1] + offs[j[cols]][i2]) / 2
    best = int(np.lexsort((out_dist, -support))[0])
    log.debug("sweep side %d: best line on %d/%d profiles", side, support[best], SWEEP_PROFILES)
    if support[best] < MIN_SWEEP_SUPPORT * SWEEP_PROFILES:
        return None
    # Least-squares line through the supporting candidates.
    inl = near[best]
    c, u, _ = _fit_line(pts[inl], np.maximum(step[rows[inl], cols[inl]], 1e-3))
    new = _replace_side(corners, side, c, u)
    if new is None:
        return None
    if not is_convex(new) or np.any(new < -0.5) or np.any(new[:, 0] > w - 0.5) or np.any(
            new[:, 1] > h - 0.5):
        return None
    return new


def _trim_side(smooth: np.ndarray, corners: np.ndarray, side: int, *,
               levels: np.ndarray, strip: bool = False) -> np.ndarray | None:
    """Move ``side`` inwards when it lies on the bezel (or UI chrome) edge, not the image's.

    When the image nearly touches the viewport's edge, the blob (or a dim-band expansion) can
    take in the strip of viewport — and the toolbar — between the image and the bezel; the
    viewport→bezel step is then a clear straight edge and wins. Such a side is recognised by
    its outside being *darker* than the viewport just outside the two neighbouring sides (near
    the shared corners, :data:`MIN_BEZEL_STEP`). Going inwards, the first rising step on each
    profile is the image border candidate; a robust line through them is the new side, provided
    the strip it cuts off looks like what lies beside the image at the same distance from the
    bezel (outside the neighbouring sides: viewport brightened by backlight bleed, or the
    toolbar) within :data:`MAX_STRIP_DIFF` — an image that really reaches the bezel has its own
    content there. ``strip``: skip the darker-outside test (for a blob split off a UI strip,
    whose side may be the strip's outer edge with viewport beyond). Returns new working corners
    or ``None``.
    """
    h, w = smooth.shape
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    own = float(np.mean(levels[side]))
    vp_a, vp_b = levels[prev_side, 1], levels[next_side, 0]
    vp_ref = 0.5 * (vp_a + vp_b)
    log.debug("trim side %d: outside %.4f, viewport beside %.4f", side, own, vp_ref)
    if vp_ref - own < MIN_BEZEL_STEP and not strip:
        return None
    a, _, n = _outward_normals(corners)[side]
    b = corners[next_side]
    depth = TRIM_FRACTION * 0.5 * (
        float(np.hypot(*(corners[side] - corners[prev_side])))
        + float(np.hypot(*(corners[(side + 2) % 4] - b)))
    )
    steps = np.arange(0.0, max(depth, 8.0), 1.0)
    ts = np.linspace(0.1, 0.9, 24)
    base = a[None, :] + ts[:, None] * (b - a)[None, :]
    xs = base[:, 0:1] - steps[None, :] * n[0]
    ys = base[:, 1:2] - steps[None, :] * n[1]
    prof = _sample_map(smooth, xs, ys)
    # Going inwards from the side's own (bezel) edge, the first rising step is the image border:
    # the strip before it is viewport (brightened by backlight bleed near the panel's edge, so
    # not at the level next to the corners) or UI chrome.
    width = 4
    cs = np.concatenate([np.zeros((len(prof), 1)), np.cumsum(prof, axis=1)], axis=1)
    jv = np.arange(width + 3, len(steps) - width)
    if len(jv) < 3:  # a side too short to hold a strip and a step
        return None
    rise_step = (cs[:, jv + width] - cs[:, jv]) / width - (cs[:, jv] - cs[:, jv - width]) / width
    peak = np.zeros_like(rise_step, bool)
    mid = rise_step[:, 1:-1]
    peak[:, 1:-1] = (mid >= rise_step[:, :-2]) & (mid > rise_step[:, 2:])
    cand = peak & (rise_step >= MIN_DIM_EDGE_CONTRAST)
    rise = np.where(cand.any(axis=1), jv[np.argmax(cand, axis=1)], -1)
    rows = np.flatnonzero(rise > 0)
    log.debug("trim side %d: outside %.4f below the viewport, %d/%d profiles rise", side,
              vp_ref - own, len(rows), len(ts))
    if len(rows) < MIN_REACH_FRACTION * len(ts):
        return None
    j = rise[rows]
    # The strip crossed must be what lies beside the image at the same distance from the
    # bezel — the viewport (or toolbar) outside the two neighbouring sides — and not image
    # content (an image that reaches the bezel has its own, different content there).
    jm = int(np.median(j))
    if jm >= 6:
        ks = steps[3 : jm - 2]
        strip = np.median(prof[rows, 3 : jm - 2], axis=0)
        beside = []
        for nb, corner in ((prev_side, corners[side]), (next_side, b)):
            other = corners[prev_side] if nb == prev_side else corners[(side + 2) % 4]
            e = (other - corner) / max(float(np.hypot(*(other - corner))), 1e-9)
            nn = _outward_normals(corners)[nb][2]
            vo = np.arange(OUTSIDE_OFFSETS[0], OUTSIDE_OFFSETS[1] + 0.5, 1.0)
            px = corner[0] + ks[None, :] * e[0] + vo[:, None] * nn[0]
            py = corner[1] + ks[None, :] * e[1] + vo[:, None] * nn[1]
            beside.append(np.median(_sample_map(smooth, px, py), axis=0))
        diff = float(np.median(np.abs(strip - 0.5 * (beside[0] + beside[1]))))
        log.debug("trim side %d: strip differs from beside by %.4f", side, diff)
        if diff > MAX_STRIP_DIFF:
            return None
    pts = base[rows] - steps[j][:, None] * n[None, :]
    c, d, keep = _fit_line(pts, np.ones(len(pts)))
    if keep.sum() < 0.4 * len(ts):
        return None
    new = _replace_side(corners, side, c, d)
    if new is None:
        return None
    moved = min(np.dot(corners[side] - new[side], n), np.dot(b - new[next_side], n))
    if moved < 1.0 or not is_convex(new):
        return None
    log.debug("trim side %d: moved in by %.1f px", side, moved)
    return new


def _refine_moved(photo: np.ndarray, corners: np.ndarray, s: float, *,
                  min_contrast: float = MIN_EDGE_CONTRAST) -> tuple[np.ndarray, list[_Side]]:
    """Refine corners after a side was moved: a wide first search (the move is coarse), then the
    usual one; returns the second's corners and sides."""
    r1, _ = _refine(photo, corners, search_px=max(6.0, FIRST_SEARCH_WORK_PX / s),
                    min_contrast=min_contrast)
    return _refine(photo, r1, search_px=max(3.0, 1.5 / s), min_contrast=min_contrast)


def _lost_found_side(before: list[_Side], after: list[_Side], *,
                     skip: tuple[int, ...] = ()) -> bool:
    """Whether a side found in ``before`` (other than those in ``skip``) is no longer found."""
    return any(old.support >= MIN_SIDE_SUPPORT > new.support
               for k, (old, new) in enumerate(zip(before, after, strict=True)) if k not in skip)


def _trim_sides(
    photo: np.ndarray, smooth: np.ndarray, corners: np.ndarray, sides: list[_Side], s: float,
    *, strip: bool = False,
) -> tuple[np.ndarray, list[_Side]]:
    """Apply :func:`_trim_side` to each found side; keep a move only if it ends on a real edge.

    The moved side must be found again after refinement (a clear straight step of at least
    :data:`MIN_DIM_EDGE_CONTRAST` onto a flat outside) and the other found sides must stay found.
    """
    for side in range(4):
        if sides[side].support < MIN_SIDE_SUPPORT:
            continue
        work = scale_points(corners, s)
        new = _trim_side(smooth, work, side, levels=_end_levels(smooth, work), strip=strip)
        if new is None:
            continue
        r2, sides2 = _refine_moved(photo, unscale_points(new, s), s,
                                   min_contrast=MIN_DIM_EDGE_CONTRAST)
        if (not is_convex(r2) or sides2[side].support < MIN_SIDE_SUPPORT
                or _lost_found_side(sides, sides2)):
            log.debug("trim side %d: refined supports %s", side,
                      [round(sd.support, 2) for sd in sides2])
            continue
        corners, sides = r2, sides2
    return corners, sides


def _undo_expansion(
    photo: np.ndarray, corners: np.ndarray, sides: list[_Side], blob: np.ndarray, *,
    side: int, s: float,
) -> tuple[np.ndarray, list[_Side], bool]:
    """Put an unfound ``side`` back on the blob's side when the expansion had moved it out.

    Kept only when the side is then found (the usual contrast) and no found side is lost.
    """
    centre = corners.mean(axis=0)
    a, u, n = _outward_normals(corners)[side]
    pa, ua = _line_of(blob, side)
    # How far out the current side lies beyond the blob's side (at its two ends).
    b = corners[(side + 1) % 4]
    out = [float(np.dot(p - pa, np.array([-ua[1], ua[0]]) * np.sign(
        np.dot(np.array([-ua[1], ua[0]]), pa - centre)))) for p in (a, b)]
    if max(out) < max(2.0, 2.0 / s):
        return corners, sides, False
    prev_line = _line_of(corners, (side - 1) % 4)
    next_line = _line_of(corners, (side + 1) % 4)
    p1 = intersect_lines(prev_line[0], prev_line[1], pa, ua)
    p2 = intersect_lines(next_line[0], next_line[1], pa, ua)
    if p1 is None or p2 is None:
        return corners, sides, False
    new = corners.copy()
    new[side], new[(side + 1) % 4] = p1, p2
    if not is_convex(new):
        return corners, sides, False
    r2, sides2 = _refine_moved(photo, new, s)
    lost = _lost_found_side(sides, sides2)
    log.debug("undo expansion of side %d (%.1f / %.1f px out): supports %s", side, *out,
              [round(sd.support, 2) for sd in sides2])
    if not is_convex(r2) or lost or sides2[side].support < MIN_SIDE_SUPPORT:
        return corners, sides, False
    return r2, sides2, True


#: Half-width (working px) of the step measured across each candidate line of the vanishing sweep.
VP_STEP_HALF = 3.0
#: Samples along each candidate line (between 8 % and 92 % of its length).
VP_SAMPLES = 64
#: A step must exceed this many robust noise units of the sweep's step profile.
VP_MIN_Z = 5.0
#: Window beyond a candidate (working px outwards) that must be flat viewport.
VP_BEYOND = (4, 14)
#: In that window: largest step allowed, as a share of the candidate's step ...
VP_MAX_BEYOND_STEP = 0.5
#: ... texture at most this multiple of the viewport's beside the neighbouring sides ...
VP_MAX_BEYOND_TEXTURE = 1.15
#: ... and a level at most this far below the viewport's there: a darker outside is the bezel.
#: The reference lies beside other sides, and vignetting made the viewport beside an image up to
#: 0.12 darker than it on simulated photos: 0.15 against 0.08 raised the typical mean Jaccard by
#: 0.0042 / 0.0023 on seeds 0 / 1 (hard −0.0007 / 0; unconfirmed adjacent moves undone).
VP_MAX_BEYOND_LEVEL_DROP = 0.15
#: A fall of the viewport level beside a line by more than this within a few lines: the bezel.
VP_MAX_BEYOND_DROP = 0.08
#: Inside the border lies image content: at least this multiple of the viewport's texture.
VP_MIN_INSIDE_TEXTURE = 0.95


def _homog_line(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.cross(np.r_[p, 1.0], np.r_[q, 1.0])


def _vanishing_point(corners: np.ndarray, side: int, shape: tuple[int, int]) -> np.ndarray:
    """Homogeneous vanishing point of ``side`` and its opposite side, from the three others.

    The two neighbouring sides meet at one vanishing point ``v1``; for a rectangle seen by a
    camera with focal length ``f`` and principal point ``c`` (the photo centre), the other
    vanishing point lies on the opposite side's line and satisfies ``v1ᵀ ω v2 = 0`` with ``ω``
    the image of the absolute conic — one linear equation, so ``v2`` is that line's meet with
    ``ω v1``. (Both may be points at infinity: parallel sides.)
    """
    h, w = shape
    la = _homog_line(corners[(side - 1) % 4], corners[side])
    lb = _homog_line(corners[(side + 1) % 4], corners[(side + 2) % 4])
    lo = _homog_line(corners[(side + 2) % 4], corners[(side + 3) % 4])
    v1 = np.cross(la, lb)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    f = FOCAL_FRACTION * max(w, h)
    omega = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [-cx, -cy, cx * cx + cy * cy + f * f]])
    return np.cross(lo, omega @ v1)


@dataclass(frozen=True)
class _Pencil:
    """The lines through a side's vanishing point (:func:`_vanishing_point`).

    A line is named by ``t``: it crosses ``mid + t·d``, where ``mid`` is the side's midpoint and
    ``d`` the mean outward direction of the two neighbouring sides. ``t_corners`` are the ``t``
    of the lines through the side's two corners; ``la``/``lb`` the neighbouring side lines
    (homogeneous) and ``lengths`` their lengths.
    """

    mid: np.ndarray
    d: np.ndarray
    v2: np.ndarray
    la: np.ndarray
    lb: np.ndarray
    t_corners: tuple[float, float]
    lengths: tuple[float, float]

    def ends(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the lines ``ts`` meet the two neighbouring side lines ((N, 2) each)."""
        lines = np.cross(np.c_[self.mid[None] + ts[:, None] * self.d[None], np.ones(len(ts))],
                         self.v2[None])
        pa, pb = np.cross(lines, self.la[None]), np.cross(lines, self.lb[None])
        if np.any(np.abs(pa[:, 2]) < 1e-9) or np.any(np.abs(pb[:, 2]) < 1e-9):
            return None
        return pa[:, :2] / pa[:, 2:3], pb[:, :2] / pb[:, 2:3]

    def move(self, corners: np.ndarray, side: int, t: float) -> np.ndarray | None:
        """``corners`` with ``side`` moved onto the line ``t`` (:func:`_replace_side`)."""
        c = self.mid + t * self.d
        line = np.cross(np.r_[c, 1.0], self.v2)
        direction = np.array([line[1], -line[0]])
        direction /= max(float(np.hypot(*direction)), 1e-12)
        return _replace_side(corners, side, c, direction)


def _pencil(corners: np.ndarray, side: int, shape: tuple[int, int]) -> _Pencil | None:
    """The lines through ``side``'s vanishing point; ``None`` for a neighbour under 8 px."""
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    ca, cb = corners[side], corners[next_side]
    ea, eb = ca - corners[prev_side], cb - corners[(side + 2) % 4]
    la_len, lb_len = float(np.hypot(*ea)), float(np.hypot(*eb))
    if min(la_len, lb_len) < 8.0:
        return None
    d = ea / la_len + eb / lb_len
    d /= max(float(np.hypot(*d)), 1e-9)
    v2 = _vanishing_point(corners, side, shape)
    mid = (ca + cb) / 2.0

    def t_of(p: np.ndarray) -> float:  # where the line through p and v2 crosses mid + t·d
        line = np.cross(np.r_[p, 1.0], v2)
        den = float(line[:2] @ d)
        return float(-(line @ np.r_[mid, 1.0]) / den) if abs(den) > 1e-9 else 0.0

    return _Pencil(mid, d, v2, _homog_line(corners[prev_side], ca),
                   _homog_line(cb, corners[(side + 2) % 4]), (t_of(ca), t_of(cb)),
                   (la_len, lb_len))


def _steps_across(smooth: np.ndarray, tex: np.ndarray, pts: np.ndarray, normals: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate line of ``pts`` (lines, samples, xy): the median step across it (level
    :data:`VP_STEP_HALF` px inside minus outside, ``normals`` outward and broadcastable to
    ``pts``), and the median level and texture on it."""
    off = VP_STEP_HALF * normals
    before = _sample_map(smooth, (pts - off)[..., 0], (pts - off)[..., 1])
    after = _sample_map(smooth, (pts + off)[..., 0], (pts + off)[..., 1])
    step = np.median(before - after, axis=1)
    level = np.median(_sample_map(smooth, pts[..., 0], pts[..., 1]), axis=1)
    texture = np.median(_sample_map(tex, pts[..., 0], pts[..., 1]), axis=1)
    return step, level, texture


def _viewport_outside(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
                      sides: tuple[int, ...]) -> tuple[float, float]:
    """Median level and texture of the viewport just outside ``sides``, along their length."""
    normals = _outward_normals(corners)
    vo = np.arange(OUTSIDE_OFFSETS[0], OUTSIDE_OFFSETS[1] + 2.5, 1.0)[None, :, None]
    along = np.linspace(0.05, 0.95, 40)[:, None, None]
    flank = np.concatenate([
        (corners[k][None, None] * (1 - along) + corners[(k + 1) % 4][None, None] * along
         + vo * normals[k][2][None, None]).reshape(-1, 2)
        for k in sides
    ])
    return (float(np.median(_sample_map(smooth, flank[:, 0:1], flank[:, 1:2]))),
            float(np.median(_sample_map(tex, flank[:, 0:1], flank[:, 1:2]))))


def _viewport_beyond(step: np.ndarray, level: np.ndarray, texture: np.ndarray, i: int,
                     vp_level: float, vp_texture: float) -> bool:
    """Whether the step at line ``i`` has flat viewport beyond and image content inside.

    Beyond (:data:`VP_BEYOND` lines out): no step over :data:`VP_MAX_BEYOND_STEP` of it, texture
    and level as the viewport's (a darker outside is the bezel); inside: texture of content.
    """
    b0, b1 = VP_BEYOND
    beyond, inside = slice(i + b0, i + b1), slice(max(0, i - b1), max(1, i - b0))
    return bool(
        np.max(np.abs(step[beyond])) <= VP_MAX_BEYOND_STEP * float(step[i])
        and np.median(texture[beyond]) <= VP_MAX_BEYOND_TEXTURE * vp_texture
        and np.median(level[beyond]) >= vp_level - VP_MAX_BEYOND_LEVEL_DROP
        and np.median(texture[inside]) >= VP_MIN_INSIDE_TEXTURE * vp_texture
    )


def _vanishing_sweep(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
                     side: int) -> np.ndarray | None:
    """Outward search for the border of ``side`` along lines through its vanishing point.

    For a side placed at the last visible content (its border as dark as the viewport, or the
    blob cut along a contour inside the image), the three other sides fix the direction the
    border must have in a rectangle seen in perspective (:func:`_vanishing_point`), so the search
    is one-dimensional: the lines through that point, from the side's outer corner outwards.
    Along each line the step across it (mean over :data:`VP_SAMPLES` points of the level
    :data:`VP_STEP_HALF` px inside minus outside, as a median: glare on part of the line does not
    count) is far above the per-pixel noise even for a faint border. The border is the first
    (innermost) step that stands out of the profile's noise and beyond which lies flat viewport:
    no further step, texture and level as outside the neighbouring sides (a darker outside is
    the monitor's bezel, not the viewport). Returns new working corners or ``None``.
    """
    h, w = smooth.shape
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    pencil = _pencil(corners, side, (h, w))
    if pencil is None:
        return None
    d = pencil.d
    start = max(pencil.t_corners) - VP_BEYOND[0]
    ts = start + np.arange(0.0, MAX_RETRY_EXPAND_FRACTION * 0.5 * sum(pencil.lengths), 1.0)
    ends = pencil.ends(ts)
    if ends is None:
        return None
    pa, pb = ends
    u = np.linspace(0.08, 0.92, VP_SAMPLES)[None, :, None]
    pts = pa[:, None] * (1 - u) + pb[:, None] * u  # (lines, samples, xy)
    inside = np.all((pts[..., 0] >= 0) & (pts[..., 0] <= w - 1) & (pts[..., 1] >= 0)
                    & (pts[..., 1] <= h - 1), axis=1)
    n_in = int(np.argmin(inside)) if not inside.all() else len(ts)
    if n_in < 3 * VP_BEYOND[1]:
        return None
    pts, pa, pb, ts = pts[:n_in], pa[:n_in], pb[:n_in], ts[:n_in]
    e = (pb - pa) / np.maximum(np.linalg.norm(pb - pa, axis=1, keepdims=True), 1e-9)
    nrm = np.c_[-e[:, 1], e[:, 0]]
    nrm *= np.where(nrm @ d < 0, -1.0, 1.0)[:, None]  # outward
    step, level, texture = _steps_across(smooth, tex, pts, nrm[:, None, :])
    # The viewport beside the image: outside the two neighbouring sides, along their length.
    vp_level, vp_texture = _viewport_outside(smooth, tex, corners, (prev_side, next_side))
    noise = 1.4826 * float(np.median(np.abs(step - np.median(step))))
    b0, b1 = VP_BEYOND

    def is_border(i: int) -> bool:
        st = float(step[i])
        return bool(
            st >= step[i - 1] and st > step[i + 1]  # a peak of the step profile
            and st >= max(MIN_DIM_EDGE_CONTRAST, VP_MIN_Z * noise)
            and _viewport_beyond(step, level, texture, i, vp_level, vp_texture)
        )

    for i in range(1, n_in - b1):
        if not is_border(i):
            if log.isEnabledFor(logging.DEBUG) and step[i] >= VP_MIN_Z * noise and (
                    step[i] >= step[i - 1] and step[i] > step[i + 1]):
                bey, ins = slice(i + b0, i + b1), slice(max(0, i - b1), max(1, i - b0))
                log.debug("vanishing sweep side %d: step %.4f at %.1f px rejected (beyond: "
                          "step %.2f, texture %.2f, level %+.3f; inside texture %.2f)", side,
                          step[i], ts[i] - start - b0, np.max(np.abs(step[bey])) / step[i],
                          np.median(texture[bey]) / vp_texture,
                          np.median(level[bey]) - vp_level,
                          np.median(texture[ins]) / vp_texture)
            continue
        # Sub-sample peak of the step profile.
        y0, y1, y2 = step[i - 1], step[i], step[i + 1]
        den = y0 - 2 * y1 + y2
        frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if abs(den) > 1e-12 else 0.0
        t = ts[i] + frac
        new = pencil.move(corners, side, t)
        log.debug("vanishing sweep side %d: step %.4f (noise %.4f) at %.1f px out", side,
                  step[i], noise, t - start - VP_BEYOND[0])
        if new is None or not is_convex(new):
            return None
        return new
    log.debug("vanishing sweep side %d: no border (noise %.4f)", side, noise)
    return None


#: Directions tried by :func:`_adjacent_sweep`: the opposite side's direction turned by these
#: angles (degrees; keystone of a few tens of degrees turns an image's opposite sides by less),
#: then the best one ± :data:`ADJ_FINE_DEG`.
ADJ_ANGLES_DEG = np.arange(-12.0, 12.01, 1.0)
ADJ_FINE_DEG = 0.5
#: Stretch of each candidate line sampled, as fractions of the opposite side's length from the
#: corner on the found neighbour: short of the far corner, whose side is not known either.
ADJ_SPAN = (0.08, 0.6)
#: Samples along each candidate line.
ADJ_SAMPLES = 48
#: Searched positions along the found neighbour, as fractions of its current length from its
#: corner on the opposite side.
ADJ_REACH = (0.4, 1.6)
#: Where :func:`_inward_sweep` starts, as a fraction of the neighbouring sides' length inside.
INWARD_START_FRACTION = 0.3


def _adjacent_sweep(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray, side: int,
                    neighbour: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Border of an unfound ``side`` whose other neighbouring side is not found either.

    The vanishing sweep (:func:`_vanishing_sweep`) takes a side's direction from the three
    others, which fails when two adjacent sides are guesses: each one's direction then depends on
    the other's. Here the side's line is searched from the two found sides only: through each
    point of the found ``neighbour``'s line over :data:`ADJ_REACH` of its length, in the
    directions :data:`ADJ_ANGLES_DEG` from the opposite side's (then the best ± :data:`ADJ_FINE_DEG`).
    A candidate is judged by the step across it along :data:`ADJ_SPAN` of the opposite side's
    length, as the vanishing sweep judges one (a peak of the step profile that stands out of its
    noise, flat viewport beyond and content inside); for each direction the innermost border
    counts, and the direction with the largest step wins (a line at the wrong angle crosses the
    border instead of following it, which lowers its median step). Returns (point, unit
    direction, step) in working px, or ``None``.
    """
    h, w = smooth.shape
    opp = (side + 2) % 4
    shared = (side + 1) % 4 if neighbour == (side + 1) % 4 else side  # corner of side and nb
    far = (shared + 1) % 4 if neighbour == (side + 1) % 4 else (shared - 1) % 4
    other = side if shared == (side + 1) % 4 else (side + 1) % 4  # the side's other corner
    u = corners[shared] - corners[far]
    nb_len = float(np.hypot(*u))
    e_opp = corners[(opp + 1) % 4] - corners[opp]
    opp_len = float(np.hypot(*e_opp))
    if min(nb_len, opp_len) < 8.0:
        return None
    u /= nb_len
    g0 = e_opp / opp_len
    if np.dot(g0, corners[other] - corners[shared]) < 0:
        g0 = -g0
    ts = np.arange(ADJ_REACH[0] * nb_len, ADJ_REACH[1] * nb_len, 1.0)
    base = corners[far][None] + ts[:, None] * u[None]
    ok = (base[:, 0] >= 0) & (base[:, 0] <= w - 1) & (base[:, 1] >= 0) & (base[:, 1] <= h - 1)
    n_in = int(np.argmin(ok)) if not ok.all() else len(ts)
    if n_in < 3 * VP_BEYOND[1]:
        return None
    ts, base = ts[:n_in], base[:n_in]
    vp_level, vp_texture = _viewport_outside(smooth, tex, corners, (neighbour,))
    b1 = VP_BEYOND[1]
    s = np.linspace(ADJ_SPAN[0], ADJ_SPAN[1], ADJ_SAMPLES)[None, :, None] * opp_len
    best: tuple[float, float, np.ndarray, float] | None = None

    def search(angles_deg: np.ndarray) -> None:
        nonlocal best
        for ang_deg in angles_deg:
            found = border_at(float(ang_deg))
            if found is not None and (best is None or found[0] > best[0]):
                best = (*found, float(ang_deg))

    def border_at(ang_deg: float) -> tuple[float, float, np.ndarray] | None:
        ang = np.deg2rad(ang_deg)
        c, sn = np.cos(ang), np.sin(ang)
        g = np.array([c * g0[0] - sn * g0[1], sn * g0[0] + c * g0[1]])
        n = np.array([-g[1], g[0]])
        if np.dot(n, u) < 0:
            n = -n  # outward: away from the opposite side
        pts = base[:, None, :] + s * g[None, None, :]
        step, level, texture = _steps_across(smooth, tex, pts, n[None, None, :])
        noise = 1.4826 * float(np.median(np.abs(step - np.median(step))))
        mid = step[b1:len(ts) - b1]
        peaks = b1 + np.flatnonzero(
            (mid >= step[b1 - 1:len(ts) - b1 - 1]) & (mid > step[b1 + 1:len(ts) - b1 + 1])
            & (mid >= max(MIN_DIM_EDGE_CONTRAST, VP_MIN_Z * noise)))
        for i in peaks:
            if _viewport_beyond(step, level, texture, int(i), vp_level, vp_texture):
                return float(step[i]), float(ts[i]), g
        return None

    search(ADJ_ANGLES_DEG)
    if best is not None:
        search(best[3] + np.array([-ADJ_FINE_DEG, ADJ_FINE_DEG]))
    if best is None:
        return None
    st, t, g, _ = best
    log.debug("adjacent sweep side %d: step %.4f at %.2f of the neighbour", side, st, t / nb_len)
    return corners[far] + t * u, g, st


def _retry_unseen(
    photo: np.ndarray, smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
    sides: list[_Side], s: float, *, side: int,
) -> tuple[np.ndarray, list[_Side], bool]:
    """Second try for the one side without a clear edge, the three others being real edges.

    A side other than the bottom with flat viewport just inside it is first searched for from
    inside (:func:`_inward_sweep`), a found side that this leaves below the mark being
    reported by the caller. The side is moved outwards in relaxed mode (see
    :func:`_expand_side`), and failing that by a
    line-integrated sweep along the neighbouring sides (:func:`_sweep_side`); such a move counts
    as finding the side only when the refined new side is a clear, straight step onto the
    viewport and the sides found before stay so: it cannot make a found image worse, only
    replace a guessed side. Failing both, a sweep along lines through the side's vanishing point
    (:func:`_vanishing_sweep`) places the side where it finds a border, refined when the
    refinement agrees; that border is only a better guess (it can be a straight step inside the
    image, such as a text baseline), so the side stays reported as not found and the returned
    flag is ``False``. On simulated photos (typical and hard, seeds 0 and 1, 800 in all) the
    sweep, here and for two unfound sides in :func:`detect`, moved guessed sides closer to the
    truth on 56 photos and farther on 10 (by 0.011 Jaccard on average).
    """
    work = scale_points(corners, s)
    searches: tuple[Callable[..., np.ndarray | None], ...] = (_expand_side, _sweep_side,
                                                              _vanishing_sweep)
    # Not for the bottom: inside it, an ultrasound image's far field is often as flat as the
    # viewport, and the sweep found a boundary inside the image there (an unflagged wrong quad
    # on a simulated photo); the bottom has its own inward search (:func:`_content_end`).
    ratio = _flat_inside_ratios(smooth, tex, work)[side] if SIDE_NAMES[side] != "bottom" else None
    if ratio is not None and ratio <= MAX_FLAT_INSIDE_RATIO:
        searches = (_inward_sweep, *searches)
    for search in searches:
        if search is _inward_sweep:
            new = _inward_sweep(smooth, tex, work, side)
        elif search is _expand_side:
            new = _expand_side(smooth, tex, work, side, relaxed=True)
        elif search is _sweep_side:
            new = _sweep_side(smooth, work, side)
        else:
            new = _vanishing_sweep(smooth, tex, work, side)
        if new is None or _aspect(new) > MAX_ASPECT:
            log.debug("retry side %d: no move (%s)", side, search.__name__)
            continue
        full = unscale_points(new, s)
        # A dim band's border is a small step: accept it from a third of the usual contrast
        # (the outside must still be flat, and the step a straight line along most of the side).
        r2, sides2 = _refine_moved(photo, full, s, min_contrast=MIN_DIM_EDGE_CONTRAST)
        confirmed = (is_convex(r2) and (search is _inward_sweep or not _lost_found_side(sides, sides2))
                     and sides2[side].support >= MIN_SIDE_SUPPORT)
        if search is _vanishing_sweep:
            # The sweep picks one of several straight steps, and the refinement confirming it is
            # no proof against a wrong pick: the border is kept as the better guess, flagged.
            return (r2 if confirmed else full), sides, False
        if not confirmed:
            log.debug("retry side %d (%s): refined supports %s", side, search.__name__,
                      [round(sd.support, 2) for sd in sides2])
            continue
        return r2, sides2, True
    return corners, sides, False


def _inward_sweep(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
                  side: int) -> np.ndarray | None:
    """The vanishing sweep (:func:`_vanishing_sweep`) from :data:`INWARD_START_FRACTION` of the
    neighbouring sides' length inside ``side``, for a side with flat viewport just inside it
    (placed beyond the image, out on the viewport): the first border out from there.
    ``None`` unless that border lies inside the side's line."""
    pencil = _pencil(corners, side, smooth.shape)
    if pencil is None:
        return None
    inner = min(pencil.t_corners)
    start = pencil.move(corners, side, inner - INWARD_START_FRACTION * min(pencil.lengths))
    if start is None or not is_convex(start):
        return None
    new = _vanishing_sweep(smooth, tex, start, side)
    if new is None:
        return None
    a, b = new[side], new[(side + 1) % 4]
    na = _outward_normals(corners)[side][2]
    if max(float((a - corners[side]) @ na), float((b - corners[(side + 1) % 4]) @ na)) > -1.0:
        return None  # not inside the side's line
    return new


def _repair_adjacent(
    photo: np.ndarray, smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
    sides: list[_Side], s: float, *, unfound: tuple[int, int],
) -> tuple[np.ndarray, list[_Side], list[int]]:
    """Two adjacent unfound sides, each searched from the two found sides (:func:`_adjacent_sweep`).

    The quad is rebuilt from the two found sides' lines and the lines found (a side without one
    keeps its line) and refined as in :func:`_retry_unseen`. Returns the corners, the sides and the
    unfound sides the refinement confirms as clear straight steps onto the viewport (the others
    stay unfound). Nothing changes when no line is found or confirmed, or the quad is
    implausible.
    """
    work = scale_points(corners, s)
    lines = [_line_of(work, k) for k in range(4)]
    moved = []
    for k in unfound:
        if SIDE_NAMES[k] == "bottom":
            # The bottom's border is often invisible (a far field as dark as the viewport): the
            # search would stop at a boundary inside the image. It is left to the retry of the
            # one side still unfound and to :func:`_content_end` (simulated typical mean
            # Jaccard +0.0005 / +0.0016 on seeds 0 / 1 against searching it here too).
            continue
        nb = next(j for j in ((k - 1) % 4, (k + 1) % 4) if j not in unfound)
        found = _adjacent_sweep(smooth, tex, work, k, nb)
        if found is not None:
            lines[k] = (found[0], found[1])
            moved.append(k)
    if not moved:
        return corners, sides, []
    new = work.copy()
    for i in range(4):
        p = intersect_lines(lines[(i - 1) % 4][0], lines[(i - 1) % 4][1], lines[i][0], lines[i][1])
        if p is None:
            return corners, sides, []
        new[i] = p
    if not is_convex(new) or _aspect(new) > MAX_ASPECT:
        return corners, sides, []
    full = unscale_points(new, s)
    r2, sides2 = _refine_moved(photo, full, s, min_contrast=MIN_DIM_EDGE_CONTRAST)
    if _lost_found_side(sides, sides2, skip=unfound) or not is_convex(r2):
        log.debug("adjacent sides %s: refinement lost a found side", unfound)
        return full, sides, []
    confirmed = [k for k in moved if sides2[k].support >= MIN_SIDE_SUPPORT]
    log.debug("adjacent sides %s: moved %s, confirmed %s (supports %s)", unfound, moved,
              confirmed, [round(sd.support, 2) for sd in sides2])
    if not confirmed:
        return corners, sides, []
    return r2, [sides2[k] if k in confirmed or k not in unfound else sides[k] for k in range(4)], \
        confirmed


def _bezel_sides(smooth: np.ndarray, corners: np.ndarray) -> list[str]:
    """Sides beyond which the level rises again after a thin dark band: a bezel, then the room.

    Outside a displayed image lies the viewport, flat over a wide margin; outside the monitor's
    viewport (lifted by glare or ambient light, it can pass all the edge checks) lies the thin
    dark bezel and then the room, usually brighter. For each side (``corners`` in working px),
    the median rise from 2–4 px outside to 5–10 % of the neighbouring sides' length outside is
    measured on 16 profiles; a side is listed when it is ≥ :data:`MIN_BEZEL_RISE` (sides whose
    far samples mostly leave the photo are not judged).
    """
    h, w = smooth.shape
    ts = np.linspace(0.15, 0.85, 16)
    out = []
    for i, (a, _, n) in enumerate(_outward_normals(corners)):
        b = corners[(i + 1) % 4]
        reach = 0.5 * (float(np.hypot(*(corners[(i + 2) % 4] - b)))
                       + float(np.hypot(*(corners[(i - 1) % 4] - a))))
        base = a[None, :] + ts[:, None] * (b - a)[None, :]
        offs = np.r_[np.linspace(2.0, 4.0, 3), np.linspace(0.05, 0.10, 5) * reach]
        xs = base[:, 0:1] + offs[None, :] * n[0]
        ys = base[:, 1:2] + offs[None, :] * n[1]
        inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        ok = inside.all(axis=1)
        if ok.mean() < 0.5:
            continue
        v = _sample_map(smooth, xs[ok], ys[ok])
        rise = float(np.median(v[:, 3:].mean(axis=1) - v[:, :3].mean(axis=1)))
        if rise >= MIN_BEZEL_RISE:
            out.append(SIDE_NAMES[i])
    return out


#: Distance (working px) past a corner where :func:`_continued_sides` starts: beyond the blur of
#: the corner itself.
CONT_START_PX = 5.0
#: Lengths of the extensions of the neighbouring sides judged by :func:`_continued_sides`, as
#: fractions of the neighbouring side's length (the false side can lie near the real border or
#: far from it, so the longest extension along which the border continues counts).
CONT_FRACTIONS = (0.1, 0.2, 0.3)
#: Half-distance (working px) across an extended side line at which its step is measured.
CONT_HALF_PX = 3.0
#: Smallest step (median along the extension) across both neighbouring side lines extended past
#: a side's corners for the side to be taken for a boundary inside the image. On simulated
#: photos (typical and hard, seed 1) it was at most 0.0062 on every correct quad not flagged
#: otherwise, and 0.014 or more on the quads where it fired (all but one with Jaccard < 0.9).
MIN_CONTINUATION_STEP = 0.012
#: Share of an extension that must lie inside the photo for it to be judged.
CONT_MIN_INSIDE = 0.8


def _step_across(smooth: np.ndarray, pts: np.ndarray,
                 normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient-corrected step across a line through ``pts`` (N×2), and the level outside it.

    Levels are sampled at −1, +1 and +3 × :data:`CONT_HALF_PX` along ``normal`` (pointing away
    from the quad); the step is the step across the line minus the step across a parallel line
    farther out, so that a lighting gradient (glare centred on the image, vignetting), which
    steps both alike, cancels. The second array is the level at +3 × :data:`CONT_HALF_PX`.
    """
    k = np.array([-1.0, 1.0, 3.0]) * CONT_HALF_PX
    q = (pts[None, :, :] + k[:, None, None] * normal[None, None, :]).reshape(-1, 2)
    v = _sample_map(smooth, q[:, 0:1], q[:, 1:2])[:, 0].reshape(3, len(pts))
    return (v[0] - v[1]) - (v[1] - v[2]), v[2]


def _continuation_step(smooth: np.ndarray, corner: np.ndarray, far: np.ndarray,
                       normal: np.ndarray) -> float:
    """Step across the line ``far`` → ``corner`` extended past ``corner`` (NaN: not judged).

    The step is the median, along the extension, of the level :data:`CONT_HALF_PX` px on the
    quad's side of the line minus the level as far on the other side (``normal`` points away
    from the quad); the largest over the extension lengths :data:`CONT_FRACTIONS` is returned.
    Past a real corner both sides of the extended line are viewport (no step); past a side that
    is a bright/dim boundary inside the image, the image's own border runs on along the line.
    """
    h, w = smooth.shape
    e = corner - far
    length = float(np.hypot(*e))
    if length < 8.0:
        return float("nan")
    e = e / length
    t = np.arange(CONT_START_PX, CONT_START_PX + max(CONT_FRACTIONS) * length, 1.0)
    pts = corner[None, :] + t[:, None] * e[None, :]
    m = 3.0 * CONT_HALF_PX  # the samples reach this far across the line
    ok = (pts[:, 0] >= m) & (pts[:, 0] <= w - 1 - m) & (pts[:, 1] >= m) & (pts[:, 1] <= h - 1 - m)
    diff, _ = _step_across(smooth, pts, normal)
    best = float("nan")
    for frac in CONT_FRACTIONS:
        sel = t < CONT_START_PX + frac * length
        if ok[sel].mean() < CONT_MIN_INSIDE:
            continue  # mostly off the photo: not judged at this length
        med = float(np.median(diff[sel & ok]))
        best = med if np.isnan(best) else max(best, med)
    return best


def _continued_sides(smooth: np.ndarray, corners: np.ndarray) -> list[str]:
    """Sides past whose two corners the neighbouring sides' borders run on: inside the image.

    A crisp, straight bright/dim boundary inside an ultrasound image (the end of a bright tissue
    band, a dim far field) passes every edge test of a border, but the image's own left and
    right borders go on past it. Both neighbouring lines (``corners`` in working px) must show a
    step of at least :data:`MIN_CONTINUATION_STEP` (:func:`_continuation_step`): a step on one
    alone can be glare or a UI edge.
    """
    normals = _outward_normals(corners)
    out = []
    for side in range(4):
        prev_side, next_side = (side - 1) % 4, (side + 1) % 4
        steps = (
            _continuation_step(smooth, corners[side], corners[prev_side], normals[prev_side][2]),
            _continuation_step(smooth, corners[next_side], corners[(side + 2) % 4],
                               normals[next_side][2]),
        )
        log.debug("continuation of side %d: %.4f / %.4f", side, *steps)
        if all(not np.isnan(st) and st >= MIN_CONTINUATION_STEP for st in steps):
            out.append(SIDE_NAMES[side])
    return out


#: Longest extension searched by :func:`_continuation_end` past a corner, as a multiple of the
#: neighbouring side's length (a bright band can end a third of the way down the image).
EXTEND_MAX_FRACTION = 6.0
#: Step across an extended neighbouring line (gradient-corrected, as in
#: :func:`_continuation_step`) from which the image's border counts as continuing there: half of
#: :data:`MIN_CONTINUATION_STEP`, the level halfway between "no border" and a border just found.
EXTEND_MIN_STEP = 0.5 * MIN_CONTINUATION_STEP
#: Texture (local standard deviation) 2·:data:`CONT_HALF_PX` inside the extended line, relative
#: to the texture as far outside it (at least its median along the extension), from which the
#: border counts as continuing: a far field as dark as the viewport has no level step, but its
#: speckle is still rougher than the flat viewport.
EXTEND_MIN_TEXTURE_RATIO = 2.0
#: Net count of pixels along the extension without the border (see :func:`_continuation_end`)
#: after which the border counts as ended.
EXTEND_END_DROP = 10.0


def _continuation_end(smooth: np.ndarray, tex: np.ndarray, corner: np.ndarray, far: np.ndarray,
                      normal: np.ndarray) -> float | None:
    """Distance past ``corner`` (working px) where the border along ``far`` → ``corner`` ends.

    Along the extended line, each pixel counts +1 where the border goes on (a level step of at
    least :data:`EXTEND_MIN_STEP` or speckle texture :data:`EXTEND_MIN_TEXTURE_RATIO` times the
    outside's) and −1 elsewhere. The end is a peak of the running sum, which a few noisy pixels
    either way do not move: the first peak that the sum then falls :data:`EXTEND_END_DROP`
    below, or the last before the line leaves the screen (the outside falling by
    :data:`VP_MAX_BEYOND_DROP` within a few pixels: the bezel). ``None`` when the border runs on
    to the photo's edge (the image is cut off there: no end to find) or the line is too short
    to judge. ``normal`` points away from the quad across the line.
    """
    h, w = smooth.shape
    e = corner - far
    length = float(np.hypot(*e))
    if length < 8.0:
        return None
    e = e / length
    t = np.arange(CONT_START_PX, CONT_START_PX + EXTEND_MAX_FRACTION * length, 1.0)
    pts = corner[None, :] + t[:, None] * e[None, :]
    m = 3.0 * CONT_HALF_PX
    ok = (pts[:, 0] >= m) & (pts[:, 0] <= w - 1 - m) & (pts[:, 1] >= m) & (pts[:, 1] <= h - 1 - m)
    n_in = int(np.argmin(ok)) if not ok.all() else len(t)
    if n_in < 8:
        return None
    t, pts = t[:n_in], pts[:n_in]
    step, outside = _step_across(smooth, pts, normal)
    k = np.array([-2.0, 2.0]) * CONT_HALF_PX
    q = (pts[None, :, :] + k[:, None, None] * normal[None, None, :]).reshape(-1, 2)
    rough = _sample_map(tex, q[:, 0:1], q[:, 1:2])[:, 0].reshape(2, n_in)
    # Outside: the local texture, at least the median along the extension, so that an edge
    # crossing the line (the bezel beyond the corner), rough on both sides, does not count.
    ratio = rough[0] / np.maximum(rough[1], max(float(np.median(rough[1])), 1e-6))
    on = (step >= EXTEND_MIN_STEP) | (ratio >= EXTEND_MIN_TEXTURE_RATIO)
    run = np.cumsum(np.where(on, 1.0, -1.0))
    # Where the outside of the extension falls sharply (within a few pixels, unlike a lighting
    # gradient), the line has left the screen onto the bezel, and the image's border cannot go on.
    recent = sliding_window_view(np.r_[np.full(8, outside[0]), outside], 7)[:n_in].max(axis=1)
    off_screen = outside < recent - VP_MAX_BEYOND_DROP  # 2–8 px back along the line
    # The first peak of the running sum that it then falls well below: beyond the image's corner
    # lie the viewport and then the bezel and room, whose edges would count again.
    peak = 0
    for j in range(n_in):
        if off_screen[j]:
            return float(t[peak]) if run[peak] > 0 else None
        if run[j] > run[peak]:
            peak = j
        elif run[j] <= run[peak] - EXTEND_END_DROP:
            return float(t[peak]) if run[peak] > 0 else None
    return None  # the border runs on to the photo's edge: the image is cut off there


def _extend_inner_side(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
                       side: int) -> np.ndarray | None:
    """Move a side found inside the image (:func:`_continued_sides`) out to the image's corners.

    The neighbouring sides' borders run on past the side's corners; where each ends
    (:func:`_continuation_end`) is where the image's real corner lies, and the side is moved onto
    the line through those two ends. Returns new working corners, or ``None`` when an end is not
    found or the new quad is not plausible.

    Where the image's far field fades into the viewport, an end is found short of the corner, so
    the new side is a better guess, not a found border. (Taking the side through the farther end
    in the direction the vanishing point implies, :func:`_vanishing_point`, helped on simulated
    typical photos but hurt on hard ones, whose focal lengths range over 13–52 mm: not used.)
    On simulated photos (typical and hard, seeds 0 and 1) the move raised the Jaccard index of
    the 80 quads with one inner side from 0.62 to 0.80 on average (62 better, 4 worse by more
    than 0.01).
    """
    normals = _outward_normals(corners)
    prev_side, next_side = (side - 1) % 4, (side + 1) % 4
    ends = []
    for corner, far, nb in ((corners[side], corners[prev_side], prev_side),
                            (corners[next_side], corners[(side + 2) % 4], next_side)):
        t = _continuation_end(smooth, tex, corner, far, normals[nb][2])
        if t is None:
            return None
        e = corner - far
        ends.append(corner + t * e / float(np.hypot(*e)))
    new = corners.copy()
    new[side], new[next_side] = ends
    log.debug("inner side %d moved out by %.1f / %.1f px", side,
              float(np.hypot(*(ends[0] - corners[side]))),
              float(np.hypot(*(ends[1] - corners[next_side]))))
    if not is_convex(new) or _aspect(new) > MAX_ASPECT:
        return None
    return new


#: Lines searched beyond an unfound bottom side by :func:`_content_end` (through its vanishing
#: point), as a multiple of the longer neighbouring side.
CONTENT_MAX_FRACTION = 3.0
#: Samples along each searched line, between 3 % and 97 % of the way across.
CONTENT_SAMPLES = 64
#: A sample is image content where its texture is at least this multiple of the viewport's
#: beside the line (:data:`EXTEND_MIN_TEXTURE_RATIO`, scaled for shot noise, see below) ...
CONTENT_MIN_TEXTURE_RATIO = EXTEND_MIN_TEXTURE_RATIO
#: ... and a line holds content where this share of its samples is content:
#: two of 64, so that a line across the depth scale's small marks (a sample or two wide) counts.
#: 5 % missed them (simulated typical mean Jaccard −0.002, −0.003 on seeds 0, 1); one sample
#: let isolated texture outliers extend the content (no better on typical, hard −0.002 seed 1).
CONTENT_MIN_SHARE = 0.03
#: Lines without content (working px) after which the content counts as ended: the far field
#: between annotation lines or speckle bands can be this deep. With two-sample content lines,
#: 32 against 24 raised the simulated mean Jaccard (typical +0.002 / +0.0002, hard +0.004 /
#: +0.003 on seeds 0 / 1, no new unflagged bad quad); 40 lost 0.001 on typical seed 1.
CONTENT_GAP_PX = 32
#: Lines without content (working px) that must separate the last content from the photo's
#: edge when the search reaches it: content up to the edge means an image cut off there.
CONTENT_EDGE_CLEAR_PX = 4
#: Smallest move (working px): the texture window reaches a few px past a border, so the content
#: of a correctly placed side ends just beyond it.
CONTENT_MIN_MOVE_PX = 10
#: The side goes this far (working px) inside the last line with content, the reach of the
#: 7-px texture window past the last content pixel.
CONTENT_WINDOW_REACH_PX = 2.0
#: Where the inward search of :func:`_content_end` starts, as a fraction of the neighbouring
#: sides' length inside the side.
CONTENT_BACK_FRACTION = 0.5


def _content_end(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray,
                 side: int, *, back: float = 0.0) -> np.ndarray | None:
    """Move an unfound side out to where the image content beyond it ends (working corners).

    A side placed at a bright/dim boundary inside an ultrasound image leaves the dim far field
    beyond it: faint speckle and burned-in annotations (depth marks, text) that end where the
    image ends, even where the image's border is as dark as the viewport. The search runs over
    the lines through the side's vanishing point (:func:`_vanishing_point`), from the one through
    the side's inner corner outwards; on each, a sample is content where the texture (local
    standard deviation) is at least :data:`CONTENT_MIN_TEXTURE_RATIO` × the viewport's just
    outside the two neighbouring side lines on the same line — that reference scaled by the
    square root of the sample's level over the viewport's (shot noise grows with the level, so a
    glare halo is not texture). The whole line counts, also where it runs inside a side placed at
    the wrong angle (a slanted blob boundary): against counting only samples beyond the side,
    the simulated mean Jaccard rose by 0.0021 / 0.0013 on typical seeds 0 / 1 and fell by
    0.0012 / 0.0004 on hard, where the losers were already flagged bad quads. The side goes onto
    the last line with content (:data:`CONTENT_MIN_SHARE` of its samples) before
    :data:`CONTENT_GAP_PX` lines without any, when that is at least :data:`CONTENT_MIN_MOVE_PX`
    beyond the inner corner. ``None``: no such content, content that runs on to within
    :data:`CONTENT_EDGE_CLEAR_PX` of the photo's edge (no end to find: the image is cut off
    there), or an implausible quad.

    With ``back`` > 0 the search starts that fraction of the neighbouring sides' length inside
    the inner corner instead, and the side is moved *in* to the end of the content found there
    (at least :data:`CONTENT_MIN_MOVE_PX`): for a side placed beyond the image (on the viewport's
    edge onto the bezel, or past the bezel).
    """
    h, w = smooth.shape
    pencil = _pencil(corners, side, (h, w))
    if pencil is None:
        return None
    inner = min(pencil.t_corners)
    start = inner - back * min(pencil.lengths)
    ts = start + np.arange(0.0, CONTENT_MAX_FRACTION * max(pencil.lengths), 1.0)
    ends = pencil.ends(ts)
    if ends is None:
        return None
    pa, pb = ends
    e = (pb - pa) / np.maximum(np.linalg.norm(pb - pa, axis=1, keepdims=True), 1e-9)
    u = np.linspace(0.03, 0.97, CONTENT_SAMPLES)[None, :, None]
    pts = pa[:, None] * (1 - u) + pb[:, None] * u  # (lines, samples, xy)
    # The viewport just outside the two neighbouring side lines, on the same line.
    off = np.arange(OUTSIDE_OFFSETS[0] + 1.0, OUTSIDE_OFFSETS[1] + 4.0)[None, :, None]
    outs = np.concatenate([pa[:, None] - off * e[:, None], pb[:, None] + off * e[:, None]], axis=1)
    inside = np.all((outs[..., 0] >= 0) & (outs[..., 0] <= w - 1) & (outs[..., 1] >= 0)
                    & (outs[..., 1] <= h - 1), axis=1)
    n_in = int(np.argmin(inside)) if not inside.all() else len(ts)
    if n_in < CONTENT_GAP_PX:
        return None
    pts, outs, ts = pts[:n_in], outs[:n_in], ts[:n_in]
    t_in = _sample_map(tex, pts[..., 0], pts[..., 1])
    t_out = np.maximum(np.median(_sample_map(tex, outs[..., 0], outs[..., 1]), axis=1), 1e-4)
    l_in = _sample_map(smooth, pts[..., 0], pts[..., 1])
    l_out = np.maximum(np.median(_sample_map(smooth, outs[..., 0], outs[..., 1]), axis=1), 1e-3)
    ref = t_out[:, None] * np.sqrt(np.maximum(l_in / l_out[:, None], 1.0))
    # All of each line counts, also where it runs inside the side: a side at the wrong angle
    # (a slanted blob boundary) has content beyond its inner corner on its outer part.
    share = (t_in >= CONTENT_MIN_TEXTURE_RATIO * ref).mean(axis=1)
    # Where the viewport beside the line falls sharply (within a few lines, unlike a lighting
    # gradient), the lines have reached the monitor's bezel: the image cannot go on.
    recent = sliding_window_view(np.r_[np.full(8, l_out[0]), l_out], 7)[:n_in].max(axis=1)
    off_screen = l_out < recent - VP_MAX_BEYOND_DROP
    last = None
    for i in range(n_in):
        if off_screen[i]:
            break
        if share[i] >= CONTENT_MIN_SHARE:
            last = i
        if i - (0 if last is None else last) >= CONTENT_GAP_PX:
            break
    else:
        if last is not None and n_in - 1 - last < CONTENT_EDGE_CLEAR_PX:
            return None  # the content runs on to the photo's edge: the image is cut off there
    if last is None:
        return None
    if back == 0.0 and ts[last] - inner < CONTENT_MIN_MOVE_PX:
        return None
    if back > 0.0 and (ts[last] > inner - CONTENT_MIN_MOVE_PX or last == 0):
        return None
    new = pencil.move(corners, side, ts[last] - CONTENT_WINDOW_REACH_PX)
    log.debug("content end of side %d: %.1f px out", side, ts[last] - inner)
    if new is None or not is_convex(new) or _aspect(new) > MAX_ASPECT:
        return None
    return new


#: Stretch of a side's neighbouring sides next to its corners judged by :func:`_faded_sides`, as
#: fractions of the neighbouring side's length from its far corner.
CORNER_SPAN = (0.85, 0.97)
#: Largest step across both neighbouring sides near a side's corners for the side's corners to
#: count as not lying on the image's borders. On simulated photos (seed 1) a correct quad had a
#: step ≥ 0.012 on at least one neighbour near every corner pair, except two whose bottom was
#: placed by the relaxed retry (Jaccard 0.906 and 0.963).
MAX_CORNER_STEP = 0.01


def _faded_sides(smooth: np.ndarray, corners: np.ndarray) -> list[str]:
    """Sides near whose two corners neither neighbouring side is a border any more.

    When the image's border is as dark as the viewport, a retry can place the side on another
    straight step beyond it (the viewport's edge onto the bezel) and find it there; the image's
    own left and right borders then end before the new corners, so across the neighbouring
    sides near those corners (:data:`CORNER_SPAN`) there is no step. The step is
    :func:`_step_across` (gradient-corrected), median of 12 points; a side is listed when
    it is below :data:`MAX_CORNER_STEP` on both neighbours: its real border was not found.
    """
    normals = _outward_normals(corners)
    ts = np.linspace(CORNER_SPAN[0], CORNER_SPAN[1], 12)
    out = []
    for side in range(4):
        prev_side, next_side = (side - 1) % 4, (side + 1) % 4
        steps = []
        for corner, far, nb in ((corners[side], corners[prev_side], prev_side),
                                (corners[next_side], corners[(side + 2) % 4], next_side)):
            pts = far[None, :] + ts[:, None] * (corner - far)[None, :]
            steps.append(float(np.median(_step_across(smooth, pts, normals[nb][2])[0])))
        log.debug("corner steps of side %d: %.4f / %.4f", side, *steps)
        if max(steps) < MAX_CORNER_STEP:
            out.append(SIDE_NAMES[side])
    return out


#: Depth of the strip just inside a side judged by :func:`_flat_inside_sides`, as a fraction of
#: the neighbouring sides' mean length (at least :data:`FLAT_MIN_DEPTH_PX` working px).
FLAT_DEPTH_FRACTION = 0.06
FLAT_MIN_DEPTH_PX = 8.0
#: Largest ratio of the texture (local standard deviation) just inside a side to the texture of
#: the ring just outside the quad for the side to count as having flat background inside. On
#: simulated photos (typical and hard, seed 1) the second-lowest ratio of a correct quad not
#: flagged otherwise was ≥ 1.97 (ultrasound speckle inside, flat viewport outside), and ≤ 0.94
#: on the unflagged quads that were the lit viewport or took in a viewport panel.
MAX_FLAT_INSIDE_RATIO = 1.2
#: Sides with flat background inside from which a quad is reported (one can be a dark image
#: border, or UI chrome beside a side).
MIN_FLAT_INSIDE_SIDES = 2
#: Working-image level from which a pixel counts as clipped: a saturated image is flat too.
FLAT_CLIP_LEVEL = 0.9


def _flat_inside_sides(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray) -> list[str]:
    """Sides just inside which the photo is as flat as outside the quad: viewer background.

    Just inside a displayed image's border lies ultrasound speckle, just outside it the flat
    viewport. A quad that is the lit viewport (the monitor's edges onto a dim room, which
    :func:`_bezel_sides` cannot see) or that takes in a viewport panel beside the image has flat
    background just inside its sides instead. For each side (``corners`` in working px) the
    median texture of a strip 3 px to :data:`FLAT_DEPTH_FRACTION` of the neighbouring sides'
    length inside it (clipped pixels left out; a side mostly clipped is not judged) is compared
    with the median texture 5–10 px outside all four sides (a ring, so that UI text or a glare
    edge beside one corner does not set the reference); a side is listed when the ratio is at
    most :data:`MAX_FLAT_INSIDE_RATIO`, the quad when :data:`MIN_FLAT_INSIDE_SIDES` are.
    """
    flat = [SIDE_NAMES[i] for i, r in enumerate(_flat_inside_ratios(smooth, tex, corners))
            if r is not None and r <= MAX_FLAT_INSIDE_RATIO]
    return flat if len(flat) >= MIN_FLAT_INSIDE_SIDES else []


def _flat_inside_ratios(smooth: np.ndarray, tex: np.ndarray, corners: np.ndarray
                        ) -> list[float | None]:
    """Per side, :func:`_flat_inside_sides`' texture ratio (``None``: the side is not judged)."""
    normals = _outward_normals(corners)
    vo = np.arange(OUTSIDE_OFFSETS[0], OUTSIDE_OFFSETS[1] + 0.5, 1.0)
    ts = np.linspace(0.1, 0.9, 24)
    strips, ring = [], []
    for side in range(4):
        a, _, n = normals[side]
        b = corners[(side + 1) % 4]
        la = float(np.hypot(*(a - corners[(side - 1) % 4])))
        lb = float(np.hypot(*(b - corners[(side + 2) % 4])))
        depth = np.arange(3.0, max(FLAT_MIN_DEPTH_PX, FLAT_DEPTH_FRACTION * 0.5 * (la + lb)), 1.0)
        base = a[None, :] + ts[:, None] * (b - a)[None, :]
        strips.append((base[:, None, :] - depth[None, :, None] * n[None, None, :]).reshape(-1, 2))
        ring.append((base[:, None, :] + vo[None, :, None] * n[None, None, :]).reshape(-1, 2))
    ring_pts = np.concatenate(ring)
    ref = float(np.median(_sample_map(tex, ring_pts[:, 0:1], ring_pts[:, 1:2])))
    out: list[float | None] = []
    for side, pts in enumerate(strips):
        level = _sample_map(smooth, pts[:, 0:1], pts[:, 1:2])[:, 0]
        texture = _sample_map(tex, pts[:, 0:1], pts[:, 1:2])[:, 0]
        unclipped = level < FLAT_CLIP_LEVEL
        if unclipped.mean() < 0.5:
            out.append(None)
            continue
        ratio = float(np.median(texture[unclipped])) / max(ref, 1e-6)
        log.debug("flat inside side %d: texture ratio %.2f", side, ratio)
        out.append(ratio)
    return out


def _blur_pass(
    photo: np.ndarray, starts: list[tuple[_Candidate, np.ndarray, float]], s: float
) -> tuple[_Candidate, np.ndarray, np.ndarray, float] | None:
    """Fallback refinement for a blurred photo, when no candidate passed the sharp measure.

    Every candidate's coarse quad (``starts``: candidate, coarse corners in photo px, size
    factor) is refined with the blurred-photo measure (:func:`_refine` with ``blur_px``) at each
    of :data:`BLUR_SCALES_WORK_PX`; the best rectangularity × support × size wins, as in the
    sharp pass, but a trial with four found sides (support ≥ :data:`BLUR_MIN_SIDE_SUPPORT`)
    beats one with three. Each trial starts with a normal and with a
    :data:`BLUR_WIDE_SEARCH_FACTOR` × wider first search. Returns (candidate, coarse corners,
    refined corners, blur scale in photo px), or None when no trial has three found sides.
    """
    search = max(6.0, FIRST_SEARCH_WORK_PX / s)
    best: tuple[tuple[int, float], _Candidate, np.ndarray, np.ndarray, float] | None = None
    trials = [(c, coarse, size, scale, wide) for c, coarse, size in starts
              for scale in BLUR_SCALES_WORK_PX for wide in (1.0, BLUR_WIDE_SEARCH_FACTOR)]
    for cand, coarse, size, scale, wide in trials:
        blur = scale / s
        # A blurred photo's blob can end well inside the image (a dim band, a glare halo): a
        # first search that also reaches farther, then two normal ones from where it ended.
        r2, _ = _refine(photo, coarse, search_px=wide * search, blur_px=blur)
        for _ in range(2):
            r2, sides = _refine(photo, r2, search_px=max(3.0, 1.5 / s), blur_px=blur)
        support = float(np.mean([sd.support for sd in sides]))
        log.debug("blur pass σ=%.1f px, search × %g: supports %s", blur, wide,
                  [round(sd.support, 2) for sd in sides])
        found = sum(sd.support >= BLUR_MIN_SIDE_SUPPORT for sd in sides)
        if found < 3 or not is_convex(r2):
            continue
        # Four found sides beat three. (A trial with three is kept only so that detect can
        # say that the photo is blurred and one border is not clear: it is never returned.)
        score = (found, cand.fill * support * size)
        if best is None or score > best[0]:
            best = (score, cand, coarse, r2, blur)
    return None if best is None else best[1:]


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


_BLURRED_REASON = (
    "screen edges not visible: not all four borders of the image are clear straight edges on "
    "a dark background, even allowing for blur (an out-of-focus or shaken photo, a faint image "
    "border, or the whole lit screen?); hold the phone still and tap to focus on the image, "
    "raise the window level, or give the corners by hand"
)


class _PhotoUnusable(NoScreenFoundError):
    """A failure that no second opinion can settle: the photo as a whole is dark, saturated or
    without contrast, or the image runs off it. (The segmenter was not trained on cut-off
    images; it places a side short of the photo's edge.)"""


def _failure(cands: list[_Candidate], stats: dict[str, float], *, split: bool = False
             ) -> NoScreenFoundError:
    """The error for a failed search, with :func:`_describe_failure`'s reason."""
    reason = _describe_failure(cands, stats, split=split)
    if reason.startswith("screen edges not visible"):
        return NoScreenFoundError(reason)
    return _PhotoUnusable(reason)


def _describe_failure(
    cands: list[_Candidate], stats: dict[str, float], *, split: bool = False
) -> str:
    """Actionable reason for a failed detection; ``split``: a blob split off a blob running off
    the photo was tried and rejected (its borders were not all clear edges)."""
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
        if split:
            return (
                f"the image is cut off at the {sides} edge of the photo, or merges with a toolbar "
                "or panel that runs off it; step back so that the whole image, the viewer around "
                "it and some dark screen are visible, or give the corners by hand"
            )
        return (
            f"the image is cut off at the {sides} edge of the photo; step back so that the "
            "whole image and some dark screen around it are visible, or give the corners by hand"
        )
    if split:
        return (
            "screen edges not visible: the image seems to merge with a bright area that runs off "
            "the photo (a toolbar, a panel or the lit screen), and its own borders are not all "
            "clear edges; step back so that the whole viewer window is in the photo, avoid "
            "glare, or give the corners by hand"
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


def detect(photo: np.ndarray, *, second_opinion: bool = True) -> Quad:
    """Find the displayed image area of a phone photo.

    Parameters
    ----------
    photo:
        ``uint8`` H×W×3 RGB photo as returned by :func:`photorad.io.load_photo`.
    second_opinion:
        Settle a flagged or failed geometric search with the shipped segmenter
        (:func:`_second_opinion`). False: the geometric search alone (as before 2026-12-05).

    Returns
    -------
    Quad
        Corners TL, TR, BR, BL (outer edges of the displayed image, photo pixels, sub-pixel),
        ``score`` in [0, 1] (rectangularity × edge support, at most 0.5 when a side was not
        found), ``method`` ``"contour+edges"`` (refined) or ``"contour"`` (coarse only) from
        the geometric search, or ``"segment+edges"`` when the learned segmenter's quad was taken
        because the geometric search was unsure or failed (:func:`_second_opinion`; its score is
        the segmenter's confidence × (0.5 + edge support), and ``details`` then also holds
        ``segmenter_confidence``, ``segmenter_sha256`` (the weights used) and ``geometric``,
        what the geometric search gave), and
        ``details``: ``edge_support``, ``rectangularity``, per-side ``side_support`` and
        ``side_contrast`` (top, right, bottom, left), ``edges_not_found`` (names of the sides
        without a clear straight step onto the viewport), ``screen_edge_sides`` (when two or
        more sides look like a monitor's bezel with brighter surroundings beyond, their names:
        the quad may be the whole lit screen, not the image; the score is then at most 0.5),
        ``inner_sides`` (sides that seem to lie inside the image and could not be moved out),
        ``background_inside_sides`` (sides with flat viewer background just inside them, listed
        when two or more are), ``retried_side`` (the side placed by the relaxed retry, or "")
        ``blur_px`` (the blur scale of the edge measure in photo px: 0 unless the
        blurred-photo fallback was needed) and, when the image area was found by a second
        search inside a screen-like first quad, ``inside_of`` (that quad's corners).

    Raises
    ------
    NoScreenFoundError
        No plausible image quadrilateral, with the reason (dark photo, image cut off at an edge,
        screen edges not visible …).
    """
    photo = _check_photo(photo)
    maps = _work_maps(photo)
    try:
        quad = _detect_geometric(photo, maps)
    except _PhotoUnusable as exc:
        raise NoScreenFoundError(str(exc)) from None  # callers see one error type
    except NoScreenFoundError as exc:
        if not second_opinion:
            raise
        return _second_opinion(photo, maps, None, exc)
    if not second_opinion or not _flagged(quad):
        return quad
    return _second_opinion(photo, maps, quad, None)


def _flagged(quad: Quad) -> bool:
    """Whether ``detect`` would warn about the quad (a side not found, screen-like, a side
    inside the image or background inside, or a score below even odds)."""
    d = quad.details
    return bool(d["edges_not_found"] or d["screen_edge_sides"] or d.get("inner_sides")
                or d["background_inside_sides"] or quad.score < UNSEEN_SIDE_SCORE)


def _second_opinion(photo: np.ndarray, maps: _WorkMaps, quad: Quad | None,
                    failure: NoScreenFoundError | None) -> Quad:
    """Settle a flagged or failed geometric detection with the segmenter's quad.

    The geometric search is exact where it is sure (four clear borders, nothing screen-like),
    and it is kept there. Where it is unsure or fails, the segmenter has read the whole screen
    layout: its quad, with each side measured at full resolution (:func:`_segment_quad`), is
    taken, with its own flags (sides without a clear edge, screen-like sides, background
    inside). (Keeping the geometric quad when the two agree closely, IoU ≥ 0.95 … 0.995, scored
    lower on simulated photos: the segmenter's quad was as good or better there too.) The
    geometric quad is kept in ``details["geometric"]`` (its corners, the sides it did not find
    and its IoU with the segmenter's quad, or the reason it failed).
    """
    seg = _segment_quad(photo, maps)
    if seg is None:
        if quad is None:
            assert failure is not None
            raise failure
        return quad
    if quad is None:
        note: dict[str, Any] = {"failed": str(failure)}
    else:
        note = {"corners": _rounded(quad.corners),
                "edges_not_found": list(quad.details["edges_not_found"]),
                "iou_with_segmenter": round(_quad_iou(quad.corners, seg.corners), 4)}
    log.debug("detect: segmenter quad taken (geometric search %s)",
              "failed" if quad is None else "unsure")
    return replace(seg, details={**seg.details, "geometric": note})


def _quad_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Area IoU of two convex quads (photo pixels)."""
    inter, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
    union = polygon_area(a) + polygon_area(b) - float(inter)
    return float(inter) / union if union > 0 else 0.0


def _detect_geometric(photo: np.ndarray, maps: _WorkMaps) -> Quad:
    """The geometric search: blobs, edges and repairs (:func:`_detect_once`), and a second
    search inside a quad that looks like the whole lit screen."""
    quad = _detect_once(photo, maps)
    if not _screen_sides(quad):
        return quad
    # The quad may be the whole lit screen (or take in viewer background): the image is then a
    # smaller area inside it. Search again among the blobs that lie inside the quad, and take
    # that answer when it is an image area of its own: neither screen-like nor holding
    # background, with at most :data:`INSIDE_MAX_UNSEEN` sides unfound.
    try:
        inner = _detect_once(photo, maps, within=quad)
    except NoScreenFoundError:
        return quad
    if _screen_sides(inner) or len(inner.details["edges_not_found"]) > INSIDE_MAX_UNSEEN:
        return quad
    log.debug("detect: image area found inside a screen-like quad")
    return replace(inner, details={**inner.details, "inside_of": _rounded(quad.corners)})


#: Smallest :attr:`~photorad.rectify.segment.SegQuad.confidence` of the segmenter's quad for
#: ``detect`` to consider it.
SEG_MIN_CONFIDENCE = 0.8
#: Fewest sides of the segmenter's quad that must be clear edges at full resolution. With none
#: the quad is the network's reading alone: on simulated `hard` photos (seed 0) 6 of 13 such
#: quads were bad (Jaccard < 0.9), against 8 of 36 with one side found.
SEG_MIN_FOUND_SIDES = 1
#: Half-length of the first edge search around the segmenter's sides, in reduced pixels of the
#: segmenter's input (its placement error is about one).
SEG_SEARCH_REDUCED_PX = 2.5


def _segment_quad(photo: np.ndarray, maps: _WorkMaps, *,
                  min_found_sides: int = SEG_MIN_FOUND_SIDES) -> Quad | None:
    """The image area as the segmenter (:mod:`photorad.rectify.segment`) sees it, its sides
    measured at full resolution; None without shipped weights or a confident answer, or with
    fewer than ``min_found_sides`` sides measured.

    Each side is the edge line the refinement finds near the segmenter's side when that is a
    clear step along the side (support ≥ :data:`MIN_SIDE_SUPPORT`); otherwise the segmenter's
    own line is kept and the side is reported in ``edges_not_found``.
    """
    from photorad.rectify.segment import Segmenter

    seg = Segmenter.shipped()
    if seg is None:
        return None
    p, red = seg.prob(photo)
    sq = quad_from_prob(p, red)
    if sq is None or sq.confidence < SEG_MIN_CONFIDENCE or sq.touches_edge:
        return None  # not sure, or the image runs off the photo (the geometric reason says so)
    h, w = photo.shape[:2]
    corners = sq.corners
    if (not is_convex(corners) or polygon_area(corners) < MIN_AREA_FRACTION * h * w
            or _aspect(corners) > MAX_ASPECT):
        return None
    s = maps.s
    for search in (SEG_SEARCH_REDUCED_PX / red.sx, max(3.0, 1.5 / s)):
        lines, sides = _refine_lines(photo, corners, search_px=search)
        keep = [ln if ln is not None and sd.support >= MIN_SIDE_SUPPORT else None
                for ln, sd in zip(lines, sides, strict=True)]
        keep = [ln if ln is not None else _line_of(corners, i) for i, ln in enumerate(keep)]
        new = corners.copy()
        for i in range(4):
            q = intersect_lines(keep[i - 1][0], keep[i - 1][1], keep[i][0], keep[i][1])
            if q is None or np.hypot(*(q - corners[i])) > 2.0 * search:
                new = None
                break
            new[i] = q
        if new is None or not is_convex(new):
            break
        corners = new
    try:  # what warp would refuse, with no tolerance past the photo's edge
        validate_corners(corners, image_size=(w, h), tolerance_px=0.0)
    except InvalidCornersError:
        return None  # a corner off the photo: the image runs off it, or a side is a poor guess
    _, sides = _refine_lines(photo, corners, search_px=max(3.0, 1.5 / s))
    support = float(np.mean([sd.support for sd in sides]))
    unseen = [n for n, sd in zip(SIDE_NAMES, sides, strict=True) if sd.support < MIN_SIDE_SUPPORT]
    if 4 - len(unseen) < min_found_sides:
        return None
    work = scale_points(corners, s)
    bezel = _bezel_sides(maps.smooth, work)
    screen_like = bezel if len(bezel) >= MIN_BEZEL_SIDES else []
    flat_inside = _flat_inside_sides(maps.smooth, maps.tex, work)
    score = float(np.clip(sq.confidence, 0, 1) * np.clip(0.5 + support, 0, 1))
    if unseen or screen_like or flat_inside:
        score = min(score, UNSEEN_SIDE_SCORE)
    details = _edge_details(sides, support=support, rectangularity=sq.iou_with_mask,
                            unseen=unseen, screen_like=screen_like, inner=[],
                            flat_inside=flat_inside)
    details.update(segmenter_confidence=round(sq.confidence, 3),
                   segmenter_sha256=seg.meta.sha256)
    return Quad(corners, score=score, method="segment+edges", details=details)


@dataclass(frozen=True)
class _WorkMaps:
    """The working-resolution maps of a photo that every search reads: the grey copy
    (:func:`_working_grey`) blurred by σ = 1 px, its :func:`_local_std`, and the scale."""

    smooth: np.ndarray
    tex: np.ndarray
    s: float


def _work_maps(photo: np.ndarray) -> _WorkMaps:
    grey, s = _working_grey(photo)
    return _WorkMaps(cv2.GaussianBlur(grey, (0, 0), 1.0), _local_std(grey), s)


def _screen_sides(quad: Quad) -> set[str]:
    """Sides of a quad flagged as the bezel's edge or with viewer background just inside them:
    the quad may be the lit screen rather than the image (empty: it is not)."""
    return set(quad.details["screen_edge_sides"]) | set(quad.details["background_inside_sides"])


def _inside_region(quad: Quad, shape: tuple[int, int], s: float) -> _Region:
    """The area of a screen-like quad, with a rim along its flagged sides.

    A side flagged as the bezel's or with background just inside it is no border of the image
    inside: a blob that reaches it is the lit viewport, not the image. The other sides may be
    the image's own borders.
    """
    corners = scale_points(quad.corners, s)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    rim = np.zeros(shape, np.uint8)
    flagged = _screen_sides(quad)
    for i, name in enumerate(SIDE_NAMES):
        if name in flagged:
            a, b = np.round(corners[i]), np.round(corners[(i + 1) % 4])
            cv2.line(rim, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1, INSIDE_RIM_PX)
    return _Region(mask, rim & mask)


def _detect_once(photo: np.ndarray, maps: _WorkMaps, *, within: Quad | None = None) -> Quad:
    """One search of :func:`detect` (the photo already checked, ``maps`` its working maps);
    with ``within``, a search among the blobs inside that quad (:func:`_inside_region`)."""
    h, w = photo.shape[:2]
    smooth, tex, s = maps.smooth, maps.tex, maps.s
    region = None if within is None else _inside_region(within, smooth.shape, s)
    masks: list[np.ndarray] = []
    whole, stats = _candidates(smooth, tex, masks=masks, within=region)

    def plausible(cands: list[_Candidate]) -> list[_Candidate]:
        return [c for c in cands if not c.touches and c.fill >= MIN_RECTANGULARITY
                and _aspect(c.corners) <= MAX_ASPECT]

    good = plausible(whole)
    # Blobs split off a blob that runs off the photo (the image merged with a toolbar) are only
    # a fallback, and their quad is kept only when at least three of its sides are clear edges
    # (:data:`SPLIT_MAX_UNSEEN`), flagged when one is not.
    split_only = not good
    if split_only:
        good = plausible(_split_candidates(masks, within=region))
    elif region is not None:
        # Inside a lit screen the image often meets a toolbar strip that reaches the rim.
        good += plausible(_split_candidates(masks, within=region))
    if not good:
        raise _failure(whole, stats)
    # Several thresholds and maps give overlapping candidates; the one whose edges are real —
    # sharp steps along the whole side, as the border of a displayed image is — wins.
    good = _dedupe(sorted(good, key=lambda c: -c.area))[:MAX_CANDIDATES]
    search = max(6.0, FIRST_SEARCH_WORK_PX / s)
    trials = []
    for cand in good:
        work = expand_sides(smooth, tex, cand.corners)
        if _aspect(work) > MAX_ASPECT:
            work = cand.corners
        coarse = unscale_points(work, s)
        start = coarse
        if cand.split:
            # The opening that split the blob also moved its corners (a stub of the strip, a
            # dim image corner cut off): a wider first search, then the usual one.
            start, _ = refine_corners(photo, coarse, search_px=SPLIT_SEARCH_FACTOR * search)
        refined, support = refine_corners(photo, start, search_px=search)
        size = (max(cand.area, polygon_area(work)) / good[0].area) ** 0.25
        trials.append((cand.fill * support * size, cand, coarse, refined, support, size))
    _, best, coarse, refined, support, _ = max(trials, key=lambda t: t[0])
    if support < MIN_SUPPORT and split_only:
        raise _failure(whole, stats, split=True)
    # Blur scale of the edge measure: 0 (sharp) unless the fallback for blurred photos is needed.
    # It runs only when no candidate passed, so photos detected before do not change.
    blur = 0.0
    if support < MIN_SUPPORT:
        found = _blur_pass(photo, [(t[1], t[2], t[5]) for t in trials], s)
        if found is not None:
            best, coarse, refined, blur = found
            support = MIN_SUPPORT  # recomputed below
    if support < MIN_SUPPORT:
        raise NoScreenFoundError(
            "screen edges not visible: a candidate image area was found but its borders are not "
            "clear straight edges on a dark background (glare, blur, or an image that fades into "
            "the background?); retake the photo or give the corners by hand"
        )
    refined, sides = _refine(photo, refined, search_px=max(3.0, 1.5 / s), blur_px=blur)
    support = float(np.mean([sd.support for sd in sides]))
    method = "contour+edges"
    corners = refined if support >= MIN_SUPPORT else coarse
    if support < MIN_SUPPORT:
        method = "contour"
    if not is_convex(corners) or polygon_area(corners) < MIN_AREA_FRACTION * h * w:
        corners, method = coarse, "contour"
    # A side without a clear step along it was placed from the coarse blob: typically an image
    # border as dark as the viewport (ultrasound far field), where the quad ends at the last
    # visible content. Say so, and do not claim more than even odds.
    found_at = MIN_SIDE_SUPPORT if blur == 0.0 else BLUR_MIN_SIDE_SUPPORT
    unseen = [n for n, sd in zip(SIDE_NAMES, sides, strict=True) if sd.support < found_at]
    # The repairs below measure edges with the sharp measure, which cannot place a blurred
    # photo's borders: a quad from the blurred-photo fallback is kept only with its four
    # blur-measured sides found (below), and is not repaired.
    sharp = blur == 0.0
    if unseen and method == "contour+edges" and sharp:
        # A side that the dim-band expansion moved out but that ends on no edge was moved
        # across a lighting gradient or glare halo: its blob position may be the real border.
        blob = unscale_points(best.corners, s)
        for name in list(unseen):
            corners, sides, undone = _undo_expansion(photo, corners, sides, blob,
                                                     side=SIDE_NAMES.index(name), s=s)
            if undone:
                unseen.remove(name)
        support = float(np.mean([sd.support for sd in sides]))
    retried = ""
    pair = tuple(SIDE_NAMES.index(n) for n in unseen)
    if len(pair) == 2 and (pair[1] - pair[0]) % 2 == 1 and method == "contour+edges" and sharp:
        corners, sides, confirmed = _repair_adjacent(photo, smooth, tex, corners, sides, s,
                                                     unfound=pair)
        unseen = [n for n in unseen if SIDE_NAMES.index(n) not in confirmed]
        support = float(np.mean([sd.support for sd in sides]))
    if len(unseen) == 1 and method == "contour+edges" and sharp:
        # The one side without a clear step, the three others being clear edges, gets a second
        # search. (Retrying each of two unfound sides put a second, invisible border on a
        # slanted low-contrast line on simulated photos: an unflagged wrong side.)
        corners, sides, moved = _retry_unseen(photo, smooth, tex, corners, sides, s,
                                              side=SIDE_NAMES.index(unseen[0]))
        if moved:
            support = float(np.mean([sd.support for sd in sides]))
            retried = unseen[0]
            # The inward search may leave a marginal found side below the mark (the others
            # keep every found side found): it is then reported.
            unseen = [n for n, sd in zip(SIDE_NAMES, sides, strict=True) if sd.support < found_at]
    elif len(unseen) == 2 and method == "contour+edges" and sharp:
        # Two unfound sides: each is moved to the border the vanishing sweep finds, as a better
        # guess only — both stay reported as not found (see the note above).
        for name in unseen:
            side = SIDE_NAMES.index(name)
            new = _vanishing_sweep(smooth, tex, scale_points(corners, s), side)
            if new is not None and _aspect(new) <= MAX_ASPECT:
                corners = unscale_points(new, s)
    if method == "contour+edges" and sharp:
        # A found side may be the bezel's edge beyond a strip of viewport or toolbar.
        corners, sides = _trim_sides(photo, smooth, corners, sides, s)
        if best.split:
            # The opening leaves the piece of the strip that lies along the image: a side may
            # be the strip's outer edge. Cut off an inner band that matches what lies beside
            # the image at the same distance (the strip continuing past the corners).
            corners, sides = _trim_sides(photo, smooth, corners, sides, s, strip=True)
        support = float(np.mean([sd.support for sd in sides]))
        # Sides flagged as not found stay flagged: the trim's low-contrast refinement is no
        # evidence for them.
    score = float(np.clip(best.fill, 0, 1) * np.clip(0.5 + support, 0, 1))
    # A lit viewport is as good a quad as the image inside it; when two or more sides look like
    # the monitor's bezel, the quad may be the whole screen: say so rather than claim it.
    bezel = _bezel_sides(smooth, scale_points(corners, s))
    screen_like = bezel if len(bezel) >= MIN_BEZEL_SIDES else []
    if split_only and (len(unseen) > SPLIT_MAX_UNSEEN or screen_like
                       or method != "contour+edges"):
        raise _failure(whole, stats, split=True)
    # The blurred-photo fallback answers only with four clear sides, and
    # not when even one side looks like the bezel: a lit viewport's four edges onto the bezel
    # are as clear as an image's once blur is averaged out (one side rising beyond is enough
    # doubt here, where the first pass saw no clear edge at all).
    if blur > 0.0 and (len(unseen) > 4 - BLUR_MIN_FOUND_SIDES or bezel
                       or method != "contour+edges"):
        raise NoScreenFoundError(_BLURRED_REASON)
    # A side past whose corners the image's own borders run on is a boundary inside the image:
    # it is moved out to where those borders end, as a better guess (reported as not found).
    work = scale_points(corners, s)
    continued = _continued_sides(smooth, work)
    if len(continued) == 1 and method == "contour+edges" and sharp:
        side = SIDE_NAMES.index(continued[0])
        moved = _extend_inner_side(smooth, tex, work, side)
        if moved is not None:
            corners, work = unscale_points(moved, s), moved
            unseen = [n for n in SIDE_NAMES if n in unseen or n == continued[0]]
            continued = _continued_sides(smooth, work)
    # A side whose corners the image's borders do not reach was placed beyond the real border
    # (which was not seen): report it as not found.
    faded = _faded_sides(smooth, work)
    unseen = [name for name in SIDE_NAMES if name in unseen or name in faded]
    # An unfound bottom side is typically the end of the visible content of a dim ultrasound far
    # field: it is moved out to where the faint content beyond it ends, as a better guess (it
    # stays reported as not found). Other sides are unfound for other reasons (glare, UI), and
    # moving them so lost on simulated photos.
    if "bottom" in unseen and method == "contour+edges" and sharp:
        bottom = SIDE_NAMES.index("bottom")
        moved = None
        if "bottom" in faded and "left" not in unseen and "right" not in unseen:
            # The image's found side borders end before the bottom's corners: the bottom lies
            # beyond the image (on the viewport's edge onto the bezel, or past the bezel), and
            # is moved in to where the image's content ends.
            moved = _content_end(smooth, tex, work, bottom, back=CONTENT_BACK_FRACTION)
        if moved is None:
            moved = _content_end(smooth, tex, work, bottom)
        if moved is not None:
            corners, work = unscale_points(moved, s), moved
            continued = _continued_sides(smooth, work)
    # Flat background just inside two or more sides: the quad takes in the viewer background.
    # (Not judged on a quad from the blurred-photo fallback: blur that strong flattens speckle.)
    flat_inside = _flat_inside_sides(smooth, tex, work) if sharp else []
    if unseen or screen_like or continued or flat_inside:
        score = min(score, UNSEEN_SIDE_SCORE)
    log.debug("detect: %s score %.3f support %.2f", method, score, support)
    return Quad(corners, score=score, method=method, details=_edge_details(
        sides, support=support, rectangularity=best.fill, unseen=unseen,
        screen_like=screen_like, inner=continued, flat_inside=flat_inside, retried=retried,
        blur=blur))


def _edge_details(sides: list[_Side], *, support: float, rectangularity: float,
                  unseen: list[str], screen_like: list[str], inner: list[str],
                  flat_inside: list[str], retried: str = "", blur: float = 0.0
                  ) -> dict[str, Any]:
    """The ``details`` every detected quad reports (see :func:`detect`), from its measured
    sides, edge support and flags."""
    return {
        "edge_support": round(support, 3),
        "rectangularity": round(rectangularity, 3),
        "side_support": {n: round(sd.support, 3) for n, sd in zip(SIDE_NAMES, sides, strict=True)},
        "side_contrast": {
            n: round(sd.contrast, 4) for n, sd in zip(SIDE_NAMES, sides, strict=True)
        },
        "edges_not_found": unseen,
        "screen_edge_sides": screen_like,
        "inner_sides": inner,
        "background_inside_sides": flat_inside,
        "retried_side": retried,
        "blur_px": round(blur, 2),
    }


def _rounded(corners: np.ndarray) -> list[list[float]]:
    """Corners as JSON-able [[x, y], …] rounded to 0.01 px (for ``details``)."""
    return [[round(float(x), 2), round(float(y), 2)] for x, y in corners]
