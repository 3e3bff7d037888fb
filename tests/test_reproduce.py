"""`photorad reproduce`: the expected-band check, the bands, and the smoke profile end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from photorad.errors import ConfigError
from photorad.reproduce import (
    PROFILES,
    TOLERANCE_FLOORS,
    ReproduceError,
    bands_from_runs,
    check_figures,
    collect_metrics,
    plan,
    run,
)

REPO = Path(__file__).resolve().parent.parent
EXPECTED = REPO / "results" / "expected-ci.json"


def _expected(**figs: tuple[float, float]) -> dict:
    return {"figures": {k: {"value": v, "tolerance": t} for k, (v, t) in figs.items()}}


def test_check_passes_inside_band() -> None:
    exp = _expected(**{"quality.test.restorer.psnr_db": (20.0, 0.5), "auroc.original.mean": (0.86, 0.02)})
    assert check_figures({"quality.test.restorer.psnr_db": 20.49, "auroc.original.mean": 0.845}, exp) == []


def test_check_names_the_figure_that_moved_and_by_how_much() -> None:
    exp = _expected(**{"quality.test.restorer.psnr_db": (20.0, 0.5), "auroc.original.mean": (0.86, 0.02)})
    bad = check_figures({"quality.test.restorer.psnr_db": 18.9, "auroc.original.mean": 0.86}, exp)
    assert [v.name for v in bad] == ["quality.test.restorer.psnr_db"]
    msg = bad[0].message()
    assert "quality.test.restorer.psnr_db moved" in msg and "-1.1" in msg and "± 0.5" in msg


def test_check_reports_a_missing_figure() -> None:
    bad = check_figures({}, _expected(**{"rectify.typical.detection_rate": (0.98, 0.02)}))
    assert len(bad) == 1 and "missing" in bad[0].message()
    with pytest.raises(ConfigError):
        check_figures({"a": 1.0}, {"figures": {}})


def test_bands_use_reference_value_and_spread_with_a_floor() -> None:
    runs = [{"x.psnr_db": 20.0, "y.ssim": 0.800}, {"x.psnr_db": 21.0, "y.ssim": 0.801},
            {"x.psnr_db": 22.0, "y.ssim": 0.799}]
    b = bands_from_runs(runs)
    assert b["x.psnr_db"]["value"] == 20.0
    assert b["x.psnr_db"]["tolerance"] == pytest.approx(3.0)  # 3 × sd (sd = 1)
    # The floor wins over 3 × 0.001.
    assert b["y.ssim"]["tolerance"] == pytest.approx(TOLERANCE_FLOORS["ssim"])
    with pytest.raises(ConfigError):
        bands_from_runs(runs[:1])


def test_plan_orders_steps_and_pins_seed_and_threads(tmp_path: Path) -> None:
    steps = plan("ci", out=tmp_path / "res", work=tmp_path / "work", seed=3)
    assert [s.name for s in steps] == ["pairs", "train", "quality", "rectify", "photos", "auroc",
                                       "report"]
    train = steps[1].argv
    assert train[train.index("--seed") + 1] == "3" and train[train.index("--threads") + 1] == "1"
    # A fixed step count, no wall-clock budget: the result must not depend on machine load.
    assert train[train.index("--max-minutes") + 1] == "0"
    assert "--prepare-photos" in steps[4].argv and "--restorer" not in steps[4].argv
    with pytest.raises(ConfigError):
        plan("nope", out=tmp_path, work=tmp_path)


def test_ci_profile_needs_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import photorad.data.paths as paths

    monkeypatch.setattr(paths, "find_shared_data", lambda name=None: None)
    with pytest.raises(ConfigError, match="needs the full BUS-BRA"):
        run("ci", out=tmp_path / "r", work=tmp_path / "w")


def test_committed_ci_results_lie_in_their_bands() -> None:
    """The committed CI tables and the committed expectation agree (edit both or neither)."""
    exp = json.loads(EXPECTED.read_text())
    assert len(exp["seeds"]) >= 3, "bands must come from at least three seeds"
    figs = json.loads((REPO / "results" / "ci" / "metrics.json").read_text())["figures"]
    assert collect_metrics(REPO / "results" / "ci") == pytest.approx(figs)
    assert check_figures(figs, exp) == []
    for name in ("quality.test.restorer.psnr_db", "quality.test.warp.psnr_db",
                 "auroc.original.mean", "auroc.restored.mean", "rectify.typical.detection_rate"):
        assert name in exp["figures"], f"{name} has no band"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PHOTORAD_CI_REPRODUCE") == "1",
                    reason="this CI run reproduces the full ci profile after the tests")
def test_smoke_profile_end_to_end(tmp_path: Path) -> None:
    """Every step runs on the embedded sample; a band that the figures miss fails the run."""
    out, work = tmp_path / "results", tmp_path / "runs"
    res = run("smoke", out=out, work=work, echo=lambda s: None)
    figs = res["figures"]
    for name in ("quality.test.warp.psnr_db", "quality.test.warp+tone.psnr_db",
                 "quality.test.restorer.psnr_db", "rectify.typical.detection_rate",
                 "auroc.original.mean", "auroc.photo.mean", "auroc.restored.mean"):
        assert name in figs, name
    assert all(s["status"] == "ok" for s in res["steps"].values())
    readme = (out / "smoke" / "README.md").read_text()
    assert "Research use only" in readme and "## Environment" in readme and "| auroc | ok |" in readme
    assert "earlier invocation" not in readme
    assert json.loads((out / "smoke" / "metrics.json").read_text())["figures"] == figs

    # The report step alone re-reads the outputs; a wrong expectation makes it fail loudly.
    wrong = tmp_path / "expected.json"
    v = figs["quality.test.warp.psnr_db"]
    wrong.write_text(json.dumps(_expected(**{"quality.test.warp.psnr_db": (v + 5.0, 0.5)})))
    with pytest.raises(ReproduceError, match=r"quality.test.warp.psnr_db moved: .*-5"):
        run("smoke", out=out, work=work, steps=["report"], check=wrong, echo=lambda s: None)
    right = tmp_path / "right.json"
    right.write_text(json.dumps(_expected(**{"quality.test.warp.psnr_db": (v, 0.01)})))
    run("smoke", out=out, work=work, steps=["report"], check=right, echo=lambda s: None)
    # The step table keeps the earlier rows, and the report says they were not run this time.
    readme = (out / "smoke" / "README.md").read_text()
    assert "| auroc | ok |" in readme and "steps run: none; the rows of pairs, train" in readme
    assert PROFILES["smoke"].sample_data
