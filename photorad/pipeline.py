"""The one pipeline object: phone photo → corners, quality, rectified, restored, lesion, score.

:class:`Pipeline` ties the stages together (``rectify`` → ``restore`` → ``lesion`` →
``classify``) and returns one :class:`Analysis`. The classifier scores the lesion ROI (the box the
localizer found, or the one the clinician gave, with the classifier's own ROI margin). When no
lesion is found and none is given, the analysis carries the images and a plain-words
:class:`Refusal` instead of a score. The CLI (``photorad analyze``), the demo and the service (``photorad
serve``) all call this object, and :meth:`Analysis.to_json` is the single JSON schema they emit.

The restorer and the classifier are passed in (anything with the documented interface), so the
pipeline can be tested with small doubles and run with any checkpoint;
:meth:`Pipeline.from_defaults` uses the CPU weights shipped in the package.

Research use only — not a diagnosis.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from photorad import DISCLAIMER
from photorad.errors import ModelError, NoScreenFoundError, UnsupportedImageError

#: Version tag of the JSON produced by :meth:`Analysis.to_json`.
SCHEMA = "photorad.analysis/1"
#: Default cap on the longer side of the rectified image, in pixels (see :class:`Pipeline`).
DEFAULT_MAX_SIDE = 576


#: What a clinician can do about each failed or doubtful capture check.
QUALITY_ADVICE = {
    "blur": "the photo is blurred: hold the phone still and tap the image to focus",
    "glare": "reflections or glare on the screen: tilt the phone slightly or dim the room lights",
    "exposure": "the image is too dark: raise the monitor brightness or the camera exposure",
    "keystone": "the photo is taken at an angle: hold the phone parallel to the monitor",
    "resolution": "the image is small in the photo: move closer so that it fills the frame",
    "edges": "an edge of the image was not found (it may be as dark as the viewer background): "
             "raise the window level or zoom so the whole image edge is visible, or give the "
             "corners by hand",
}
# Checks whose own note already says what went wrong and what to do (the edges check names the
# sides and tells an unseen border from a quad that may be the whole lit screen): their note is
# the message, and QUALITY_ADVICE is only the fallback when a report carries no note.
_NOTE_IS_ADVICE = frozenset({"edges"})


def quality_messages(report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Human-readable warnings from a ``QualityReport.to_dict()``: checks that did not pass.

    Each item is ``{"check", "status", "value", "unit", "message"}``, worst first.
    """
    if not report:
        return []
    out = []
    for name, check in report.items():
        if not isinstance(check, Mapping) or check.get("status", "pass") == "pass":
            continue
        note = check.get("note")
        advice = QUALITY_ADVICE.get(name, f"capture check {name!r} did not pass")
        if name in _NOTE_IS_ADVICE and note:
            advice = str(note)
        elif check.get("value") is None and note:
            advice = f"{advice} ({note})"
        out.append({"check": name, "status": check.get("status"), "value": check.get("value"),
                    "unit": check.get("unit"), "message": advice})
    rank = {"fail": 0, "warn": 1}
    return sorted(out, key=lambda d: rank.get(str(d["status"]), 2))


class RestorerLike(Protocol):
    """What the pipeline needs from a restorer (see ``photorad.restore.Restorer``)."""

    name: str
    sha256: str

    def restore(self, img: np.ndarray) -> np.ndarray: ...


class ClassifierLike(Protocol):
    """What the pipeline needs from a classifier (see ``photorad.classify.Classifier``).

    ``bbox`` (x, y, w, h image pixels) is the lesion; the classifier crops its own ROI around it.
    """

    name: str
    sha256: str

    def score(self, img: np.ndarray, *, bbox: Any = None) -> float: ...


class RouterLike(Protocol):
    """What the pipeline needs from an input router (see ``photorad.route.Router``)."""

    name: str
    sha256: str | None

    def check(self, img: np.ndarray) -> Any: ...


