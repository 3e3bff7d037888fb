"""Input router: threshold logic, refusal error and message, input contracts, the shipped weights
(hash, sidecar threshold, ultrasound passes, non-ultrasound refused)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from photorad.errors import (
    ConfigError,
    CorruptImageError,
    ImageTooSmallError,
    ModelError,
    NotUltrasoundError,
    PhotoradError,
    UnsupportedImageError,
)
from photorad.route import (
    MIN_SCORE,
    SHIPPED_SHA256,
    Router,
    RouteResult,
    RouteSpec,
    ensure_ultrasound,
    network_input,
    route,
)


class ConstLogit(nn.Module):
    """Gives the same logit for every image (and checks the input it gets)."""

    def __init__(self, logit: float, side: int = 64) -> None:
        super().__init__()
        self.logit = float(logit)
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (1, self.side, self.side) and x.dtype == torch.float32
        return torch.full((x.shape[0], 1), self.logit)


def fake_router(p: float, *, threshold: float = 0.5) -> Router:
    logit = float(np.log(p / (1 - p)))
    return Router(ConstLogit(logit), spec=RouteSpec(side=64), name="fake", sha256=None,
                  threshold=threshold)


IMG = np.full((80, 100), 0.3, np.float32)


# ----- errors and threshold logic ------------------------------------------------------------


def test_not_ultrasound_error_codes() -> None:
    assert issubclass(NotUltrasoundError, PhotoradError)
    assert NotUltrasoundError.exit_code == 7
    assert NotUltrasoundError.http_status == 422


@pytest.mark.parametrize(("p", "thr", "ok"), [(0.9, 0.5, True), (0.2, 0.5, False),
                                               (0.05, 0.04, True), (0.03, 0.04, False)])
def test_check_compares_score_with_threshold(p: float, thr: float, ok: bool) -> None:
    res = fake_router(p, threshold=thr).check(IMG)
    assert isinstance(res, RouteResult)
    assert res.is_ultrasound is ok
    assert res.score == pytest.approx(p, abs=1e-5)
    assert (res.reason is None) is ok


def test_score_at_the_threshold_passes() -> None:
    r = fake_router(0.5, threshold=0.5)
    assert r.score(IMG) == pytest.approx(0.5)
    assert r.check(IMG).is_ultrasound


def test_ensure_ultrasound_refuses_with_advice() -> None:
    with pytest.raises(NotUltrasoundError) as ei:
        ensure_ultrasound(IMG, router=fake_router(0.03))
    msg = str(ei.value)
    assert "does not look like a breast-ultrasound image (score 0.03)" in msg
    assert "Photograph the ultrasound image" in msg and "breast ultrasound only" in msg


def test_ensure_ultrasound_returns_the_result_when_it_passes() -> None:
    res = ensure_ultrasound(IMG, router=fake_router(0.97))
    assert res.is_ultrasound and res.reason is None
    assert res.to_json() == {"is_ultrasound": True, "score": pytest.approx(0.97, abs=1e-4),
                             "reason": None}


def test_scores_batch_matches_single() -> None:
    r = fake_router(0.7)
    s = r.scores([IMG, IMG[:40, :50]])
    assert s.shape == (2,) and np.allclose(s, r.score(IMG))
    assert r.scores([]).shape == (0,)


def test_invalid_model_output_is_a_model_error() -> None:
    r = fake_router(0.7)
    r.model.logit = float("nan")
    with pytest.raises(ModelError):
        r.score(IMG)


@pytest.mark.parametrize("thr", [-0.1, 1.5])
def test_threshold_must_be_a_probability(thr: float) -> None:
    with pytest.raises(ConfigError):
        fake_router(0.5, threshold=thr)


def test_spec_is_validated() -> None:
    assert RouteSpec.from_dict({"side": 96}).side == 96
    with pytest.raises(ConfigError):
        RouteSpec.from_dict({"side": 100})
    with pytest.raises(ConfigError):
        RouteSpec.from_dict({"colour": True})


def test_network_input_normalises_and_resizes() -> None:
    x = network_input(np.full((300, 200), 0.75, np.float32), spec=RouteSpec(side=64))
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert np.allclose(x, (0.75 - 0.5) / 0.25)


# ----- input contracts -----------------------------------------------------------------------


@pytest.mark.parametrize(("img", "err"), [
    ([[0.1, 0.2], [0.3, 0.4]], UnsupportedImageError),
    (np.zeros((40, 40, 3), np.float32), UnsupportedImageError),
    (np.zeros((40, 40), np.uint8), UnsupportedImageError),
    (np.zeros((8, 100), np.float32), ImageTooSmallError),
    (np.full((40, 40), np.nan, np.float32), CorruptImageError),
])
def test_bad_input_is_refused_with_the_right_error(img, err) -> None:
    r = fake_router(0.9)
    with pytest.raises(err):
        r.check(img)
    with pytest.raises(err):
        ensure_ultrasound(img, router=r)


# ----- shipped weights -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Router:
    from photorad.models.weights import shipped_weights
    from photorad.route import default_router

    if "router" not in shipped_weights():
        pytest.skip("shipped router weights missing")
    return default_router()


def test_shipped_hash_constant_and_sidecar(shipped) -> None:
    from photorad.models.checkpoint import read_meta
    from photorad.models.weights import shipped_path
    from photorad.provenance import sha256_file

    path = shipped_path("router")
    assert SHIPPED_SHA256 == sha256_file(path) == shipped.sha256
    assert path.stat().st_size <= 2_000_000
    meta = read_meta(path)
    assert meta.task == "route"
    # The module constant is the rule's output written by train/train_router.py.
    assert meta.extra["threshold"] == pytest.approx(MIN_SCORE)
    assert shipped.threshold == MIN_SCORE


def test_default_router_is_cached(shipped) -> None:
    from photorad.route import default_router

    assert default_router() is shipped


def test_shipped_weights_hash_is_checked(tmp_path, shipped) -> None:
    from photorad.models.weights import shipped_path

    src = shipped_path("router")
    dst = tmp_path / "router.safetensors"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    Router.from_checkpoint(dst, expected_sha256=SHIPPED_SHA256)  # an intact copy loads
    with pytest.raises(ModelError):
        Router.from_checkpoint(dst, expected_sha256="0" * 64)


def test_shipped_router_passes_sample_ultrasound(shipped) -> None:
    from photorad.data.paths import sample_dir
    from photorad.io import load_original

    paths = sorted((sample_dir() / "Images").glob("*.png"))[:6]
    assert len(paths) == 6
    for p in paths:
        res = route(load_original(p), router=shipped)
        assert res.is_ultrasound, (p.name, res)
        ensure_ultrasound(load_original(p), router=shipped)


@pytest.mark.parametrize("name", ["camera", "text", "coffee"])
def test_shipped_router_refuses_skimage_images(shipped, name: str) -> None:
    import skimage.data as skd

    a = getattr(skd, name)()
    if a.ndim == 3:
        a = a @ np.array([0.299, 0.587, 0.114])
    img = (a / 255.0).astype(np.float32)
    with pytest.raises(NotUltrasoundError):
        ensure_ultrasound(img, router=shipped)


def test_shipped_router_refuses_a_flat_image(shipped) -> None:
    res = route(np.full((300, 400), 0.4, np.float32), router=shipped)
    assert not res.is_ultrasound and "breast-ultrasound" in res.reason


# ----- the pipeline and the service refuse what is not ultrasound ------------------------------


class _RefusingRouter:
    name = "refusing-router"
    sha256 = "e" * 64

    def check(self, img):
        from photorad.route import RouteResult, refusal_reason

        return RouteResult(False, 0.01, refusal_reason(0.01))


def _refusing_pipeline():
    from photorad.pipeline import Pipeline
    from tests.test_lesion import BoxClassifier, FixedLocalizer
    from tests.test_pipeline import FakeRestorer

    clf = BoxClassifier()
    return Pipeline(FakeRestorer(), clf, localizer=FixedLocalizer((5, 5, 20, 20)),
                    router=_RefusingRouter(), quality=False), clf


def test_pipeline_refuses_non_ultrasound_even_with_manual_corners() -> None:
    from photorad.errors import NotUltrasoundError
    from tests.test_pipeline import TRUE_CORNERS, synthetic_photo

    pipe, clf = _refusing_pipeline()
    with pytest.raises(NotUltrasoundError, match="does not look like a breast-ultrasound"):
        pipe.analyze(synthetic_photo()[0], TRUE_CORNERS)
    with pytest.raises(NotUltrasoundError):
        pipe.analyze(synthetic_photo()[0], TRUE_CORNERS, lesion_box=(5, 5, 20, 20))
    assert clf.boxes == []  # never scored


def test_api_answers_422_not_ultrasound() -> None:
    pytest.importorskip("fastapi")
    from tests.test_lesion import _post_analyze
    from tests.test_serve import assert_json_error, make_client

    pipe, _ = _refusing_pipeline()
    with make_client(pipe) as client:
        body = assert_json_error(_post_analyze(client, {}), 422)
    assert body["error"]["type"] == "NotUltrasoundError"
    assert "Photograph the ultrasound image" in body["error"]["message"]


def test_from_defaults_routes() -> None:
    from photorad.pipeline import Pipeline

    pipe = Pipeline.from_defaults(quality=False)
    assert pipe.router is not None and "router" in pipe.models
