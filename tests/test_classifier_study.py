"""eval/auroc_cv.py end to end on the embedded sample (original arm, tiny model, 1 epoch)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_script(name: str):
    path = REPO / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_eval_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_auroc_cv_original_arm_on_sample(sample_root, tmp_path) -> None:
    study = _load_script("auroc_cv")
    out = tmp_path / "study"
    argv = ["--profile", "ci", "--data-root", str(sample_root), "--arms", "original",
            "--splits", "2", "--epochs", "1", "--size", "32", "--threads", "1",
            "--out", str(out), "--no-progress"]
    assert study.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = json.loads((out / "per_fold.json").read_text())
    assert len(rows) == 2 and sum(r["n_test"] for r in rows) == 20
    assert set(summary["arms"]) == {"original_all", "original"}
    assert 0.0 <= summary["arms"]["original"]["mean"] <= 1.0
    for name in ("per_fold.csv", "per_fold.md", "summary.md", "predictions.csv", "roc.png",
                 "box.png", "run_info.json"):
        assert (out / name).is_file(), name
    # every image is a test image exactly once, and its patient was never in its training fold
    import csv

    with (out / "predictions.csv").open() as fh:
        preds = list(csv.DictReader(fh))
    assert sorted(p["id"] for p in preds) == sorted(p.stem for p in (sample_root / "Images").glob("*.png"))
    assert "Research use only" in (out / "summary.md").read_text()


def test_paired_stats_against_scipy() -> None:
    from scipy import stats

    study = _load_script("auroc_cv")
    a = np.array([0.85, 0.82, 0.88, 0.80, 0.86])
    b = np.array([0.83, 0.80, 0.87, 0.81, 0.82])
    d = study._paired_stats(a, b, seed=0)
    assert d["mean_diff"] == pytest.approx(float(np.mean(a - b)))
    assert d["paired_t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert d["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    lo, hi = d["bootstrap_ci95"]
    assert lo <= d["mean_diff"] <= hi


def test_unknown_arm_is_rejected() -> None:
    from photorad.errors import ConfigError

    study = _load_script("auroc_cv")
    with pytest.raises(ConfigError):
        study.resolve(study.build_parser().parse_args(["--arms", "photo"]))


def test_holdout_mode_scores_the_shipped_model_on_its_test_patients(sample_root, tmp_path) -> None:
    from photorad.models.weights import WEIGHTS_DIR

    ckpt = WEIGHTS_DIR / "classifier_cpu.safetensors"
    if not ckpt.is_file():
        pytest.skip("shipped classifier missing")
    study = _load_script("auroc_cv")
    out = tmp_path / "holdout"
    argv = ["--model", str(ckpt), "--data-root", str(sample_root), "--arms", "original",
            "--threads", "1", "--out", str(out), "--no-progress"]
    assert study.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = json.loads((out / "per_fold.json").read_text())
    assert len(rows) == 1 and rows[0]["n_test"] == 20  # every sample patient is a test patient
    from photorad.classify import default_classifier
    from photorad.data.bus_bra import load_records
    from photorad.io import load_original
    from photorad.metrics import auroc

    recs = load_records(sample_root)
    clf = default_classifier(device="cpu")
    ref = auroc([r.label for r in recs], clf.score_batch([load_original(r.path) for r in recs],
                                                         bboxes=[r.bbox for r in recs]))
    assert summary["arms"]["original"]["mean"] == pytest.approx(ref, abs=1e-9)
    assert "finetuned" in summary["not_run"]


def test_holdout_lesion_arms_are_the_pipeline_path(sample_root, tmp_path) -> None:
    """``auto_restored`` scores what ``Pipeline.analyze`` scores on the same simulated photo;
    ``auto_original`` is the classifier on the localizer's ROI of the original."""
    from photorad.models.weights import shipped_weights

    if not {"classifier", "restorer", "lesion"} <= set(shipped_weights()):
        pytest.skip("shipped weights missing")
    import csv

    study = _load_script("auroc_cv")
    out = tmp_path / "lesion-arms"
    arms = "original,whole_original,auto_original,whole_restored,auto_restored"
    ckpt = str(REPO / "photorad" / "weights" / "classifier_cpu.safetensors")
    argv = ["--model", ckpt, "--data-root", str(sample_root), "--arms", arms, "--limit", "6",
            "--photo-size", "800", "600", "--photo-fraction", "1.0", "--threads", "1",
            "--cache", str(tmp_path / "cache"), "--out", str(out), "--no-progress"]
    assert study.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(arms.split(",")) <= set(summary["arms"])
    assert 0.0 <= summary["lesion"]["auto_restored"]["found_rate"] <= 1.0
    with (out / "predictions.csv").open() as fh:
        preds = {p["id"]: p for p in csv.DictReader(fh)}

    from photorad.classify import default_classifier
    from photorad.data.bus_bra import load_records
    from photorad.errors import NoScreenFoundError
    from photorad.io import load_original
    from photorad.lesion import default_localizer, lesion_from_prob
    from photorad.pipeline import Pipeline
    from photorad.simulate import simulate_photo

    clf, loc = default_classifier(device="cpu"), default_localizer()
    pipe = Pipeline.from_defaults(quality=False)
    checked = 0
    for rec in load_records(sample_root):
        if rec.id not in preds:
            continue
        img = load_original(rec.path)
        best = lesion_from_prob(loc.prob(img), min_confidence=0.0, min_area_fraction=0.0)
        assert float(preds[rec.id]["auto_original"]) == pytest.approx(
            clf.score(img, bbox=best.lesion.box), abs=1e-5)
        sim = simulate_photo(img, preset="typical", seed=study._image_seed(rec.id, 0),
                             size=(800, 600))
        try:
            a = pipe.analyze(sim.photo)
        except NoScreenFoundError:  # the arm fell back to the true corners
            continue
        if a.score is not None:
            # the arm scores its float16-cached restored image: 1e-3 covers that rounding, while
            # another ROI or another image would move the score by far more
            assert float(preds[rec.id]["auto_restored"]) == pytest.approx(a.score, abs=1e-3)
            checked += 1
    assert checked >= 1
