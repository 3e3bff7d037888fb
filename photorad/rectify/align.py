"""Precise photo → original registration, for building *real* paired training data.

:func:`align` registers a phone photo (which may show only part of the screen) to the original
image (or screenshot) it shows:

1. SIFT features on both (the photo is area-averaged first when it is much larger than the
   original, which also suppresses moiré), Lowe's ratio test, and a MAGSAC++ RANSAC homography.
2. ECC refinement (Evangelidis & Psarakis 2008; invariant to the photo's gain and offset) of the
   full homography between the original and the photo pre-warped into the original's frame,
   restricted to the part of the original the photo covers.

The result carries the photo → original homography, the photo warped into the original's frame,
a coverage mask, and residuals (median reprojection error of the inlier matches, ECC correlation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from photorad.errors import ImageTooSmallError, NoScreenFoundError, UnsupportedImageError
from photorad.rectify.geometry import is_convex, polygon_area
from photorad.rectify.warp import AA_THRESHOLD, apply_homography, to_grey

log = logging.getLogger(__name__)

#: Fewest RANSAC inliers accepted for a homography (8 parameters, plus a safety margin).
MIN_INLIERS = 15
#: Lowe's ratio test threshold.
RATIO = 0.8
#: RANSAC inlier threshold, in original pixels.
RANSAC_PX = 3.0
#: Largest working side for feature detection on either image, in pixels.
MAX_FEATURE_SIDE = 2400
#: Photo low-pass (Gaussian σ, working px) against the screen's pixel-grid moiré.
PHOTO_BLUR_PX = 1.5
#: (photo blur σ, original scale, original blur σ) variants tried in order by
#: :func:`match_homography`; blurs in working px of their own image. The last ones are for heavy
#: moiré (photo3/photo7 of the real set): a low-pass strong enough to remove the moiré also blurs
#: the text, and SIFT descriptors then only match an original blurred about as much.
VARIANTS = (
    (0.0, 1.0, 0.0), (PHOTO_BLUR_PX, 1.0, 0.0), (PHOTO_BLUR_PX, 0.5, 0.0), (0.0, 0.5, 0.0),
    (3.5, 0.75, 2.0), (3.5, 0.5, 1.0), (3.5, 1.0, 2.0), (2.5, 0.5, 1.0),
)
#: Stop trying variants once one reaches this many inliers.
GOOD_ENOUGH_INLIERS = 80


@dataclass(frozen=True)
class Alignment:
    """Photo → original registration.

    Attributes
    ----------
    homography:
        3×3 ``float64`` mapping photo pixel coordinates (x, y, 1) to original pixel coordinates.
    aligned:
        ``float32`` grey photo resampled into the original's frame (original's shape), in [0, 1];
        outside ``mask`` the values are edge-replicated and meaningless.
    mask:
        ``bool`` (original's shape): True where the photo covers the original.
    reproj_error_px:
        Median distance, in original pixels, between matched original features and the photo
        features mapped by ``homography`` (inliers only).
    n_matches, n_inliers:
        Ratio-test matches and RANSAC inliers.
    ecc_rho:
        ECC correlation coefficient after refinement (``None`` when ECC did not converge and the
        feature homography was kept).
    """

    homography: np.ndarray
    aligned: np.ndarray
    mask: np.ndarray
    reproj_error_px: float
    n_matches: int
    n_inliers: int
    ecc_rho: float | None

    @property
    def coverage(self) -> float:
        """Fraction of the original covered by the photo."""
        return float(self.mask.mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "homography": [[float(v) for v in row] for row in self.homography],
            "reproj_error_px": round(self.reproj_error_px, 4),
            "n_matches": self.n_matches,
            "n_inliers": self.n_inliers,
            "ecc_rho": None if self.ecc_rho is None else round(self.ecc_rho, 5),
            "coverage": round(self.coverage, 4),
        }


def _grey_any(img: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 32:
        raise ImageTooSmallError(f"{what} must be an image of at least 32×32 px, got {a.shape}")
    if a.ndim == 3 and a.shape[2] not in (3, 4):
        raise UnsupportedImageError(f"{what} must be grey or RGB, got shape {a.shape}")
    g = to_grey(a)
    if not np.isfinite(g).all():
        raise UnsupportedImageError(f"{what} contains NaN or infinite values")
    return np.clip(g, 0.0, 1.0)


def _shrink(grey: np.ndarray, max_side: float) -> tuple[np.ndarray, float]:
    h, w = grey.shape
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0 / AA_THRESHOLD:
        return grey, 1.0
    small = cv2.resize(
        grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
    )
    return small, small.shape[1] / w


def _scale_mat(s: float) -> np.ndarray:
    """Homography of a cv2.resize by factor s (pixel centres: x' = (x + 0.5) s - 0.5)."""
    return np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])


