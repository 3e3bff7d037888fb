"""Classifier stage: models, preprocessing, augmentation, training, shipped weights, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from photorad import DISCLAIMER
from photorad.classify import (
    Classifier,
    PreprocessSpec,
    TrainConfig,
    default_classifier,
    fit,
    normalise,
    prepare_image,
    roi_box,
)
from photorad.data.augment import AugmentConfig, augment
from photorad.data.bus_bra import load_records
from photorad.data.cls_dataset import ClsDataset
from photorad.errors import (
    ConfigError,
    CorruptImageError,
    ImageTooSmallError,
    ModelError,
    UnsupportedImageError,
)
from photorad.metrics import auroc
from photorad.models import create_model, list_models
from photorad.models.checkpoint import read_meta
from photorad.models.weights import WEIGHTS_DIR

SHIPPED = WEIGHTS_DIR / "classifier_cpu.safetensors"
needs_weights = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped classifier missing")


# ---------------------------------------------------------------- models


@pytest.mark.parametrize(("name", "size"), [("sepnet", 64), ("xception", 96)])
def test_registry_builds_one_channel_binary_models(name: str, size: int) -> None:
    assert name in list_models()
    torch.manual_seed(0)
    net = create_model(name).eval()
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1
    with torch.inference_mode():
        out = net(torch.randn(2, 1, size, size))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()


def test_sepnet_is_small() -> None:
    n = sum(p.numel() for p in create_model("sepnet").parameters())
    assert n * 4 < 5e6  # float32 bytes: well under the 5 MB shipping target


def test_load_pretrained_checks_hash_and_folds_rgb_stem(tmp_path) -> None:
    from photorad.models.classifier import load_pretrained
    from photorad.provenance import sha256_file

    src = create_model("sepnet", in_chans=3, num_classes=10)
    path = tmp_path / "rgb.pth"
    torch.save(src.state_dict(), path)
    dst = create_model("sepnet")
    with pytest.raises(ModelError, match="SHA-256"):
        load_pretrained(dst, path, sha256="0" * 64)
    report = load_pretrained(dst, path, sha256=sha256_file(path))
    assert "stem.0.weight" in report["adapted"]
    assert "fc.weight" in report["skipped"]  # 10 classes vs 1 logit
    expected = src.state_dict()["stem.0.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(dst.state_dict()["stem.0.weight"], expected)
    assert torch.equal(dst.state_dict()["blocks.0.body.0.pw.weight"],
                       src.state_dict()["blocks.0.body.0.pw.weight"])


# ---------------------------------------------------------------- preprocessing


def test_roi_box_is_square_inside_and_contains_bbox() -> None:
    for bbox in [(10, 20, 30, 40), (0, 0, 50, 10), (180, 90, 19, 9), (5, 5, 190, 95)]:
        x0, y0, x1, y1 = roi_box((100, 200), bbox, margin=0.25)
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100
        x, y, w, h = bbox
        assert x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1
        side = max(w, h) * 1.5
        assert x1 - x0 == min(200, round(side)) or x1 - x0 == 200
        assert y1 - y0 == min(100, round(side)) or y1 - y0 == 100
    with pytest.raises(ConfigError):
        roi_box((100, 200), (250, 10, 5, 5), margin=0.1)


def test_prepare_image_area_downscale_matches_block_mean(rng) -> None:
    img = rng.random((64, 64), dtype=np.float32)
    out = prepare_image(img, spec=PreprocessSpec(size=32, roi=False))
    ref = img.reshape(32, 2, 32, 2).mean(axis=(1, 3))  # exact 2× area average
    assert out.dtype == np.float32 and out.shape == (32, 32)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_prepare_image_crops_the_roi(rng) -> None:
    img = np.zeros((100, 100), dtype=np.float32)
    img[40:60, 40:60] = 1.0  # the "lesion"
    spec = PreprocessSpec(size=32, roi=True, margin=0.0)
    out = prepare_image(img, spec=spec, bbox=(40, 40, 20, 20))
    assert out.min() > 0.99  # the crop is the box only
    whole = prepare_image(img, spec=spec)  # no bbox: whole image
    assert whole.mean() == pytest.approx(0.04, abs=0.01)


@pytest.mark.parametrize(
    ("bad", "err"),
    [
        (np.zeros((64, 64, 3), dtype=np.uint8), UnsupportedImageError),
        (np.zeros((64, 64), dtype=np.uint8), UnsupportedImageError),
        (np.zeros((8, 64), dtype=np.float32), ImageTooSmallError),
        (np.full((64, 64), np.nan, dtype=np.float32), CorruptImageError),
        ([[0.0] * 64] * 64, UnsupportedImageError),
    ],
)
def test_prepare_image_rejects_bad_input(bad, err) -> None:
    with pytest.raises(err):
        prepare_image(bad, spec=PreprocessSpec())


# ---------------------------------------------------------------- augmentation and dataset


def test_augment_is_seeded_and_keeps_contract(rng) -> None:
    img = rng.random((64, 64), dtype=np.float32)
    cfg = AugmentConfig(jpeg_p=1.0, blur_p=1.0, noise_p=1.0)
    a = augment(img, np.random.default_rng(3), cfg)
    b = augment(img, np.random.default_rng(3), cfg)
    c = augment(img, np.random.default_rng(4), cfg)
    assert a.dtype == np.float32 and a.shape == img.shape
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict({"hflip": 0.5, "nonsense": 1})


def test_dataset_matches_inference_preprocessing(sample_root) -> None:
    from photorad.io import load_original

    recs = load_records(sample_root)[:3]
    spec = PreprocessSpec(size=64)
    ds = ClsDataset.from_records(recs, spec=spec)
    x, y = ds[1]
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert float(y) == recs[1].label
    ref = normalise(prepare_image(load_original(recs[1].path), spec=spec, bbox=recs[1].bbox),
                    spec=spec)
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-6)


# ---------------------------------------------------------------- training


def _toy_set(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 1: a bright blob in the centre; label 0: none. Noise everywhere."""
    r = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = r.random((n, size, size), dtype=np.float32) * 0.3
    c = size // 2
    x[y == 1, c - 4:c + 4, c - 4:c + 4] += 0.6
    return np.clip(x, 0, 1).astype(np.float32), y


