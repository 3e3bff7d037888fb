"""Pipeline orchestration: Analysis contents, JSON schema, error handling, `photorad analyze`.

Orchestration is tested with small restorer/classifier doubles that follow the real interface;
the end-to-end test at the bottom uses the real stages (tiny real-architecture checkpoints).
"""

from __future__ import annotations

import base64
import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from photorad import DISCLAIMER
from photorad.errors import InvalidCornersError, ModelError, UnsupportedImageError
from photorad.pipeline import SCHEMA, Analysis, Pipeline, capped_size
from photorad.rectify.geometry import rect_corners
from photorad.rectify.warp import homography

TRUE_CORNERS = np.array([[150.0, 90.0], [560.0, 120.0], [540.0, 400.0], [130.0, 380.0]])


def synthetic_photo(
    corners: np.ndarray = TRUE_CORNERS, *, size: tuple[int, int] = (720, 540), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A grey gradient on a dark screen with a textured image at ``corners``; returns
    (photo uint8 RGB, the original float32)."""
    rng = np.random.default_rng(seed)
    orig = cv2.GaussianBlur(rng.random((200, 260)).astype(np.float32), (0, 0), 3)
    orig = (0.2 + 0.7 * (orig - orig.min()) / (orig.max() - orig.min())).astype(np.float32)
    w, h = size
    hm = homography(rect_corners(260, 200), corners)
    photo = np.full((h, w), 0.5, np.float32)
    pad = np.array([[-40, -40], [300, -40], [300, 240], [-40, 240]], np.float64)
    screen = cv2.perspectiveTransform(pad[None], hm)[0]
    cv2.fillConvexPoly(photo, np.round(screen).astype(np.int32), 0.04)
    warped = cv2.warpPerspective(orig, hm, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones_like(orig), hm, (w, h), flags=cv2.INTER_NEAREST)
    photo = np.where(mask > 0, warped, photo)
    rgb = np.repeat(photo[:, :, None], 3, axis=2)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8), orig


class FakeRestorer:
    name = "fake-restorer"
    sha256 = "a" * 64

    def __init__(self, fn=None) -> None:
        self.fn = fn or (lambda x: 1.0 - x)
        self.calls: list[tuple[int, ...]] = []

    def restore(self, img: np.ndarray) -> np.ndarray:
        assert img.dtype == np.float32 and img.ndim == 2
        self.calls.append(img.shape)
        return self.fn(img)


class FakeClassifier:
    name = "fake-classifier"
    sha256 = "b" * 64

    def __init__(self, value: float | None = None) -> None:
        self.value = value
        self.seen: list[np.ndarray] = []

    def score(self, img: np.ndarray) -> float:
        self.seen.append(img)
        return float(img.mean()) if self.value is None else self.value


def test_analyze_with_corners_runs_every_stage_in_order() -> None:
    photo, orig = synthetic_photo()
    restorer, classifier = FakeRestorer(), FakeClassifier()
    a = Pipeline(restorer, classifier, quality=False).analyze(photo, TRUE_CORNERS)
    assert isinstance(a, Analysis)
    np.testing.assert_allclose(a.corners, TRUE_CORNERS)
    assert a.quad_method == "manual" and a.quad_score == 1.0
    assert a.rectified.dtype == np.float32 and a.rectified.ndim == 2
    assert a.restored.shape == a.rectified.shape
    # The restorer saw the rectified image and the classifier saw the restored one.
    np.testing.assert_allclose(a.restored, 1.0 - a.rectified, atol=1e-6)
    assert classifier.seen[0] is a.restored or np.array_equal(classifier.seen[0], a.restored)
    assert a.score == pytest.approx(float(a.restored.mean()), abs=1e-6)
    # The rectified image matches the original (external reference: cv2.resize of it).
    ref = cv2.resize(orig, (a.rectified.shape[1], a.rectified.shape[0]),
                     interpolation=cv2.INTER_AREA)
    assert np.abs(a.rectified[5:-5, 5:-5] - ref[5:-5, 5:-5]).mean() < 0.05
    assert a.models == {"restorer": {"name": "fake-restorer", "sha256": "a" * 64},
                        "classifier": {"name": "fake-classifier", "sha256": "b" * 64}}
    for k in ("validate", "warp", "restore", "classify", "total"):
        assert a.timings_ms[k] >= 0
    assert a.timings_ms["total"] >= a.timings_ms["restore"]
    assert a.photo_size == (720, 540)
    assert a.disclaimer == DISCLAIMER


def test_to_json_schema_and_inline_pngs_round_trip() -> None:
    photo, _ = synthetic_photo()
    a = Pipeline(FakeRestorer(), FakeClassifier(0.25), quality=False).analyze(photo, TRUE_CORNERS)
    doc = a.to_json(request_id="r-1")
    json.dumps(doc)  # JSON-able
    assert doc["schema"] == SCHEMA and doc["request_id"] == "r-1"
    assert doc["disclaimer"] == DISCLAIMER and DISCLAIMER in doc["score_meaning"]
    assert doc["score"] == 0.25
    assert doc["quad"]["order"] == "TL,TR,BR,BL"
    np.testing.assert_allclose(doc["quad"]["corners"], TRUE_CORNERS, atol=1e-3)
    for key, img in (("rectified", a.rectified), ("restored", a.restored)):
        entry = doc["images"][key]
        png = base64.b64decode(entry["png_base64"])
        decoded = np.asarray(Image.open(io.BytesIO(png)))  # external decoder as reference
        assert decoded.shape == img.shape == (entry["height"], entry["width"])
        np.testing.assert_array_equal(decoded, np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8))
    doc2 = a.to_json(inline_images=False, image_files={"rectified": "rectified.png"})
    assert doc2["images"]["rectified"]["png_base64"] is None
    assert doc2["images"]["rectified"]["file"] == "rectified.png"
    assert doc2["images"]["restored"]["file"] is None
    assert set(doc) == set(doc2)


def test_max_side_caps_the_rectified_size() -> None:
    photo, _ = synthetic_photo()
    a = Pipeline(FakeRestorer(), FakeClassifier(), quality=False, max_side=100).analyze(
        photo, TRUE_CORNERS)
    assert max(a.rectified.shape) == 100
    assert capped_size(TRUE_CORNERS, None) is None
    assert capped_size(TRUE_CORNERS, 10_000) is None
    w, h = capped_size(TRUE_CORNERS, 200)
    assert w == 200 and 130 < h < 150  # aspect ratio of the quad kept


def test_detection_is_used_when_no_corners_given() -> None:
    from photorad import rectify

    if not hasattr(rectify, "detect"):
        pytest.skip("photorad.rectify.detect not available yet")
    photo, _ = synthetic_photo()
    a = Pipeline(FakeRestorer(), FakeClassifier(), quality=False).analyze(photo)
    assert a.quad_method != "manual"
    assert "detect" in a.timings_ms
    assert np.abs(a.corners - TRUE_CORNERS).max() < 6.0


@pytest.mark.parametrize(
    "corners",
    [
        [[0, 0], [10, 0]],  # too few numbers
        [[150, 90], [540, 400], [560, 120], [130, 380]],  # bow-tie
        [[150, 90], [5600, 120], [540, 400], [130, 380]],  # outside the photo
        [[np.nan, 90], [560, 120], [540, 400], [130, 380]],
    ],
)
def test_bad_corners_raise_invalid_corners(corners) -> None:
    photo, _ = synthetic_photo()
    with pytest.raises(InvalidCornersError):
        Pipeline(FakeRestorer(), FakeClassifier(), quality=False).analyze(photo, corners)


def test_wrong_photo_type_is_rejected() -> None:
    photo, _ = synthetic_photo()
    p = Pipeline(FakeRestorer(), FakeClassifier(), quality=False)
    with pytest.raises(UnsupportedImageError):
        p.analyze(photo.astype(np.float32) / 255, TRUE_CORNERS)
    with pytest.raises(UnsupportedImageError):
        p.analyze(photo[:, :, 0], TRUE_CORNERS)


@pytest.mark.parametrize(
    "restore_fn, score",
    [
        (lambda x: x[:-1], None),  # wrong shape
        (lambda x: np.full_like(x, np.nan), None),  # NaN
        (None, 1.5),  # not a probability
        (None, float("nan")),
    ],
)
def test_model_contract_violations_raise_model_error(restore_fn, score) -> None:
    photo, _ = synthetic_photo()
    p = Pipeline(FakeRestorer(restore_fn), FakeClassifier(score), quality=False)
    with pytest.raises(ModelError):
        p.analyze(photo, TRUE_CORNERS)


def test_restored_values_are_clipped_to_unit_range() -> None:
    photo, _ = synthetic_photo()
    a = Pipeline(FakeRestorer(lambda x: x * 3 - 1), FakeClassifier(), quality=False).analyze(
        photo, TRUE_CORNERS)
    assert a.restored.min() >= 0.0 and a.restored.max() <= 1.0


def test_quality_report_included_when_available() -> None:
    from photorad import rectify

    if not hasattr(rectify, "quality"):
        pytest.skip("photorad.rectify.quality not available yet")
    photo, _ = synthetic_photo()
    a = Pipeline(FakeRestorer(), FakeClassifier(), quality=True).analyze(photo, TRUE_CORNERS)
    assert isinstance(a.quality, dict) and a.quality["status"] in {"pass", "warn", "fail"}
    assert "quality" in a.timings_ms
    off = Pipeline(FakeRestorer(), FakeClassifier(), quality=False).analyze(photo, TRUE_CORNERS)
    assert off.quality is None


# ----- real stages ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_pipeline(tmp_path_factory):
    from tests.test_serve import tiny_real_pipeline

    return tiny_real_pipeline(tmp_path_factory.mktemp("models"))


def test_real_stages_end_to_end(real_pipeline) -> None:
    photo, orig = synthetic_photo()
    a = real_pipeline.analyze(photo, TRUE_CORNERS)
    assert 0.0 <= a.score <= 1.0
    assert a.restored.shape == a.rectified.shape
    assert len(a.models["restorer"]["sha256"]) == 64
    assert len(a.models["classifier"]["sha256"]) == 64
    # Same input, same result (no hidden randomness).
    b = real_pipeline.analyze(photo, TRUE_CORNERS)
    assert a.score == b.score
    np.testing.assert_array_equal(a.restored, b.restored)


def test_cli_analyze_writes_result_png_and_same_schema(tmp_path, monkeypatch, real_pipeline,
                                                       capsys) -> None:
    from photorad.cli import main
    from photorad.io import save_png

    photo, _ = synthetic_photo()
    src = save_png(tmp_path / "photo.png", photo)
    monkeypatch.setattr(Pipeline, "from_defaults",
                        classmethod(lambda cls, **kw: real_pipeline))
    corners = ",".join(str(v) for v in TRUE_CORNERS.ravel())
    out = tmp_path / "out"
    assert main(["analyze", str(src), "-o", str(out), "--corners", corners]) == 0
    doc = json.loads((out / "result.json").read_text())
    api_doc = real_pipeline.analyze(photo, TRUE_CORNERS).to_json()
    assert set(doc) == set(api_doc) and doc["schema"] == SCHEMA
    assert doc["images"]["restored"]["file"] == "restored.png"
    assert doc["images"]["restored"]["png_base64"] is None
    restored = cv2.imread(str(out / "restored.png"), cv2.IMREAD_UNCHANGED)
    assert restored.shape == (doc["images"]["restored"]["height"],
                              doc["images"]["restored"]["width"])
    assert (out / "rectified.png").is_file()
    assert doc["score"] == pytest.approx(api_doc["score"], abs=1e-6)
    assert DISCLAIMER in capsys.readouterr().out


def test_cli_analyze_bad_corners_is_a_clean_error(tmp_path, monkeypatch, real_pipeline,
                                                  capsys) -> None:
    from photorad.cli import main
    from photorad.io import save_png

    photo, _ = synthetic_photo()
    src = save_png(tmp_path / "photo.png", photo)
    monkeypatch.setattr(Pipeline, "from_defaults",
                        classmethod(lambda cls, **kw: real_pipeline))
    code = main(["analyze", str(src), "-o", str(tmp_path / "o"),
                 "--corners", "0,0,5000,0,5000,5000,0,5000"])
    assert code == InvalidCornersError.exit_code
    err = capsys.readouterr().err
    assert "outside" in err and "Traceback" not in err


def test_quality_messages_list_failed_checks_worst_first() -> None:
    from photorad.pipeline import quality_messages

    report = {
        "status": "fail",
        "blur": {"value": 0.3, "status": "pass", "unit": "px"},
        "exposure": {"value": 0.3, "status": "warn", "unit": "luma"},
        "keystone": {"value": 41.0, "status": "fail", "unit": "deg"},
        "mystery": {"value": None, "status": "warn", "unit": "", "note": "no edge"},
    }
    msgs = quality_messages(report)
    assert [m["check"] for m in msgs] == ["keystone", "exposure", "mystery"]
    assert "parallel" in msgs[0]["message"] and msgs[0]["value"] == 41.0
    assert "no edge" in msgs[2]["message"]
    assert quality_messages(None) == [] and quality_messages({"status": "pass"}) == []


def test_warmup_calls_both_models() -> None:
    restorer, classifier = FakeRestorer(), FakeClassifier()
    ms = Pipeline(restorer, classifier).warmup(side=32)
    assert ms >= 0 and restorer.calls == [(32, 32)] and len(classifier.seen) == 1


def test_locate_json_schema() -> None:
    photo, _ = synthetic_photo()
    loc = Pipeline(FakeRestorer(), FakeClassifier(), quality=False).locate(photo, TRUE_CORNERS)
    doc = loc.to_json()
    json.dumps(doc)
    assert doc["photo"] == {"width": 720, "height": 540}
    assert doc["quad"]["method"] == "manual" and doc["quality"] is None
    assert doc["quality_warnings"] == []
    np.testing.assert_allclose(doc["quad"]["corners"], TRUE_CORNERS, atol=1e-3)


def test_from_defaults_uses_the_shipped_weights() -> None:
    from photorad.models.weights import shipped_weights
    from photorad.provenance import sha256_file

    shipped = shipped_weights()
    if not {"restorer", "classifier"} <= set(shipped):
        pytest.skip(f"shipped weights incomplete in this installation: {sorted(shipped)}")
    pipe = Pipeline.from_defaults()
    assert pipe.models["restorer"]["sha256"] == sha256_file(shipped["restorer"])
    assert pipe.models["classifier"]["sha256"] == sha256_file(shipped["classifier"])
    assert {"localizer", "router"} <= set(pipe.models)
    photo, _ = synthetic_photo()
    from photorad.errors import NotUltrasoundError

    with pytest.raises(NotUltrasoundError):  # blurred noise is not breast ultrasound
        pipe.analyze(photo, TRUE_CORNERS)
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import load_original
    from photorad.simulate import simulate_photo

    rec = load_records(sample_dir())[0]
    sim = simulate_photo(load_original(rec.path), preset="ideal", seed=0, size=(1024, 768))
    a = pipe.analyze(sim.photo, sim.corners)
    assert a.restored.shape == a.rectified.shape
    assert (a.score is None) == (a.refusal is not None)
    assert a.score is None or 0.0 <= a.score <= 1.0


def test_quality_messages_give_advice_for_a_missing_image_edge() -> None:
    from types import SimpleNamespace

    from photorad.pipeline import quality_messages
    from photorad.rectify.quality import _edges_check

    def message(**details: list[str]) -> str:
        check = _edges_check(SimpleNamespace(details={"edges_not_found": [], **details}))
        assert check is not None and check.status == "warn"
        (msg,) = quality_messages({"edges": check.to_dict()})
        assert msg["check"] == "edges" and "did not pass" not in msg["message"]
        return msg["message"]

    unseen = message(edges_not_found=["bottom"])
    assert "bottom" in unseen and "window level" in unseen
    # A quad that may be the whole lit screen needs other advice than an unseen border.
    screen = message(screen_edge_sides=["left", "right"])
    assert "whole screen" in screen and "left and right" in screen and "window level" not in screen
    # A report without a note (older JSON) still gets the generic advice.
    (msg,) = quality_messages({"edges": {"status": "warn", "value": 3, "unit": "sides found"}})
    assert "window level" in msg["message"]
