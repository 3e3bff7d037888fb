"""Where is the lesion? The localizer between restoration and the classifier.

The shipped classifier was trained on lesion ROIs (BUS-BRA box + 25 % margin), so a whole
ultrasound frame must first be reduced to its lesion. :func:`locate` runs a small U-Net
(:mod:`photorad.models.lesionseg`, trained by ``train/train_lesion.py``) on the grey image
resized to a ``side``-pixel square, brings the probability map back to the image's own pixels
and keeps the most probable connected lesion area:

>>> from photorad.lesion import find, locate
>>> lesion = find(img)            # Lesion, or None when there is no lesion it can stand behind
>>> lesion.box                    # (x, y, w, h) in image pixels
>>> locate(img).reason            # why there is none, in plain words

Images are ``float32`` grey (H, W) in [0, 1] (what :func:`photorad.io.load_original`, the
rectifier and the restorer give). Works on a whole frame and on a view zoomed onto the lesion.
Research use only — not a diagnosis.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from photorad.checks import as_grey_float, square_input
from photorad.errors import (
    ConfigError,
    InvalidLesionBoxError,
    ModelError,
)

__all__ = [
    "Lesion",
    "LesionResult",
    "LesionSpec",
    "Localizer",
    "default_localizer",
    "find",
    "locate",
    "network_input",
    "outline",
    "user_lesion",
]

#: SHA-256 of the shipped weights (``photorad/weights/lesion_cpu.safetensors``), checked on load.
SHIPPED_SHA256: str | None = "bee2e52ac6220cbee8aa17513c702d15e7c16c082d5299c57cbe38080a25955c"
#: Smallest accepted image side, px.
MIN_SIDE = 16
#: A lesion area below this share of the image is noise, not a lesion.
MIN_AREA_FRACTION = 0.002
#: Below this confidence (mean lesion probability over the area, 0.5-1) no lesion is reported.
#: Rule: the 5th percentile of the confidences on restored `typical` photos of the localizer's
#: validation patients, floored to 0.05, so about 95 % of such photos keep a score; on those
#: patients 5 of the 6 photos below it had a wrong box (``eval/lesion_eval.py --split val``).
MIN_CONFIDENCE = 0.80
#: A lesion shows as structure: the grey-level sd over its box (enlarged by a quarter per side) is
#: at least this. The network never saw a blank image and may place a lesion on one; real
#: lesion regions of the localizer's validation patients have sd 0.060 or more.
MIN_REGION_STD = 0.02
#: Plain-words message when no lesion can be reported (the pipeline shows it instead of a score).
NO_LESION_ADVICE = ("mark the lesion: drag a box around it on the image (or pass --lesion-box "
                    "X,Y,W,H) and score again")


@dataclass(frozen=True)
class LesionSpec:
    """How an image becomes the localizer's input; stored in the checkpoint sidecar."""

    side: int = 160  #: network input side, px (the image is resized to a square)
    mean: float = 0.5
    std: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LesionSpec:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown lesion-localizer option(s): {', '.join(sorted(unknown))}")
        spec = cls(**d)
        if spec.side < 32 or spec.side % 32 or spec.std <= 0:
            raise ConfigError(f"invalid lesion-localizer input {spec} (side: multiple of 32)")
        return spec


@dataclass(frozen=True)
class Lesion:
    """A lesion in image pixels.

    Attributes
    ----------
    box:
        ``(x, y, w, h)`` in image pixels (integers; x, y of the top-left pixel).
    confidence:
        Mean lesion probability over the area, in [0, 1]; 1.0 for a box the user gave.
    mask:
        ``bool`` (H, W), the image's size; for a user box, the box filled.
    source:
        ``"auto"`` (the localizer) or ``"user"`` (a box the clinician gave).
    """

    box: tuple[int, int, int, int]
    confidence: float
    mask: np.ndarray
    source: str = "auto"

    def to_json(self) -> dict[str, Any]:
        """``{"box": [x, y, w, h], "confidence", "source", "area_fraction", "outline"}``.

        ``outline`` is the area's outer contour as ``[[x, y], …]`` image pixels (at most 64
        points), for drawing; a user box's outline is the box.
        """
        return {"box": [int(v) for v in self.box], "confidence": round(float(self.confidence), 4),
                "source": self.source,
                "area_fraction": round(float(self.mask.mean()), 5) if self.mask.size else 0.0,
                "outline": outline(self.mask)}