def test_a_few_training_epochs_decrease_the_loss() -> None:
    torch.manual_seed(0)
    x, y = _toy_set(48, 32, 0)
    xv, yv = _toy_set(16, 32, 1)
    spec = PreprocessSpec(size=32, roi=False)
    cfg = TrainConfig(arch="sepnet", model_kwargs={"widths": [8, 16, 32]}, epochs=6,
                      batch_size=16, lr=3e-3, warmup_epochs=0, patience=10, device="cpu",
                      augment={"affine_p": 0.0, "jpeg_p": 0.0, "tone_p": 0.0, "blur_p": 0.0,
                               "noise_p": 0.0})
    res = fit(x, y, xv, yv, cfg=cfg, spec=spec, seed=0, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.best_val_auroc > 0.5
    assert not res.model.training


def test_fit_needs_both_classes() -> None:
    x, _ = _toy_set(8, 32, 0)
    with pytest.raises(ConfigError):
        fit(x, np.zeros(8), x, np.arange(8) % 2, cfg=TrainConfig(epochs=1),
            spec=PreprocessSpec(size=32), progress=False)


# ---------------------------------------------------------------- shipped weights


@needs_weights
def test_shipped_weights_match_sidecar_hash() -> None:
    from photorad.provenance import sha256_file

    meta = read_meta(SHIPPED)
    assert meta.task == "classify"
    assert meta.extra["weights_sha256"] == sha256_file(SHIPPED)
    assert SHIPPED.stat().st_size < 20e6
    clf = default_classifier(device="cpu")
    assert clf.sha256 == meta.extra["weights_sha256"]
    assert clf.name == "classifier_cpu"


@needs_weights
def test_sample_patients_were_not_trained_on(sample_root) -> None:
    meta = read_meta(SHIPPED)
    sample_groups = {r.group for r in load_records(sample_root)}
    assert sample_groups <= set(meta.extra["sample_patients_held_out"])
    assert sample_groups <= set(meta.extra["test_patients"])


@needs_weights
def test_shipped_classifier_separates_the_sample(sample_root) -> None:
    from photorad.io import load_original

    recs = load_records(sample_root)
    clf = default_classifier(device="cpu")
    scores = clf.score_batch([load_original(r.path) for r in recs],
                             bboxes=[r.bbox for r in recs])
    assert scores.shape == (20,) and ((scores >= 0) & (scores <= 1)).all()
    auc = auroc([r.label for r in recs], scores)
    print(f"sample AUROC of the shipped classifier: {auc:.3f}")
    assert auc >= 0.75
    one = clf.score(load_original(recs[0].path), bbox=recs[0].bbox)
    assert one == pytest.approx(scores[0], abs=1e-6)


def test_wrong_hash_is_refused(tmp_path) -> None:
    from photorad.models.checkpoint import CheckpointMeta, save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors", create_model("sepnet"),
                           CheckpointMeta("sepnet", {}, "classify",
                                          extra={"preprocess": {"size": 64}}))
    clf = Classifier.from_checkpoint(path)
    assert clf.spec.size == 64
    with pytest.raises(ModelError, match="SHA-256"):
        Classifier.from_checkpoint(path, expected_sha256="ab" * 32)
    restorer = save_checkpoint(tmp_path / "r.safetensors", create_model("sepnet"),
                               CheckpointMeta("sepnet", {}, "restore"))
    with pytest.raises(ModelError, match="classify"):
        Classifier.from_checkpoint(restorer)


