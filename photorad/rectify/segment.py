"""Learned second opinion for :func:`photorad.rectify.detect`: where is the displayed image?

A small U-Net (:mod:`photorad.models.quadseg`, trained on simulated photos by
``train/train_segmenter.py``) maps the photo, reduced to a :data:`SEG_SIDE`-pixel long side,
to the probability that each pixel shows the displayed image. :func:`quad_from_prob` turns the
probability map into a quad (corners TL, TR, BR, BL in photo pixels) with a confidence figure.
The network only places the image area to a few reduced pixels; ``detect`` measures the borders
at full resolution afterwards.

Everything here is a pure function of the photo and the weights; the shipped weights are local
files checked by SHA-256 (nothing is downloaded).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from photorad.rectify.geometry import fit_quad, intersect_lines, order_corners

#: Long side of the reduced photo the network sees, pixels.
SEG_SIDE = 192
#: The network's input sides must be multiples of this (four 2× poolings).
SEG_MULTIPLE = 16
#: Supersampling of the training target's polygon (soft coverage at the borders).
TARGET_SUPERSAMPLE = 4

#: SHA-256 of the shipped weights (``photorad/weights/segmenter_cpu.safetensors``), checked on load.
SHIPPED_SHA256: str | None = "e807ea62e366eec5965352e6cd769d02955639825eb08e37a05e60a7c01b9ff7"


@dataclass(frozen=True)
class Reduced:
    """The reduced grey photo and how it maps to photo pixels.

    ``grey`` is ``float32`` (H, W) in [0, 1], padded at the right/bottom to multiples of
    :data:`SEG_MULTIPLE`; ``valid`` is the (h, w) part that holds the photo; a photo pixel
    ``(x, y)`` sits at ``((x + 0.5) sx - 0.5, (y + 0.5) sy - 0.5)``.
    """

    grey: np.ndarray
    valid: tuple[int, int]
    sx: float
    sy: float

    def to_photo(self, pts: np.ndarray) -> np.ndarray:
        """Reduced-pixel points (N, 2) → photo pixels."""
        out = np.asarray(pts, dtype=np.float64).copy()
        out[:, 0] = (out[:, 0] + 0.5) / self.sx - 0.5
        out[:, 1] = (out[:, 1] + 0.5) / self.sy - 0.5
        return out

    def to_reduced(self, pts: np.ndarray) -> np.ndarray:
        """Photo-pixel points (N, 2) → reduced pixels."""
        out = np.asarray(pts, dtype=np.float64).copy()
        out[:, 0] = (out[:, 0] + 0.5) * self.sx - 0.5
        out[:, 1] = (out[:, 1] + 0.5) * self.sy - 0.5
        return out


def reduce_photo(photo: np.ndarray, *, side: int = SEG_SIDE) -> Reduced:
    """Area-reduce an RGB (or grey) ``uint8`` photo to a ``side``-pixel long side, grey.

    The padding (edge pixels repeated) makes both sides multiples of :data:`SEG_MULTIPLE`.
    """
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) if photo.ndim == 3 else photo
    h, w = grey.shape
    f = side / max(h, w)
    rw, rh = max(1, round(w * f)), max(1, round(h * f))
    small = cv2.resize(grey, (rw, rh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    ph = -rh % SEG_MULTIPLE
    pw = -rw % SEG_MULTIPLE
    if ph or pw:
        small = cv2.copyMakeBorder(small, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return Reduced(grey=small, valid=(rh, rw), sx=rw / w, sy=rh / h)


def network_input(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey in [0, 1] → (2, H, W) ``float32`` network input.

    The second channel is the square root of the grey level: it stretches the dark end, where a
    black viewport meets the image's dark margin, and the first channel keeps glare distinct.
    """
    g = np.clip(grey, 0.0, 1.0).astype(np.float32)
    return np.stack([(g - 0.5) / 0.25, (np.sqrt(g) - 0.5) / 0.25]).astype(np.float32)