@dataclass(frozen=True)
class LesionResult:
    """What :func:`locate` found: a :class:`Lesion`, or ``None`` and the reason in plain words."""

    lesion: Lesion | None
    reason: str | None
    confidence: float  #: of the best candidate area (0 when there is none)
    prob: np.ndarray  #: ``float32`` (H, W) lesion probability in image pixels


def _check_image(img: Any) -> np.ndarray:
    return as_grey_float(img, what="the lesion localizer", min_side=MIN_SIDE)


def network_input(img: np.ndarray, *, spec: LesionSpec) -> np.ndarray:
    """Grey (H, W) in [0, 1] → ``float32`` (1, side, side), normalised ``(x − mean) / std``."""
    return square_input(img, side=spec.side, mean=spec.mean, std=spec.std)


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` bounding box of the non-zero pixels of a (H, W) mask."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        raise ValueError("empty mask has no box")
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def outline(mask: np.ndarray, *, max_points: int = 64) -> list[list[float]]:
    """Outer contour of the largest area of a (H, W) mask, ``[[x, y], …]`` pixel centres."""
    contours, _ = cv2.findContours(np.asarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    c = max(contours, key=cv2.contourArea)
    eps = 0.5
    while len(c) > max_points:
        c = cv2.approxPolyDP(c, eps, True)
        eps *= 1.5
    return [[float(x), float(y)] for x, y in c.reshape(-1, 2)]


def lesion_from_prob(prob: np.ndarray, *, min_confidence: float = MIN_CONFIDENCE,
                     min_area_fraction: float = MIN_AREA_FRACTION) -> LesionResult:
    """The most probable connected ``prob > 0.5`` area as a :class:`Lesion`, or the reason why not.

    Areas are ranked by their summed probability (a large, sure area beats a small, sure speck);
    the winner's confidence is its mean probability.
    """
    p = np.asarray(prob, dtype=np.float32)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((p > 0.5).astype(np.uint8), 8)
    if n < 2:
        return LesionResult(None, "no lesion found in the image", 0.0, p)
    mass = np.bincount(labels.ravel(), weights=p.ravel(), minlength=n)[1:]
    lab = 1 + int(np.argmax(mass))
    comp = labels == lab
    conf = float(mass[lab - 1] / max(1, stats[lab, cv2.CC_STAT_AREA]))
    if comp.mean() < min_area_fraction:
        return LesionResult(None, "no lesion found in the image (only a speck)", conf, p)
    if conf < min_confidence:
        return LesionResult(None, f"the lesion localizer is unsure where the lesion is "
                            f"(confidence {conf:.2f} < {min_confidence:.2f})", conf, p)
    lesion = Lesion(box=box_of(comp), confidence=conf, mask=comp, source="auto")
    return LesionResult(lesion, None, conf, p)


def region_std(img: np.ndarray, box: Sequence[int]) -> float:
    """Grey-level sd over ``box`` (x, y, w, h) enlarged by a quarter of its size per side."""
    x, y, w, h = box
    h_img, w_img = img.shape
    x0, y0 = max(0, int(x - w / 4)), max(0, int(y - h / 4))
    x1, y1 = min(w_img, int(np.ceil(x + w * 1.25))), min(h_img, int(np.ceil(y + h * 1.25)))
    return float(np.std(img[y0:y1, x0:x1])) if x1 > x0 and y1 > y0 else 0.0


def user_lesion(box: Sequence[float], shape: tuple[int, int]) -> Lesion:
    """A clinician's box ``(x, y, w, h)`` (image pixels), checked and clipped to the image.

    Raises
    ------
    InvalidLesionBoxError
        Not four finite numbers, an empty box, or a box with no pixel inside the image.
    """
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidLesionBoxError(f"lesion box must be 4 numbers X,Y,W,H; got {box!r}") from None
    h_img, w_img = int(shape[0]), int(shape[1])
    if not all(np.isfinite([x, y, w, h])) or w < 1 or h < 1:
        raise InvalidLesionBoxError(f"lesion box {x:g},{y:g},{w:g},{h:g} is empty (W and H must be ≥ 1 px)")
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(w_img, int(np.ceil(x + w))), min(h_img, int(np.ceil(y + h)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise InvalidLesionBoxError(f"lesion box {x:g},{y:g},{w:g},{h:g} lies outside the "
                          f"{w_img}×{h_img} px image")
    mask = np.zeros((h_img, w_img), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return Lesion(box=(x0, y0, x1 - x0, y1 - y0), confidence=1.0, mask=mask, source="user")


class Localizer:
    """The lesion network with its weights and input spec (CPU, thread-safe inference)."""

    def __init__(self, model: Any, *, spec: LesionSpec, name: str, sha256: str | None,
                 min_confidence: float = MIN_CONFIDENCE,
                 held_out: Sequence[str] | None = None) -> None:
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.sha256 = sha256
        self.min_confidence = float(min_confidence)
        #: BUS-BRA patients (``Case``) the network never trained on (from its sidecar)
        self.held_out = [str(g) for g in (held_out or [])]

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, expected_sha256: str | None = None
                        ) -> Localizer:
        from photorad.models.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, expected_sha256=expected_sha256, task="lesion")
        spec = LesionSpec.from_dict(meta.extra.get("spec"))
        name = str(meta.extra.get("name") or Path(path).stem)
        return cls(model, spec=spec, name=name, sha256=meta.sha256,
                   held_out=meta.extra.get("held_out_patients"))

    def prob(self, img: np.ndarray) -> np.ndarray:
        """Lesion probability, ``float32`` (H, W) in the image's own pixels."""
        import torch

        x = _check_image(img)
        inp = torch.from_numpy(network_input(x, spec=self.spec))[None]
        with torch.inference_mode():
            p = torch.sigmoid(self.model(inp))[0, 0].numpy()
        if p.shape != (self.spec.side, self.spec.side) or not np.isfinite(p).all():
            raise ModelError(f"lesion localizer {self.name} returned an invalid map")
        h, w = x.shape
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)

    def locate(self, img: np.ndarray) -> LesionResult:
        """The lesion in ``img``, or ``None`` with the reason (see :func:`lesion_from_prob`).

        A lesion placed where the image is flat (:data:`MIN_REGION_STD`) is not reported.
        """
        return self.judge(img, self.prob(img))

    def judge(self, img: np.ndarray, prob: np.ndarray) -> LesionResult:
        """What :meth:`locate` reports for ``img`` given its probability map ``prob``."""
        res = lesion_from_prob(prob, min_confidence=self.min_confidence)
        if res.lesion is not None and region_std(img, res.lesion.box) < MIN_REGION_STD:
            return LesionResult(None, "no lesion found: the image shows no structure where a "
                                "lesion could be", res.confidence, res.prob)
        return res

    def find(self, img: np.ndarray) -> Lesion | None:
        return self.locate(img).lesion

    def info(self) -> dict[str, str]:
        return {"name": self.name, "sha256": str(self.sha256 or "")}


_LOCK = threading.Lock()
_SHIPPED: list[Localizer] = []


def default_localizer() -> Localizer:
    """The shipped CPU localizer (``photorad/weights/lesion_cpu.safetensors``), hash-checked."""
    from photorad.models.weights import shipped_path

    with _LOCK:
        if not _SHIPPED:
            _SHIPPED.append(Localizer.from_checkpoint(shipped_path("lesion"),
                                                      expected_sha256=SHIPPED_SHA256))
        return _SHIPPED[0]


def locate(img: np.ndarray, *, localizer: Localizer | None = None) -> LesionResult:
    """The lesion in a grey image, or ``None`` and the reason (shipped localizer by default)."""
    return (localizer or default_localizer()).locate(img)


def find(img: np.ndarray, *, localizer: Localizer | None = None) -> Lesion | None:
    """The lesion in a grey image, or ``None`` (``locate(img).reason`` says why)."""
    return locate(img, localizer=localizer).lesion