class LocalizerLike(Protocol):
    """What the pipeline needs from a lesion localizer (see ``photorad.lesion.Localizer``)."""

    name: str
    sha256: str | None

    def locate(self, img: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class Refusal:
    """Why the analysis gives no score, in plain words, and what the user can do about it.

    ``stage`` names the step that withheld the score (``"lesion"``: no lesion found and none
    marked). Every path that withholds a score uses this one shape.
    """

    stage: str
    reason: str
    advice: str

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "reason": self.reason, "advice": self.advice}


@dataclass(frozen=True)
class Located:
    """Result of the detection half of the pipeline (what ``POST /v1/rectify`` returns)."""

    corners: np.ndarray
    quad_score: float
    quad_method: str
    quality: dict[str, Any] | None
    photo_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: photo size, quad (corners TL, TR, BR, BL), quality, timings."""
        return {
            "schema": "photorad.located/1",
            "photo": {"width": self.photo_size[0], "height": self.photo_size[1]},
            "quad": _quad_json(self.corners, self.quad_score, self.quad_method),
            "quality": self.quality,
            "quality_warnings": quality_messages(self.quality),
            "timings_ms": _round_timings(self.timings_ms),
        }


@dataclass(frozen=True)
class Analysis:
    """Everything one analysis produced.

    Attributes
    ----------
    corners:
        ``float64`` (4, 2), TL, TR, BR, BL in photo pixels (x, y): the displayed image area used.
    quad_score, quad_method:
        Detection confidence in [0, 1] and how the corners were obtained (``"manual"`` when given).
    quality:
        ``QualityReport.to_dict()`` of the capture (``None`` when quality checks are off).
    rectified, restored:
        ``float32`` H×W grey images in [0, 1] (same shape).
    score:
        Classifier output in [0, 1] for the lesion ROI: estimated probability of malignancy, or
        ``None`` when the score is withheld (see ``refusal``). Research use only — not a
        diagnosis.
    models:
        ``{"restorer": {"name", "sha256"}, "classifier": {...}, "localizer": {...}}``.
    timings_ms:
        Wall time per stage in milliseconds (``detect``, ``quality``, ``warp``, ``restore``,
        ``classify``, ``total``).
    photo_size:
        ``(width, height)`` of the photo in pixels.
    lesion:
        The lesion scored (``photorad.lesion.Lesion``, box in rectified-image pixels, ``source``
        ``"auto"`` or ``"user"``), or ``None``: none found (then ``refusal`` says so) or the
        pipeline has no localizer and scores the whole image (``roi == "whole image"``).
    refusal:
        Why there is no score (``None`` when there is one).
    roi:
        What the classifier scored: ``"lesion"`` or ``"whole image"`` (no localizer), or
        ``None`` without a score.
    """

    corners: np.ndarray
    quad_score: float
    quad_method: str
    quality: dict[str, Any] | None
    rectified: np.ndarray
    restored: np.ndarray
    score: float | None
    models: dict[str, dict[str, str]]
    timings_ms: dict[str, float]
    photo_size: tuple[int, int]
    lesion: Any = None
    refusal: Refusal | None = None
    roi: str | None = "whole image"
    disclaimer: str = DISCLAIMER

    def to_json(
        self,
        *,
        inline_images: bool = True,
        image_files: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """The JSON schema shared by ``photorad analyze`` (``result.json``) and the API.

        Parameters
        ----------
        inline_images:
            Put the rectified and restored images in the JSON as base64 8-bit PNG
            (``images.<name>.png_base64``); otherwise that field is ``null``.
        image_files:
            Optional ``{"rectified": "rectified.png", ...}``: file names written beside the JSON
            (``images.<name>.file``), used by the CLI.
        request_id:
            The service's request id (``null`` from the CLI).
        """
        from photorad.io import encode_png

        images: dict[str, Any] = {}
        for key, img in (("rectified", self.rectified), ("restored", self.restored)):
            images[key] = {
                "media_type": "image/png",
                "width": int(img.shape[1]),
                "height": int(img.shape[0]),
                # zlib level 1: measured 7x faster than level 6 on a 576x438 ultrasound image
                # for 15 % more bytes, and this is on every request's critical path.
                "png_base64": (
                    base64.b64encode(encode_png(img, compression=1)).decode("ascii")
                    if inline_images else None
                ),
                "file": (image_files or {}).get(key),
            }
        return {
            "schema": SCHEMA,
            "request_id": request_id,
            "disclaimer": self.disclaimer,
            "photo": {"width": self.photo_size[0], "height": self.photo_size[1]},
            "quad": _quad_json(self.corners, self.quad_score, self.quad_method),
            "quality": self.quality,
            "quality_warnings": quality_messages(self.quality),
            "lesion": self.lesion.to_json() if self.lesion is not None else None,
            "roi": self.roi,
            "score": None if self.score is None else round(float(self.score), 6),
            "score_meaning": "classifier's estimated probability of malignancy (0-1) for the "
            + ("whole image" if self.roi == "whole image" else "lesion region") + "; "
            + self.disclaimer,
            "refusal": self.refusal.to_json() if self.refusal is not None else None,
            "models": self.models,
            "timings_ms": _round_timings(self.timings_ms),
            "images": images,
        }


def _quad_json(corners: np.ndarray, score: float, method: str) -> dict[str, Any]:
    return {
        "corners": [[round(float(x), 3), round(float(y), 3)] for x, y in corners],
        "order": "TL,TR,BR,BL",
        "score": round(float(score), 4),
        "method": method,
    }


def _round_timings(t: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 2) for k, v in t.items()}


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _check_photo(photo: Any) -> tuple[int, int]:
    a = np.asarray(photo)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise UnsupportedImageError(
            f"photo must be a uint8 H×W×3 RGB array (use photorad.io.load_photo), "
            f"got {a.dtype} {a.shape}"
        )
    return int(a.shape[1]), int(a.shape[0])


def capped_size(corners: np.ndarray, max_side: int | None) -> tuple[int, int] | None:
    """Output ``(width, height)`` for :func:`photorad.rectify.warp`, or ``None`` for its default.

    The quad's own size is kept unless its longer side exceeds ``max_side`` pixels; then it is
    scaled down preserving the aspect ratio (restoration cost grows with the pixel count, and the
    originals are ~500-1000 px anyway).
    """
    if max_side is None:
        return None
    from photorad.rectify.geometry import quad_size

    w, h = quad_size(np.asarray(corners, dtype=np.float64))
    if max(w, h) <= max_side:
        return None
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _model_info(model: Any) -> dict[str, str]:
    return {"name": str(getattr(model, "name", type(model).__name__)),
            "sha256": str(getattr(model, "sha256", ""))}


class Pipeline:
    """Rectify → restore → find the lesion → classify its ROI, with quality checks and timings.

    Parameters
    ----------
    restorer:
        Object with ``.restore(img float32 H×W) -> float32 H×W``, ``.name`` and ``.sha256``.
    classifier:
        Object with ``.score(img float32 H×W, *, bbox=None) -> float`` in [0, 1], ``.name`` and
        ``.sha256``.
    localizer:
        Lesion localizer (``.locate(img)`` → ``photorad.lesion.LesionResult``). ``None`` scores
        the whole restored image, for a classifier trained on whole images; every output then
        says ``roi: "whole image"``. :meth:`from_defaults` always has one.
    router:
        Input router (``.check(img)`` → ``photorad.route.RouteResult``): an image that is not
        breast ultrasound raises ``NotUltrasoundError``, given corners or not. ``None``: no
        check. :meth:`from_defaults` always has one.
    quality:
        Run ``photorad.rectify.quality`` on the photo and the corners (capture warnings).
    max_side:
        Longest side of the rectified image in pixels (``None``: the quad's own size). The
        restorer is trained at the originals' scale (BUS-BRA: at most 579 px), so a 12 MP photo's
        2000 px image area is brought down to about that scale: faster and in-distribution.
    """

    def __init__(
        self,
        restorer: RestorerLike,
        classifier: ClassifierLike,
        *,
        localizer: LocalizerLike | None = None,
        router: RouterLike | None = None,
        quality: bool = True,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ) -> None:
        if max_side is not None and max_side < 16:
            raise ValueError(f"max_side must be ≥ 16 px or None, got {max_side}")
        self.restorer = restorer
        self.classifier = classifier
        self.localizer = localizer
        self.router = router
        self.quality = quality
        self.max_side = max_side

    @classmethod
    def from_defaults(cls, *, quality: bool = True, max_side: int | None = DEFAULT_MAX_SIDE,
                      restorer: RestorerLike | None = None,
                      classifier: ClassifierLike | None = None) -> Pipeline:
        """The pipeline with the CPU weights shipped in the package (checked by SHA-256).

        ``restorer`` / ``classifier`` replace the shipped ones; the localizer is always the
        shipped one.
        """
        try:
            from photorad.classify import default_classifier
            from photorad.lesion import default_localizer
            from photorad.restore import default_restorer
            from photorad.route import default_router
        except ImportError as exc:
            raise ModelError(
                f"this installation lacks a pipeline stage ({exc}); reinstall photorad"
            ) from None
        return cls(restorer or default_restorer(), classifier or default_classifier(),
                   localizer=default_localizer(), router=default_router(), quality=quality,
                   max_side=max_side)

    @property
    def models(self) -> dict[str, dict[str, str]]:
        """``{"restorer": {"name", "sha256"}, "classifier": {...}, "localizer": {...},
        "router": {...}}`` (the last two when present)."""
        out = {"restorer": _model_info(self.restorer), "classifier": _model_info(self.classifier)}
        if self.localizer is not None:
            out["localizer"] = _model_info(self.localizer)
        if self.router is not None:
            out["router"] = _model_info(self.router)
        return out

    def warmup(self, *, side: int = 256) -> float:
        """Run every model once on a synthetic image; return the ms taken.

        The first call of a model pays one-off costs (backend selection by measurement, lazy
        allocations); a server does this at start-up so that no clinician waits for it.
        """
        t0 = time.perf_counter()
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        img = (0.25 + 0.5 * (xx + yy) / (2 * side)).astype(np.float32)
        restored = np.clip(np.asarray(self.restorer.restore(img), dtype=np.float32), 0.0, 1.0)
        if self.router is not None:
            self.router.check(restored)
        if self.localizer is not None:
            self.localizer.locate(restored)
        self.classifier.score(restored)
        return _ms(t0)

    def locate(self, photo: np.ndarray, corners: Any = None) -> Located:
        """Find (or validate the given) corners of the displayed image and check capture quality.

        Raises
        ------
        NoScreenFoundError
            ``corners`` is ``None`` and no displayed image was found.
        InvalidCornersError
            The given corners are malformed, outside the photo or not convex.
        """
        from photorad import rectify

        size = _check_photo(photo)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if corners is None:
            detect = getattr(rectify, "detect", None)
            if detect is None:
                raise NoScreenFoundError(
                    "automatic screen detection is not available in this installation; "
                    "give the four corners of the image (TL, TR, BR, BL) instead"
                )
            quad = detect(photo)
            c, q_score, method = np.asarray(quad.corners, np.float64), quad.score, quad.method
            timings["detect"] = _ms(t0)
        else:
            c = rectify.validate_corners(corners, image_size=size)
            q_score, method = 1.0, "manual"
            timings["validate"] = _ms(t0)
        report = None
        quality_fn = getattr(rectify, "quality", None)
        if self.quality and quality_fn is not None:
            t0 = time.perf_counter()
            report = quality_fn(photo, c).to_dict()
            timings["quality"] = _ms(t0)
        return Located(corners=c, quad_score=float(q_score), quad_method=str(method),
                       quality=report, photo_size=size, timings_ms=timings)

    def analyze(self, photo: np.ndarray, corners: Any = None, *,
                lesion_box: Any = None) -> Analysis:
        """Run the whole pipeline on one photo.

        Parameters
        ----------
        photo:
            ``uint8`` H×W×3 RGB (from :func:`photorad.io.load_photo`).
        corners:
            Optional (4, 2) TL, TR, BR, BL photo-pixel corners of the displayed image; detected
            when ``None``.
        lesion_box:
            Optional ``(x, y, w, h)`` lesion box in rectified-image pixels (the clinician's);
            replaces the localizer's.

        Raises
        ------
        NoScreenFoundError, InvalidCornersError, UnsupportedImageError
            Bad input (see :meth:`locate`).
        InvalidLesionBoxError
            ``lesion_box`` is malformed, empty or outside the rectified image.
        NotUltrasoundError
            The restored image is not breast ultrasound (the router); corners given by hand do
            not bypass this.
        ModelError
            A model returned something outside its contract (wrong shape, NaN, out of [0, 1]).
        """
        from photorad import rectify

        t_all = time.perf_counter()
        loc = self.locate(photo, corners)
        timings = dict(loc.timings_ms)

        t0 = time.perf_counter()
        rectified = rectify.warp(photo, loc.corners, size=capped_size(loc.corners, self.max_side))
        timings["warp"] = _ms(t0)
        restored = self._restore(rectified, timings)
        self._route(restored, timings)
        lesion, refusal, roi = self._lesion(restored, lesion_box, timings)
        score = None
        if refusal is None:
            score = self._score(restored, lesion, timings)
        timings["total"] = _ms(t_all)
        return Analysis(
            corners=loc.corners,
            quad_score=loc.quad_score,
            quad_method=loc.quad_method,
            quality=loc.quality,
            rectified=rectified.astype(np.float32, copy=False),
            restored=restored,
            score=score,
            models=self.models,
            timings_ms=timings,
            photo_size=loc.photo_size,
            lesion=lesion,
            refusal=refusal,
            roi=roi,
        )

    def _restore(self, rectified: np.ndarray, timings: dict[str, float]) -> np.ndarray:
        t0 = time.perf_counter()
        restored = np.asarray(self.restorer.restore(rectified))
        timings["restore"] = _ms(t0)
        if restored.shape != rectified.shape or not np.isfinite(restored).all():
            raise ModelError(
                f"restorer {_model_info(self.restorer)['name']} returned an invalid image "
                f"(shape {restored.shape}, expected {rectified.shape}, or non-finite values)"
            )
        return np.clip(restored.astype(np.float32, copy=False), 0.0, 1.0)

    def _route(self, restored: np.ndarray, timings: dict[str, float]) -> None:
        """Refuse an image that is not breast ultrasound (``NotUltrasoundError``)."""
        if self.router is None:
            return
        from photorad.errors import NotUltrasoundError

        t0 = time.perf_counter()
        res = self.router.check(restored)
        timings["route"] = _ms(t0)
        if not res.is_ultrasound:
            raise NotUltrasoundError(res.reason)

    def _lesion(self, restored: np.ndarray, lesion_box: Any, timings: dict[str, float]
                ) -> tuple[Any, Refusal | None, str | None]:
        """The lesion to score (user box first), the refusal when there is none, and the ROI."""
        from photorad.lesion import NO_LESION_ADVICE, user_lesion

        if lesion_box is not None:
            return user_lesion(lesion_box, restored.shape), None, "lesion"
        if self.localizer is None:
            return None, None, "whole image"
        t0 = time.perf_counter()
        found = self.localizer.locate(restored)
        timings["lesion"] = _ms(t0)
        if found.lesion is None:
            return None, Refusal("lesion", f"No score: {found.reason}.", NO_LESION_ADVICE), None
        return found.lesion, None, "lesion"

    def _score(self, restored: np.ndarray, lesion: Any, timings: dict[str, float]) -> float:
        t0 = time.perf_counter()
        if lesion is None:
            score = float(self.classifier.score(restored))
        else:
            score = float(self.classifier.score(restored, bbox=lesion.box))
        timings["classify"] = _ms(t0)
        if not (np.isfinite(score) and 0.0 <= score <= 1.0):
            raise ModelError(
                f"classifier {_model_info(self.classifier)['name']} returned {score!r}, "
                "not a probability in [0, 1]"
            )
        return score