def target_mask(corners: np.ndarray, red: Reduced) -> np.ndarray:
    """Soft coverage (``float32`` in [0, 1], reduced size) of the quad ``corners`` (photo px)."""
    k = TARGET_SUPERSAMPLE
    h, w = red.grey.shape
    pts = red.to_reduced(corners)
    big = np.zeros((h * k, w * k), dtype=np.uint8)
    shift = 4  # fillPoly's fixed-point fraction bits
    poly = np.round(((pts + 0.5) * k - 0.5) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(big, [poly.reshape(-1, 1, 2)], 255, lineType=cv2.LINE_8, shift=shift)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@dataclass(frozen=True)
class SegQuad:
    """A quad read off the probability map.

    ``corners`` TL, TR, BR, BL in photo pixels; ``confidence`` in [0, 1]: the mean certainty
    ``|2p − 1|`` of the map inside and just around the quad times the quad's agreement (IoU)
    with the ``p > 0.5`` area — low when the map is unsure or the area is not a quadrilateral.
    """

    corners: np.ndarray
    confidence: float
    iou_with_mask: float
    certainty: float
    touches_edge: bool = False  # the area reaches the photo's edge: the image may be cut off


def _side_lines(contour: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    """Least-squares line through the contour points nearest each side; their crossings."""
    pts = contour.reshape(-1, 2).astype(np.float64)
    lines = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        d = b - a
        length = float(np.hypot(*d))
        if length < 1e-6:
            return None
        u = d / length
        n = np.array([-u[1], u[0]])
        t = (pts - a) @ u
        dist = np.abs((pts - a) @ n)
        sel = (t > 0.15 * length) & (t < 0.85 * length) & (dist < max(2.0, 0.05 * length))
        if sel.sum() < 3:
            lines.append((a, u))
            continue
        q = pts[sel]
        c = q.mean(axis=0)
        _, _, vt = np.linalg.svd(q - c)
        lines.append((c, vt[0]))
    out = []
    for i in range(4):
        q = intersect_lines(*lines[i - 1], *lines[i])
        if q is None:
            return None
        out.append(q)
    return np.array(out)


def quad_from_prob(prob: np.ndarray, red: Reduced) -> SegQuad | None:
    """The largest ``prob > 0.5`` area as a quad in photo pixels, or None when there is none.

    The contour is traced on the map enlarged 4× (bilinear), so that the 0.5 crossing between
    reduced pixels is kept; each side is then a line fitted to the middle 70 % of its contour.
    """
    h, w = red.valid
    p = prob[:h, :w].astype(np.float32)
    k = 4
    big = cv2.resize(p, (w * k, h * k), interpolation=cv2.INTER_LINEAR)
    mask = (big > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return None
    lab = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[lab, cv2.CC_STAT_AREA] < 0.01 * mask.size:
        return None
    comp = (labels == lab).astype(np.uint8)
    touches = bool(comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any())
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    corners = fit_quad(contour)
    fitted = _side_lines(contour, corners)
    if fitted is not None:
        corners = order_corners(fitted)
    # agreement of the quad with the mask, and certainty of the map around it
    quad_mask = np.zeros_like(comp)
    cv2.fillPoly(quad_mask, [np.round(corners).astype(np.int32).reshape(-1, 1, 2)], 1)
    inter = float(np.count_nonzero(quad_mask & mask))
    union = float(np.count_nonzero(quad_mask | mask))
    iou = inter / union if union else 0.0
    ring = cv2.dilate(quad_mask, np.ones((4 * k + 1, 4 * k + 1), np.uint8))
    certainty = float(np.mean(np.abs(2.0 * big[ring > 0] - 1.0)))
    scale = np.array([k, k], dtype=np.float64)
    corners_red = (corners + 0.5) / scale - 0.5
    return SegQuad(corners=red.to_photo(corners_red), confidence=iou * certainty,
                   iou_with_mask=iou, certainty=certainty, touches_edge=touches)


class Segmenter:
    """The network with its weights, loaded once per process (thread-safe, CPU)."""

    _lock = threading.Lock()
    _cache: dict[str, Segmenter] = {}

    def __init__(self, path: str | Path, *, expected_sha256: str | None = None) -> None:
        from photorad.models.checkpoint import load_checkpoint

        self.model, self.meta = load_checkpoint(path, expected_sha256=expected_sha256,
                                                task="segment")
        self.side = int(self.meta.extra.get("side", SEG_SIDE))

    @classmethod
    def shipped(cls) -> Segmenter | None:
        """The shipped segmenter, or None when its weights are not installed."""
        from photorad.models.weights import SHIPPED, WEIGHTS_DIR

        with cls._lock:
            if "shipped" not in cls._cache:
                path = WEIGHTS_DIR / SHIPPED["segmenter"]
                if not path.is_file():
                    return None
                cls._cache["shipped"] = cls(path, expected_sha256=SHIPPED_SHA256)
            return cls._cache["shipped"]

    def prob(self, photo: np.ndarray) -> tuple[np.ndarray, Reduced]:
        """Probability map (reduced size) that each pixel shows the image, and the reduction."""
        import torch

        red = reduce_photo(photo, side=self.side)
        x = torch.from_numpy(network_input(red.grey))[None]
        with torch.inference_mode():
            p = torch.sigmoid(self.model(x))[0, 0].numpy()
        return p, red

    def quad(self, photo: np.ndarray) -> SegQuad | None:
        p, red = self.prob(photo)
        return quad_from_prob(p, red)