# ---------------------------------------------------------------- CLI


@needs_weights
def test_cli_prints_and_writes_json(sample_root, tmp_path, capsys) -> None:
    from photorad.cli import main

    recs = load_records(sample_root)[:2]
    out = tmp_path / "scores.json"
    assert main(["classify", *(str(r.path) for r in recs), "--json", str(out)]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.strip().splitlines()]
    written = json.loads(out.read_text())
    assert lines == written and len(lines) == 2
    sha = read_meta(SHIPPED).extra["weights_sha256"]
    for row, r in zip(lines, recs, strict=True):
        assert row["image"] == str(r.path)
        assert 0.0 <= row["score"] <= 1.0
        assert row["model"] == {"name": "classifier_cpu", "sha256": sha}
        assert row["disclaimer"] == DISCLAIMER == "Research use only — not a diagnosis."


@needs_weights
def test_cli_bbox_matches_api(sample_root, capsys) -> None:
    from photorad.cli import main
    from photorad.io import load_original

    r = load_records(sample_root)[3]
    bbox = ",".join(str(v) for v in r.bbox)
    assert main(["classify", str(r.path), "--bbox", bbox]) == 0
    row = json.loads(capsys.readouterr().out)
    expected = default_classifier(device="cpu").score(load_original(r.path), bbox=r.bbox)
    assert row["score"] == pytest.approx(expected, abs=1e-5)


def test_cli_bad_inputs_give_clear_errors(tmp_path, capsys, sample_root) -> None:
    from photorad.cli import main

    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    img = str(next((sample_root / "Images").glob("*.png")))
    model = tmp_path / "missing.safetensors"
    cases = [
        (["classify", str(txt), "--model", str(model)], "not found"),
        (["classify", img, "--model", str(model)], "not found"),
        (["classify", img, img, "--bbox", "1,2,3,4"], "one image"),
    ]
    if SHIPPED.is_file():
        cases.append((["classify", str(txt)], "notes.txt"))
        cases.append((["classify", str(tmp_path / "nope.png")], "nope.png"))
    for argv, needle in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0 and code != 70, (argv, err)
        assert needle in err and "Traceback" not in err, err
    with pytest.raises(SystemExit):
        main(["classify", img, "--bbox", "1,2,-3,4"])


@needs_weights
def test_shipped_split_has_no_patient_leak(bus_bra_root) -> None:
    from pathlib import Path

    split_file = Path(__file__).resolve().parent.parent / "results" / "auroc" / \
        "classifier_cpu_training" / "split.json"
    if not split_file.is_file():
        pytest.skip("training split record not present")
    split = json.loads(split_file.read_text())
    group = {r.id: r.group for r in load_records(bus_bra_root)}
    seen = {part: {group[i] for i in split[part]} for part in ("train", "val", "test")}
    assert not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]
    assert not seen["train"] & seen["val"]
    assert set(read_meta(SHIPPED).extra["test_patients"]) == seen["test"]
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == len(group)
