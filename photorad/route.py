"""Is this a breast-ultrasound image at all? Input routing before any score.

A phone photo of a coffee cup, a chest X-ray, a CT or MR slice, a page of text or a viewer
window without an image must be refused, not scored: the classifier gives *some* number for any
input. :class:`Router` runs a small CNN (the registry's ``sepnet``, trained by
``train/train_router.py``) on the grey image resized to a ``side``-pixel square and gives the
probability that it is breast ultrasound:

>>> from photorad.route import ensure_ultrasound, route
>>> route(img).is_ultrasound          # RouteResult(is_ultrasound, score, reason)
>>> ensure_ultrasound(img)            # raises NotUltrasoundError, with advice, when it is not

Images are ``float32`` grey (H, W) in [0, 1] (what :func:`photorad.io.load_original`, the
rectifier and the restorer give). Research use only — not a diagnosis.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photorad.checks import as_grey_float, square_input
from photorad.errors import (
    ConfigError,
    ModelError,
    NotUltrasoundError,
)

__all__ = [
    "ADVICE",
    "MIN_SCORE",
    "RouteResult",
    "RouteSpec",
    "Router",
    "default_router",
    "ensure_ultrasound",
    "network_input",
    "route",
]

#: SHA-256 of the shipped weights (``photorad/weights/router_cpu.safetensors``), checked on load.
SHIPPED_SHA256: str | None = "945cdee98b0b2d025c705619e76a2ec41a9c6f277b71e2232f614d6ae640602d"
#: Smallest accepted image side, px.
MIN_SIDE = 16
#: An image whose score (probability of breast ultrasound) is below this is refused.
#: Rule: the lowest, over the three domains of the router's *validation* patients (originals,
#: rectified simulated photos, restored simulated photos), of each domain's 1st percentile of
#: the scores, floored to 0.01 — so at least 99 % of the validation ultrasound images of every
#: domain pass (``train/train_router.py`` writes it to ``metrics.json`` as ``threshold``). Never
#: tuned on the classifier's test patients nor on the held-out negatives (``eval/router_eval.py``).
MIN_SCORE = 0.89
#: What the user should do instead (shown with the refusal).
ADVICE = ("Photograph the ultrasound image shown on the monitor; photorad scores breast "
          "ultrasound only.")


@dataclass(frozen=True)
class RouteSpec:
    """How an image becomes the router's input; stored in the checkpoint sidecar."""

    side: int = 128  #: network input side, px (the image is resized to a square)
    mean: float = 0.5
    std: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RouteSpec:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown router option(s): {', '.join(sorted(unknown))}")
        spec = cls(**d)
        if spec.side < 32 or spec.side % 32 or spec.std <= 0:
            raise ConfigError(f"invalid router input {spec} (side: multiple of 32)")
        return spec


@dataclass(frozen=True)
class RouteResult:
    """The router's verdict on one image.

    Attributes
    ----------
    is_ultrasound:
        ``score >= threshold``.
    score:
        Probability, in [0, 1], that the image is breast ultrasound.
    reason:
        Why the image is refused, in plain words with advice; ``None`` when it passes.
    """

    is_ultrasound: bool
    score: float
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"is_ultrasound": bool(self.is_ultrasound), "score": round(float(self.score), 4),
                "reason": self.reason}


def _check_image(img: Any) -> np.ndarray:
    return as_grey_float(img, what="the input router", min_side=MIN_SIDE)


def network_input(img: np.ndarray, *, spec: RouteSpec) -> np.ndarray:
    """Grey (H, W) in [0, 1] → ``float32`` (1, side, side), normalised ``(x − mean) / std``."""
    return square_input(img, side=spec.side, mean=spec.mean, std=spec.std)


def refusal_reason(score: float) -> str:
    """The plain-words refusal for an image with this score."""
    return f"This does not look like a breast-ultrasound image (score {score:.2f}). {ADVICE}"


class Router:
    """The routing network with its weights, input spec and threshold (CPU, thread-safe)."""

    def __init__(self, model: Any, *, spec: RouteSpec, name: str, sha256: str | None,
                 threshold: float = MIN_SCORE) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"router threshold must be in [0, 1], got {threshold}")
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.sha256 = sha256
        self.threshold = float(threshold)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, expected_sha256: str | None = None,
                        threshold: float = MIN_SCORE) -> Router:
        """Load a ``task="route"`` checkpoint (safetensors + JSON sidecar)."""
        from photorad.models.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, expected_sha256=expected_sha256, task="route")
        spec = RouteSpec.from_dict(meta.extra.get("spec"))
        name = str(meta.extra.get("name") or Path(path).stem)
        return cls(model, spec=spec, name=name, sha256=meta.sha256, threshold=threshold)

    def scores(self, imgs: list[np.ndarray]) -> np.ndarray:
        """Probabilities of breast ultrasound for several images (one batch)."""
        import torch

        if not imgs:
            return np.zeros(0, dtype=np.float32)
        x = np.stack([network_input(_check_image(im), spec=self.spec) for im in imgs])
        with torch.inference_mode():
            p = torch.sigmoid(self.model(torch.from_numpy(x)))[:, 0].numpy()
        if p.shape != (len(imgs),) or not np.isfinite(p).all():
            raise ModelError(f"input router {self.name} returned an invalid score")
        return p.astype(np.float32)

    def score(self, img: np.ndarray) -> float:
        """Probability, in [0, 1], that ``img`` is a breast-ultrasound image."""
        return float(self.scores([img])[0])

    def check(self, img: np.ndarray) -> RouteResult:
        """Score ``img`` and compare with the threshold."""
        s = self.score(img)
        ok = s >= self.threshold
        return RouteResult(ok, s, None if ok else refusal_reason(s))

    def info(self) -> dict[str, str]:
        return {"name": self.name, "sha256": str(self.sha256 or ""),
                "threshold": f"{self.threshold:.2f}"}


_LOCK = threading.Lock()
_SHIPPED: list[Router] = []


def default_router() -> Router:
    """The shipped CPU router (``photorad/weights/router_cpu.safetensors``), hash-checked."""
    from photorad.models.weights import shipped_path

    with _LOCK:
        if not _SHIPPED:
            _SHIPPED.append(Router.from_checkpoint(shipped_path("router"),
                                                   expected_sha256=SHIPPED_SHA256))
        return _SHIPPED[0]


def route(img: np.ndarray, *, router: Router | None = None) -> RouteResult:
    """Is ``img`` breast ultrasound? (shipped router by default)."""
    return (router or default_router()).check(img)


def ensure_ultrasound(img: np.ndarray, *, router: Router | None = None) -> RouteResult:
    """Return the :class:`RouteResult` of ``img``, or refuse it.

    Raises
    ------
    NotUltrasoundError
        The score is below the router's threshold; the message says so in plain words and
        what to do instead.
    UnsupportedImageError, CorruptImageError, ImageTooSmallError
        ``img`` is not a finite grey float image of at least :data:`MIN_SIDE` px per side.
    """
    res = route(img, router=router)
    if not res.is_ultrasound:
        raise NotUltrasoundError(res.reason)
    return res