def _features(grey: np.ndarray) -> tuple[list, np.ndarray | None]:
    u8 = np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8)
    # CLAHE evens out the photo's tone curve and glare so the two images give similar keypoints.
    u8 = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(u8)
    sift = cv2.SIFT_create(nfeatures=8000)
    return sift.detectAndCompute(u8, None)


def _match_once(
    f1: tuple[list, np.ndarray | None], f2: tuple[list, np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | str:
    """One feature match + MAGSAC++ homography in the given (working) coordinates."""
    (kp1, d1), (kp2, d2) = f1, f2
    if d1 is None or d2 is None or len(kp1) < MIN_INLIERS or len(kp2) < MIN_INLIERS:
        return "too few distinctive features (blank, very blurred or dark photo?)"
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    good = [m for m, *rest in pairs if rest and m.distance < RATIO * rest[0].distance]
    # One match per original keypoint: repeated glyphs otherwise pile many photo points onto one
    # original point, and a degenerate homography can "explain" them all.
    best_for: dict[int, cv2.DMatch] = {}
    for m in good:
        if m.trainIdx not in best_for or m.distance < best_for[m.trainIdx].distance:
            best_for[m.trainIdx] = m
    good = list(best_for.values())
    if len(good) < MIN_INLIERS:
        return f"only {len(good)} feature matches"
    src = np.float64([kp1[m.queryIdx].pt for m in good])
    dst = np.float64([kp2[m.trainIdx].pt for m in good])
    h, inl = cv2.findHomography(
        src, dst, cv2.USAC_MAGSAC, RANSAC_PX, maxIters=10000, confidence=0.9999
    )
    if h is None or inl is None or int(inl.sum()) < MIN_INLIERS:
        n = 0 if inl is None else int(inl.sum())
        return f"no consistent homography ({n} inliers of {len(good)} matches)"
    inl = inl.ravel().astype(bool)
    if not _plausible(h, src[inl]):
        return "the best homography is degenerate (folds or collapses the photo)"
    return h, src[inl], dst[inl], len(good)


def _plausible(h: np.ndarray, src: np.ndarray) -> bool:
    """A photo → original homography must keep the matched region convex and non-degenerate."""
    lo, hi = src.min(axis=0), src.max(axis=0)
    if np.any(hi - lo < 8):
        return False
    box = np.array([lo, [hi[0], lo[1]], hi, [lo[0], hi[1]]])
    den = (np.c_[box, np.ones(4)] @ h.T)[:, 2]
    if np.any(den <= 0):  # the horizon line crosses the matched region
        return False
    q = apply_homography(h, box)
    if not is_convex(q):
        return False
    ratio = abs(polygon_area(q)) / float(np.prod(hi - lo))
    return 1e-3 < ratio < 1e3


def match_homography(
    photo_grey: np.ndarray, orig_grey: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Feature homography photo → original (both grey float32), full-resolution coordinates.

    Screen photos carry moiré from the pixel grid and may sample the screen more coarsely than
    the original, so the :data:`VARIANTS` are tried in order — photo as is or low-passed,
    original at full or reduced resolution, sharp or blurred — until one reaches
    :data:`GOOD_ENOUGH_INLIERS`; the one with the most RANSAC inliers wins. Returns ``(H, photo_pts, orig_pts, n_matches)`` with the inlier pairs.
    """
    oh, ow = orig_grey.shape
    # Bring the photo to at most ~2× the original's size: SIFT matches best at similar scales.
    p_small, ps = _shrink(photo_grey, min(MAX_FEATURE_SIDE, max(1000.0, 2.0 * max(oh, ow))))
    o_small, os_ = _shrink(orig_grey, MAX_FEATURE_SIDE)
    photo_feats = {0.0: _features(p_small)}
    # (features, scale of that working image relative to the full-resolution original)
    orig_feats = {(1.0, 0.0): (_features(o_small), os_)}
    best: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None
    why = ""
    for blur, oscale, oblur in VARIANTS:
        if blur not in photo_feats:
            photo_feats[blur] = _features(cv2.GaussianBlur(p_small, (0, 0), blur))
        if (oscale, oblur) not in orig_feats:
            o, s = _shrink(o_small, max(o_small.shape) * oscale)
            o = cv2.GaussianBlur(o, (0, 0), oblur) if oblur else o
            orig_feats[oscale, oblur] = (_features(o), os_ * s)
        o_feats, o_scale = orig_feats[oscale, oblur]
        res = _match_once(photo_feats[blur], o_feats)
        if isinstance(res, str):
            why = why or res
            continue
        h, src, dst, n = res
        # Back to full-resolution pixel coordinates.
        o_to_full = np.linalg.inv(_scale_mat(o_scale))
        h_full = o_to_full @ h @ _scale_mat(ps)
        src = apply_homography(np.linalg.inv(_scale_mat(ps)), src)
        dst = apply_homography(o_to_full, dst)
        if best is None or len(src) > len(best[1]):
            best = (h_full / h_full[2, 2], src, dst, n)
        if len(best[1]) >= GOOD_ENOUGH_INLIERS:
            break
    if best is None:
        raise NoScreenFoundError(
            f"could not align the photo with the original: {why}; is this the right original, "
            "and is the photo sharp and well lit?"
        )
    return best


def _warp_into(photo_grey: np.ndarray, h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Photo warped into the original's frame with area pre-filtering when shrinking."""
    w, hh = size
    # Mean linear scale photo → original from the Jacobian determinant at the photo's centre
    # (the original's centre may lie far outside a partial view).
    c = np.array([(photo_grey.shape[1] - 1) / 2, (photo_grey.shape[0] - 1) / 2])
    eps = 1.0
    pts = apply_homography(h, np.array([c, c + [eps, 0], c + [0, eps]]))
    jac = np.array([pts[1] - pts[0], pts[2] - pts[0]]) / eps
    scale = float(np.sqrt(abs(np.linalg.det(jac))))  # original px per photo px
    src, hm = photo_grey, h
    if scale < 1.0 / AA_THRESHOLD:
        src, s = _shrink(photo_grey, max(photo_grey.shape) * scale)
        hm = h @ np.linalg.inv(_scale_mat(s))
    return cv2.warpPerspective(
        src, hm, (w, hh), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _coverage(photo_shape: tuple[int, int], h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    ph, pw = photo_shape
    corners = np.array([[-0.5, -0.5], [pw - 0.5, -0.5], [pw - 0.5, ph - 0.5], [-0.5, ph - 0.5]])
    q = apply_homography(h, corners)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, np.round(q * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def align(photo: np.ndarray, original: np.ndarray, *, refine: bool = True) -> Alignment:
    """Register ``photo`` to ``original``.

    Parameters
    ----------
    photo:
        ``uint8`` H×W×3 RGB phone photo (may show only part of the original/screen).
    original:
        The original image: ``float32`` H×W grey in [0, 1], or a ``uint8`` RGB screenshot.
    refine:
        Run the ECC refinement after the feature homography.

    Raises
    ------
    NoScreenFoundError
        Too few features or matches, or no consistent homography.
    """
    pg = _grey_any(photo, "photo")
    og = _grey_any(original, "original")
    oh, ow = og.shape
    h, src, dst, n_matches = match_homography(pg, og)
    rho: float | None = None
    if refine:
        mask = _coverage(pg.shape, h, (ow, oh))
        m8 = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8))
        if m8.sum() > 1000:
            # ECC on the covered part of the original only (partial views: often < 30 %).
            x, y, bw, bh = cv2.boundingRect(m8)
            shift = np.array([[1.0, 0, -x], [0, 1.0, -y], [0, 0, 1.0]])
            warped = _warp_into(pg, shift @ h, (bw, bh))
            g = np.eye(3, dtype=np.float32)
            crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
            try:
                rho, g = cv2.findTransformECC(
                    np.ascontiguousarray(og[y : y + bh, x : x + bw], dtype=np.float32),
                    warped.astype(np.float32), g, cv2.MOTION_HOMOGRAPHY, crit,
                    np.ascontiguousarray(m8[y : y + bh, x : x + bw]), 5,
                )
                g = np.linalg.inv(shift) @ g.astype(np.float64) @ shift
                # warped(G x) ≈ original(x) → photo → original is G⁻¹ H.
                h_new = np.linalg.inv(g) @ h
                h_new /= h_new[2, 2]
                # Keep the refinement only if it does not move the matched features away.
                err_old = np.median(np.hypot(*(apply_homography(h, src) - dst).T))
                err_new = np.median(np.hypot(*(apply_homography(h_new, src) - dst).T))
                if err_new <= max(2.0 * err_old, 1.5):
                    h = h_new
                else:
                    log.info("ECC refinement moved features (%.2f → %.2f px); kept", err_old,
                             err_new)
                    rho = None
            except cv2.error as exc:
                log.info("ECC refinement did not converge (%s); feature homography kept", exc)
                rho = None
    err = float(np.median(np.hypot(*(apply_homography(h, src) - dst).T)))
    aligned = np.clip(_warp_into(pg, h, (ow, oh)), 0.0, 1.0).astype(np.float32)
    return Alignment(
        homography=h,
        aligned=aligned,
        mask=_coverage(pg.shape, h, (ow, oh)),
        reproj_error_px=err,
        n_matches=n_matches,
        n_inliers=len(src),
        ecc_rho=None if rho is None else float(rho),
    )
