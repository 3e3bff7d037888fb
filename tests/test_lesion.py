"""Lesion localizer: post-processing, user boxes, input contracts, the shipped weights, the CLIs,
and the pipeline's lesion step (auto box, user box, refusal without a lesion)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from photorad.errors import (
    ConfigError,
    CorruptImageError,
    ImageTooSmallError,
    InvalidLesionBoxError,
    UnsupportedImageError,
)
from photorad.lesion import (
    Lesion,
    LesionResult,
    LesionSpec,
    Localizer,
    box_of,
    lesion_from_prob,
    outline,
    user_lesion,
)


def blob_prob(shape=(120, 160), centre=(90, 60), axes=(30, 18), peak=0.95) -> np.ndarray:
    p = np.full(shape, 0.02, np.float32)
    cv2.ellipse(p, centre, axes, 0, 0, 360, float(peak), -1)
    return p


# ----- post-processing -----------------------------------------------------------------------


def test_lesion_from_prob_box_and_confidence() -> None:
    res = lesion_from_prob(blob_prob())
    assert res.reason is None and res.lesion is not None
    x, y, w, h = res.lesion.box
    assert (x, y, w, h) == (60, 42, 61, 37)  # the ellipse's pixel extent
    assert res.lesion.confidence == pytest.approx(0.95, abs=1e-6)
    assert res.lesion.mask.shape == (120, 160) and res.lesion.source == "auto"


def test_lesion_from_prob_keeps_the_most_probable_area_not_the_surest_speck() -> None:
    p = blob_prob(peak=0.8)
    p[5:8, 5:8] = 0.99  # tiny but sure
    res = lesion_from_prob(p, min_area_fraction=0.0)
    assert res.lesion is not None and res.lesion.box[0] == 60


@pytest.mark.parametrize("prob, words", [
    (np.full((64, 64), 0.1, np.float32), "no lesion found"),
    (blob_prob(axes=(1, 1)), "speck"),
    (blob_prob(peak=0.6), "unsure"),
])
def test_lesion_from_prob_refuses_with_a_reason(prob, words) -> None:
    res = lesion_from_prob(prob)
    assert res.lesion is None and words in res.reason


def test_outline_follows_the_area() -> None:
    m = np.zeros((50, 60), bool)
    m[10:30, 20:45] = True
    pts = np.array(outline(m))
    assert pts[:, 0].min() == 20 and pts[:, 0].max() == 44
    assert pts[:, 1].min() == 10 and pts[:, 1].max() == 29
    big = lesion_from_prob(blob_prob(shape=(400, 500), centre=(250, 200), axes=(150, 90)))
    assert 3 <= len(big.lesion.to_json()["outline"]) <= 64


def test_user_lesion_is_clipped_and_checked() -> None:
    les = user_lesion([-5, 10.4, 30, 500], (100, 80))
    assert les.box == (0, 10, 25, 90) and les.source == "user" and les.confidence == 1.0
    assert les.mask.sum() == 25 * 90
    for bad in ([1, 2, 3], [0, 0, 0, 5], [200, 10, 5, 5], [0, 0, float("nan"), 3], "a,b,c,d"):
        with pytest.raises(InvalidLesionBoxError):
            user_lesion(bad, (100, 80))


def test_box_of() -> None:
    m = np.zeros((10, 10), bool)
    m[2:5, 3:9] = True
    assert box_of(m) == (3, 2, 6, 3)


# ----- the network and its contract ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_localizer():
    import torch

    from photorad.models import create_model

    torch.manual_seed(0)
    net = create_model("lesionseg_s", widths=(8, 8, 16, 16, 16), dec_widths=(16, 8, 8, 8))
    return Localizer(net, spec=LesionSpec(side=64), name="tiny", sha256=None)


def test_localizer_maps_any_size_to_a_probability_map(tiny_localizer) -> None:
    img = np.random.default_rng(0).random((77, 131)).astype(np.float32)
    p = tiny_localizer.prob(img)
    assert p.shape == (77, 131) and p.dtype == np.float32
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert isinstance(tiny_localizer.locate(img), LesionResult)


@pytest.mark.parametrize("img, err", [
    (np.zeros((40, 40, 3), np.float32), UnsupportedImageError),
    (np.zeros((40, 40), np.uint8), UnsupportedImageError),
    (np.zeros((8, 40), np.float32), ImageTooSmallError),
    (np.full((40, 40), np.nan, np.float32), CorruptImageError),
    ([[0.0] * 40] * 40, UnsupportedImageError),
])
def test_localizer_rejects_bad_input(tiny_localizer, img, err) -> None:
    with pytest.raises(err):
        tiny_localizer.locate(img)


def test_encoder_takes_the_classifier_weights() -> None:
    from photorad.models import create_model

    clf = create_model("sepnet")
    net = create_model("lesionseg_s")
    state = {k: v for k, v in clf.state_dict().items() if not k.startswith("fc.")}
    assert not net.load_state_dict(state, strict=False).unexpected_keys
    import torch

    assert net(torch.zeros(2, 1, 64, 96)).shape == (2, 1, 64, 96)


def test_lesion_spec_rejects_bad_options() -> None:
    with pytest.raises(ConfigError):
        LesionSpec.from_dict({"side": 100})
    with pytest.raises(ConfigError):
        LesionSpec.from_dict({"colour": 1})


def test_mask_of_the_wrong_size_is_a_clear_error(tmp_path) -> None:
    from photorad.data.lesion_masks import load_mask
    from photorad.io import save_png

    save_png(tmp_path / "mask_0001-l.png", np.zeros((30, 40), np.uint8))
    assert load_mask(tmp_path / "mask_0001-l.png", shape=(30, 40)).shape == (30, 40)
    with pytest.raises(ConfigError, match="mask_0001-l.png is 40×30 px but its image is 50×30"):
        load_mask(tmp_path / "mask_0001-l.png", shape=(30, 50))
    with pytest.raises(ConfigError, match="missing.png"):
        load_mask(tmp_path / "missing.png")


# ----- the shipped weights on the embedded sample -------------------------------------------


def _box_iou(a, b) -> float:
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def shipped():
    from photorad.lesion import default_localizer

    return default_localizer()


def test_shipped_localizer_finds_the_sample_lesions(shipped) -> None:
    """The embedded sample's patients are held out of the localizer's training."""
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import load_original

    recs = load_records(sample_dir())
    assert not {r.group for r in recs} - set(shipped.held_out)
    ious = []
    for r in recs:
        les = shipped.find(load_original(r.path))
        ious.append(0.0 if les is None else _box_iou(les.box, r.bbox))
    assert np.median(ious) >= 0.6, ious
    assert sum(i >= 0.5 for i in ious) >= 14, ious


def test_shipped_localizer_refuses_a_flat_image(shipped) -> None:
    res = shipped.locate(np.full((300, 400), 0.4, np.float32))
    assert res.lesion is None and res.reason


def test_shipped_weights_hash_is_checked(tmp_path) -> None:
    import shutil

    from photorad.errors import ModelError
    from photorad.models.weights import shipped_path

    src = shipped_path("lesion")
    dst = tmp_path / "lesion.safetensors"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    with pytest.raises(ModelError):
        Localizer.from_checkpoint(dst, expected_sha256="0" * 64)


# ----- CLIs -----------------------------------------------------------------------------------


def _sample_paths(n: int):
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir

    return load_records(sample_dir())[:n]


def test_lesion_cli_writes_json_and_masks(tmp_path, capsys) -> None:
    from photorad.cli import main

    recs = _sample_paths(3)
    flat = tmp_path / "flat.png"
    from photorad.io import save_png

    save_png(flat, np.full((200, 300), 0.4, np.float32))
    out = tmp_path / "lesions.json"
    rc = main(["lesion", *[str(r.path) for r in recs], str(flat), "--json", str(out),
               "--masks", str(tmp_path / "masks")])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and [json.loads(line) for line in capsys.readouterr().out.splitlines()
                               if line.startswith("{")] == rows
    for r, row in zip(recs, rows[:3], strict=True):
        assert set(row) >= {"image", "box", "confidence", "mask"}
        if row["box"] is None:
            continue
        m = cv2.imread(str(tmp_path / "masks" / row["mask"]), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(r.path), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.shape == img.shape[:2]
        assert set(np.unique(m)) <= {0, 255}
        assert row["mask"] == f"{r.path.stem}_lesion.png"
    assert rows[3]["box"] is None and rows[3]["mask"] is None and rows[3]["reason"]


def test_lesion_cli_keeps_going_past_a_bad_file(tmp_path, capsys) -> None:
    from photorad.cli import main

    rec = _sample_paths(1)[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "l.json"
    assert main(["lesion", str(bad), str(rec.path), "--json", str(out)]) == 2
    rows = json.loads(out.read_text())
    assert "error" in rows[0] and rows[0]["box"] is None
    assert rows[1]["image"] == str(rec.path) and "error" not in rows[1]


def test_classify_cli_scores_the_found_lesion_roi(tmp_path, capsys) -> None:
    from photorad.cli import main

    rec = _sample_paths(1)[0]
    assert main(["classify", str(rec.path)]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["roi"] == "lesion" and len(row["lesion"]["box"]) == 4
    assert 0 <= row["score"] <= 1
    assert main(["classify", str(rec.path), "--whole"]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert whole["roi"] == "whole image" and whole["score"] != row["score"]
    from photorad.io import save_png

    flat = tmp_path / "flat.png"
    save_png(flat, np.full((200, 300), 0.4, np.float32))
    assert main(["classify", str(flat)]) == 6
    none = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert none["score"] is None and none["refusal"]["stage"] == "lesion"


# ----- pipeline -------------------------------------------------------------------------------


class BoxClassifier:
    name = "box-classifier"
    sha256 = "c" * 64

    def __init__(self) -> None:
        self.boxes: list = []

    def score(self, img, *, bbox=None) -> float:
        self.boxes.append(bbox)
        return 0.3


class FixedLocalizer:
    name = "fixed-localizer"
    sha256 = "d" * 64

    def __init__(self, box=None) -> None:
        self.box = box

    def locate(self, img):
        if self.box is None:
            return LesionResult(None, "no lesion found in the image", 0.0,
                                np.zeros(img.shape, np.float32))
        m = np.zeros(img.shape, bool)
        x, y, w, h = self.box
        m[y:y + h, x:x + w] = True
        return LesionResult(Lesion(self.box, 0.9, m), None, 0.9, m.astype(np.float32))


def _pipeline(box):
    from photorad.pipeline import Pipeline
    from tests.test_pipeline import FakeRestorer

    clf = BoxClassifier()
    return Pipeline(FakeRestorer(), clf, localizer=FixedLocalizer(box), quality=False), clf


def test_pipeline_scores_the_found_lesion() -> None:
    from tests.test_pipeline import TRUE_CORNERS, synthetic_photo

    pipe, clf = _pipeline((20, 30, 40, 25))
    a = pipe.analyze(synthetic_photo()[0], TRUE_CORNERS)
    assert clf.boxes == [(20, 30, 40, 25)] and a.score == 0.3 and a.roi == "lesion"
    doc = a.to_json(inline_images=False)
    assert doc["lesion"]["box"] == [20, 30, 40, 25] and doc["lesion"]["source"] == "auto"
    assert doc["refusal"] is None and "lesion" in a.timings_ms
    assert "localizer" in doc["models"]


def test_pipeline_without_a_lesion_gives_no_score_and_says_why() -> None:
    from tests.test_pipeline import TRUE_CORNERS, synthetic_photo

    pipe, clf = _pipeline(None)
    a = pipe.analyze(synthetic_photo()[0], TRUE_CORNERS)
    assert a.score is None and clf.boxes == []
    doc = a.to_json(inline_images=True)
    assert doc["score"] is None and doc["lesion"] is None and doc["roi"] is None
    assert doc["refusal"]["stage"] == "lesion"
    assert "no lesion" in doc["refusal"]["reason"] and "mark the lesion" in doc["refusal"]["advice"]
    assert doc["images"]["restored"]["png_base64"]  # the user can still mark it


def test_pipeline_user_box_overrides_and_is_checked() -> None:
    from tests.test_pipeline import TRUE_CORNERS, synthetic_photo

    pipe, clf = _pipeline(None)
    photo = synthetic_photo()[0]
    a = pipe.analyze(photo, TRUE_CORNERS, lesion_box=(10, 12, 50, 40))
    assert clf.boxes == [(10, 12, 50, 40)] and a.lesion.source == "user" and a.score == 0.3
    with pytest.raises(InvalidLesionBoxError):
        pipe.analyze(photo, TRUE_CORNERS, lesion_box=(5000, 0, 10, 10))


def test_analyze_cli_lesion_box_and_refusal_exit_code(tmp_path, monkeypatch) -> None:
    from photorad.cli import main
    from photorad.io import save_jpeg
    from photorad.pipeline import Pipeline
    from tests.test_pipeline import TRUE_CORNERS, FakeRestorer, synthetic_photo

    photo = tmp_path / "p.jpg"
    save_jpeg(photo, synthetic_photo()[0])

    def fake_defaults(**kw):
        return Pipeline(FakeRestorer(), BoxClassifier(), localizer=FixedLocalizer(None),
                        quality=False)

    monkeypatch.setattr(Pipeline, "from_defaults", staticmethod(fake_defaults))
    corners = ",".join(str(v) for v in TRUE_CORNERS.ravel())
    assert main(["analyze", str(photo), "-o", str(tmp_path / "a"), "--corners", corners]) == 6
    doc = json.loads((tmp_path / "a" / "result.json").read_text())
    assert doc["score"] is None and doc["refusal"]["stage"] == "lesion"
    assert (tmp_path / "a" / "restored.png").is_file()
    assert main(["analyze", str(photo), "-o", str(tmp_path / "b"), "--corners", corners,
                 "--lesion-box", "5,6,40,30"]) == 0
    doc = json.loads((tmp_path / "b" / "result.json").read_text())
    assert doc["score"] == 0.3 and doc["lesion"]["box"] == [5, 6, 40, 30]
    assert doc["lesion"]["source"] == "user"


# ----- the trainer ----------------------------------------------------------------------------


@pytest.mark.full_data
@pytest.mark.slow
def test_train_lesion_runs_and_keeps_test_patients_out(bus_bra_root, tmp_path) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    import train_lesion

    from photorad.data.bus_bra import load_records
    from photorad.models.checkpoint import read_meta

    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["-c", "train/configs/lesion_cpu.yaml", "--data-root", str(bus_bra_root),
            "--limit", "40", "--iters", "2", "--val-every", "1", "--workers", "1",
            "--photo-size", "640x480", "--out", str(out), "--cache", str(cache)]
    assert train_lesion.main(argv) == 0
    meta = read_meta(out / "best.safetensors")
    assert meta.task == "lesion" and meta.extra["spec"]["side"] == 160
    held = set(meta.extra["held_out_patients"])
    train, val = train_lesion.split_pool(load_records(bus_bra_root), 0)
    assert not held & {r.group for r in train + val}
    assert not {r.group for r in train} & {r.group for r in val}
    for name in ("history.csv", "metrics.json", "run_info.json"):
        assert (out / name).is_file()
    loc = Localizer.from_checkpoint(out / "best.safetensors")
    assert loc.prob(np.full((100, 120), 0.3, np.float32)).shape == (100, 120)


# ----- the service ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesion_client(tmp_path_factory):
    pytest.importorskip("fastapi")
    from photorad.pipeline import Pipeline
    from tests.test_pipeline import FakeRestorer
    from tests.test_serve import make_client

    pipe = Pipeline(FakeRestorer(), BoxClassifier(), localizer=FixedLocalizer(None), quality=False)
    with make_client(pipe) as c:
        yield c


def _post_analyze(client, fields):
    from photorad.io import encode_jpeg
    from tests.test_pipeline import synthetic_photo
    from tests.test_serve import KEY, corners_json

    data = {"corners": corners_json(), **fields}
    return client.post("/v1/analyze", files={"photo": ("p.jpg", encode_jpeg(synthetic_photo()[0]),
                                                       "image/jpeg")},
                       data=data, headers={"X-API-Key": KEY})


def test_api_refusal_then_user_box(lesion_client) -> None:
    r = _post_analyze(lesion_client, {})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["score"] is None and doc["refusal"]["stage"] == "lesion" and doc["lesion"] is None
    for box in ("[10, 12, 50, 40]", "10,12,50,40", '{"box": [10, 12, 50, 40]}'):
        doc = _post_analyze(lesion_client, {"lesion_box": box}).json()
        assert doc["score"] == 0.3 and doc["refusal"] is None
        assert doc["lesion"]["box"] == [10, 12, 50, 40] and doc["lesion"]["source"] == "user"
        assert doc["roi"] == "lesion"


@pytest.mark.parametrize("box", ["[1, 2, 3]", "[0, 0, 0, 5]", "[9000, 0, 10, 10]", "a,b,c,d",
                                 "[true, 1, 2, 3]", '["1", 2, 3, 4]'])
def test_api_bad_lesion_box_is_422(lesion_client, box) -> None:
    from tests.test_serve import assert_json_error

    body = assert_json_error(_post_analyze(lesion_client, {"lesion_box": box}), 422)
    assert body["error"]["type"] == "InvalidLesionBoxError"
