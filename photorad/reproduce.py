"""Reproduce the study end to end: simulate → train restorer → quality table → rectification → AUROC.

``photorad reproduce --profile ci|full|smoke`` runs the committed scripts of a source checkout
(``train/`` and ``eval/``) one after another, each in its own process with its log on disk, then
collects the headline figures into ``<out>/<profile>/metrics.json`` and writes
``<out>/<profile>/README.md`` (both tables, links to the figures, the environment, the wall time
of each step). With ``check=`` the figures are compared with a committed expectation file
(``results/expected-ci.json``): a figure outside its band fails the run, with a message that says
which figure moved and by how much.

Profiles
--------
``smoke``
    The embedded 20-image sample, a few training steps: checks the plumbing in about two minutes
    (what the tests run). Its numbers mean nothing.
``ci``
    Full BUS-BRA on 2 CPU cores in well under 30 minutes: 120/12/40 patient-grouped
    train/val/test pairs of simulated ``typical`` photos (1024×768), a fixed number of restorer
    training steps (no wall-clock budget, so the numbers do not depend on machine load), the
    quality table with its stage ablation, rectification of 100 simulated photos and the 3-fold
    cross-validated AUROC study of ``eval/auroc_cv.py --profile ci``. Every torch step runs on
    one thread: on the same machine, re-running gives the same numbers.
``full``
    The paper-scale protocol (DnCNN-17×64 on 1600×1200 photos, Xception 10 folds × 3 repeats);
    meant for a GPU.

Every random choice follows ``seed`` (simulation, patient split, initialisation, folds), so the
run-to-run spread is measured by re-running with other seeds (``eval/expected_bands.py``).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photorad import DISCLAIMER
from photorad.errors import ConfigError, PhotoradError

__all__ = [
    "PROFILES",
    "STEPS",
    "Step",
    "ReproduceError",
    "Violation",
    "bands_from_runs",
    "check_figures",
    "collect_metrics",
    "plan",
    "repo_root",
    "run",
]

STEPS = ("pairs", "train", "quality", "rectify", "photos", "auroc", "report")


class ReproduceError(PhotoradError):
    """A step of the study failed, or a figure left its expected band."""

    exit_code = 1


@dataclass(frozen=True)
class Profile:
    """What one profile runs. Sizes are counts of BUS-BRA images unless said otherwise."""

    name: str
    restorer_config: str
    n_train: int
    n_val: int
    n_test: int
    photo_size: tuple[int, int]
    train_steps: int
    patch: int
    batch_size: int
    val_every: int
    threads: int
    rectify_n: int
    rectify_size: str
    auroc_profile: str
    auroc_args: tuple[str, ...] = ()
    sample_data: bool = False
    note: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", restorer_config="train/configs/restore_ci.yaml", n_train=8, n_val=2,
        n_test=4, photo_size=(640, 480), train_steps=6, patch=64, batch_size=2, val_every=3,
        threads=1, rectify_n=4, rectify_size="640x480", auroc_profile="ci",
        auroc_args=("--splits", "2", "--epochs", "1", "--patience", "1", "--size", "64",
                    "--photo-fraction", "1.0", "--finetune-epochs", "1", "--photo-size", "640",
                    "480"),
        sample_data=True,
        note="plumbing check on the 20 embedded sample images; the numbers mean nothing",
    ),
    "ci": Profile(
        name="ci", restorer_config="train/configs/restore_ci.yaml", n_train=120, n_val=12,
        n_test=40, photo_size=(1024, 768), train_steps=600, patch=96, batch_size=8,
        val_every=200, threads=1, rectify_n=100, rectify_size="1344x1008", auroc_profile="ci",
        note="full BUS-BRA, CPU-sized: ≤ 30 min on 2 cores",
    ),
    "full": Profile(
        name="full", restorer_config="train/configs/restore_dncnn.yaml", n_train=0, n_val=0,
        n_test=0, photo_size=(0, 0), train_steps=0, patch=0, batch_size=0, val_every=0,
        threads=0, rectify_n=200, rectify_size="4032x3024", auroc_profile="full",
        note="paper-scale protocol; meant for a GPU (sizes from the restorer config)",
    ),
}


@dataclass
class Step:
    """One process of the study."""

    name: str
    title: str
    argv: list[str]
    wall_s: float | None = None
    status: str = "pending"
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- plan


def repo_root() -> Path:
    """The source checkout that holds ``train/`` and ``eval/`` next to the package."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "train" / "train_restorer.py").is_file() or not (root / "eval").is_dir():
        raise ConfigError(
            "photorad reproduce runs the scripts in train/ and eval/ of a source checkout; "
            f"none found next to {Path(__file__).resolve().parent} (clone the repository and "
            "`pip install -e .` there)"
        )
    return root


def _sample_root() -> Path:
    from photorad.data.paths import sample_dir

    return Path(sample_dir())


def plan(profile: str, *, out: Path, work: Path, seed: int = 0,
         data_root: str | os.PathLike | None = None) -> list[Step]:
    """The steps of ``profile`` as argument vectors (run from :func:`repo_root`).

    ``out`` receives the committed tables (``out/<profile>/…``); ``work`` the bulky
    intermediates (pairs, checkpoints, caches; git-ignored).
    """
    try:
        prof = PROFILES[profile]
    except KeyError:
        raise ConfigError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}") from None
    res = out / prof.name
    wk = work / f"{prof.name}-seed{seed}"
    py = sys.executable
    data = str(data_root) if data_root else (str(_sample_root()) if prof.sample_data else None)
    pairs, ckpt_dir = wk / "pairs", wk / "restorer"
    ckpt = ckpt_dir / "best.safetensors"

    train = [py, "train/train_restorer.py", "-c", prof.restorer_config,
             "--pairs", str(pairs), "--out", str(ckpt_dir), "--seed", str(seed),
             "--split-seed", str(seed), "--no-progress"]
    if prof.train_steps:  # a fixed number of steps: the result must not depend on machine load
        train += ["--steps", str(prof.train_steps), "--max-minutes", "0",
                  "--n-train", str(prof.n_train), "--n-val", str(prof.n_val),
                  "--n-test", str(prof.n_test), "--n-val-eval", str(prof.n_val),
                  "--photo-size", json.dumps(list(prof.photo_size)),
                  "--patch", str(prof.patch), "--batch-size", str(prof.batch_size),
                  "--val-every", str(prof.val_every), "--threads", str(prof.threads)]
    if data:
        train += ["--data-root", data]
    quality = [py, "eval/quality_table.py", "--pairs", str(pairs),
               "--model", f"restorer={ckpt}", "--splits", "train", "test",
               "--title", f"photorad reproduce --profile {prof.name} (seed {seed}): simulated "
                          "typical photos, ground-truth corners",
               "--out", str(res / "quality")]
    if prof.threads:
        quality += ["--threads", str(prof.threads)]
    rectify = [py, "eval/eval_rectify.py", "--presets", "typical", "--n", str(prof.rectify_n),
               "--size", prof.rectify_size, "--seed", str(seed), "--workers", "1",
               "--out", str(res / "rectify")]
    if data:
        rectify += ["--data", data]
    auroc_common = ["--profile", prof.auroc_profile, "--seed", str(seed),
                    "--cache", str(wk / "auroc_cache"), "--no-progress", *prof.auroc_args]
    if data:
        auroc_common += ["--data-root", data]
    photos = [py, "eval/auroc_cv.py", *auroc_common,
              "--arms", "original,photo,whole_photo,auto_photo",
              "--prepare-photos", "--out", str(wk / "auroc_prepare")]
    auroc = [py, "eval/auroc_cv.py", *auroc_common, "--restorer", str(ckpt),
             "--out", str(res / "auroc")]
    # Order and dependencies are fixed by the two lanes of :func:`run`.
    return [
        Step("pairs", "simulate paired photos (patient-grouped split)", [*train, "--prepare-only"]),
        Step("train", "train the restorer", [*train, "--no-make-pairs"]),
        Step("quality", "quality table with stage ablation", quality),
        Step("rectify", "detection on simulated photos", rectify),
        Step("photos", "simulate + rectify the AUROC photo arms (cached)", photos),
        Step("auroc", "cross-validated AUROC: ROI, whole image and automatic lesion ROI; "
                      "original / photo / restored", auroc),
        Step("report", "collect figures, write README", []),
    ]


# ------------------------------------------------------------------------------------- metrics


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect_metrics(res: Path) -> dict[str, float]:
    """Headline figures of one profile's output folder, flattened to ``name → value``.

    Names are stable keys of ``results/expected-*.json``: ``quality.<split>.<stage>.psnr_db``
    and ``.ssim``; ``rectify.typical.<figure>``; ``auroc.<arm>.mean``. Figures whose step did
    not run are absent.
    """
    m: dict[str, float] = {}
    q = _load_json(res / "quality" / "quality_table.json")
    if q:
        for row in q.get("rows", []):
            key = f"quality.{row['split']}.{row['stage']}"
            m[f"{key}.psnr_db"] = float(row["psnr_mean"])
            m[f"{key}.ssim"] = float(row["ssim_mean"])
            if row["stage"] not in ("warp",):
                m[f"{key}.psnr_gain_db"] = float(row["psnr_gain_mean"])
    r = _load_json(res / "rectify" / "summary.json")
    if r and isinstance(r.get("typical"), dict):
        t = r["typical"]
        for k in ("detection_rate", "median_corner_error_pct_of_diag", "mean_jaccard_failed_as_0"):
            if isinstance(t.get(k), (int, float)):
                m[f"rectify.typical.{k}"] = float(t[k])
    a = _load_json(res / "auroc" / "summary.json")
    if a:
        for arm, v in a.get("arms", {}).items():
            if isinstance(v.get("mean"), (int, float)) and math.isfinite(v["mean"]):
                m[f"auroc.{arm}.mean"] = float(v["mean"])
    return m


# ------------------------------------------------------------------------------------- bands


@dataclass(frozen=True)
class Violation:
    """A figure outside its band (or missing)."""

    name: str
    value: float | None
    expected: float
    tolerance: float

    def message(self) -> str:
        if self.value is None:
            return f"{self.name}: missing (expected {self.expected:.4g} ± {self.tolerance:.3g})"
        d = self.value - self.expected
        return (f"{self.name} moved: {self.value:.4g} vs expected {self.expected:.4g} "
                f"({d:+.4g}; band ± {self.tolerance:.3g}, {abs(d) / self.tolerance:.1f}× the "
                "tolerance)")


def check_figures(metrics: Mapping[str, float], expected: Mapping[str, Any]) -> list[Violation]:
    """Figures of ``metrics`` outside the bands of an expectation document.

    ``expected["figures"]`` maps a figure name to ``{"value": v, "tolerance": t, …}``; a figure
    passes when ``|metrics[name] − v| ≤ t``. A figure listed in the expectation but absent from
    ``metrics`` is a violation too (a step that silently stopped producing it).
    """
    out = []
    figs = expected.get("figures")
    if not isinstance(figs, Mapping) or not figs:
        raise ConfigError("expectation file has no 'figures'")
    for name, band in figs.items():
        v, tol = float(band["value"]), float(band["tolerance"])
        got = metrics.get(name)
        if got is None or not math.isfinite(got):
            out.append(Violation(name, None, v, tol))
        elif abs(got - v) > tol:
            out.append(Violation(name, float(got), v, tol))
    return out


# Smallest bands, in each figure's unit: below these, differences are numerical noise of a
# different CPU or library build rather than a change of behaviour worth failing CI for. Measured
# on 2026-12-02: the same seeds and the same training/classifier code on two sessions' machines
# (different CPUs, OpenCV 5.0 vs 5.1) differed by up to 0.36 dB restorer PSNR, 0.0056 SSIM and
# 0.010 AUROC (the original arms, which no detector change touches): each floor is about 1.5–3 ×
# that, so a CI machine unlike the one that measured the bands does not fail on noise alone.
TOLERANCE_FLOORS = {"psnr_db": 0.6, "psnr_gain_db": 0.6, "ssim": 0.012,
                    "detection_rate": 0.02, "median_corner_error_pct_of_diag": 0.05,
                    "mean_jaccard_failed_as_0": 0.01, "mean": 0.025}


def bands_from_runs(runs: Sequence[Mapping[str, float]], *, reference: int = 0, k: float = 3.0,
                    floors: Mapping[str, float] = TOLERANCE_FLOORS) -> dict[str, dict[str, Any]]:
    """Bands from the same profile run with several seeds.

    The expected value is the reference run's (seed 0: what CI runs); the tolerance is
    ``max(k × sd over seeds, floor)``. The seeds change everything random — the simulated photos,
    the patient split, initialisation and folds — so the sd is the spread a re-run with another
    seed would show, an upper bound for what a same-seed re-run on another machine shows.
    """
    if len(runs) < 2:
        raise ConfigError("need at least two runs (seeds) to measure a spread")
    names = sorted(set(runs[reference]).intersection(*[set(r) for r in runs]))
    bands = {}
    for name in names:
        vals = [float(r[name]) for r in runs]
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        floor = floors.get(name.rsplit(".", 1)[-1], 0.0)
        bands[name] = {"value": round(vals[reference], 6),
                       "tolerance": round(max(k * sd, floor), 6),
                       "sd_over_seeds": round(sd, 6), "values": [round(v, 6) for v in vals],
                       "floor": floor}
    return bands


# ------------------------------------------------------------------------------------- running


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _exec(step: Step, *, cwd: Path, logs: Path, env: Mapping[str, str],
          procs: list[subprocess.Popen]) -> int:
    """Run one step to completion, its stdout and stderr into ``logs/<step>.log``.

    The child's own CPU time (``wait4``) goes to ``step.extra["cpu_s"]``: unlike wall time it
    does not depend on what else the machine runs.
    """
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{step.name}.log").open("w") as fh:
        fh.write("$ " + shlex.join(step.argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(step.argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                env=dict(env), text=True)
        procs.append(proc)
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            step.extra["cpu_s"] = usage.ru_utime + usage.ru_stime
            return proc.returncode
        return proc.wait()


def run(profile: str, *, out: str | os.PathLike = "results", work: str | os.PathLike =
        "runs/reproduce", seed: int = 0, data_root: str | os.PathLike | None = None,
        steps: Sequence[str] | None = None, check: str | os.PathLike | None = None,
        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study; returns the collected figures and step timings.

    Steps that do not depend on the restorer (rectification, simulating the AUROC photo arm) run
    beside the simulate → train → quality lane: two processes of one thread each, for a 2-core
    machine. ``steps`` re-runs only the named steps (their inputs must exist). Raises :class:`ReproduceError` when
    a step fails or, with ``check``, when a figure leaves its band.
    """
    root = repo_root()
    out_p = (root / out) if not Path(out).is_absolute() else Path(out)
    work_p = (root / work) if not Path(work).is_absolute() else Path(work)
    todo = plan(profile, out=out_p, work=work_p, seed=seed, data_root=data_root)
    wanted = set(steps) if steps else set(STEPS)
    bad = wanted - set(STEPS)
    if bad:
        raise ConfigError(f"unknown steps {sorted(bad)}; choose from {', '.join(STEPS)}")
    res = out_p / profile
    logs = work_p / f"{profile}-seed{seed}" / "logs"
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    if not (PROFILES[profile].sample_data or data_root):
        from photorad.data.paths import find_shared_data

        if find_shared_data("bus-bra") is None:
            raise ConfigError(f"profile {profile!r} needs the full BUS-BRA dataset: set "
                              "PHOTORAD_DATA or put it in ../shared/data (or use --profile smoke)")
    res.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    by_name = {s.name: s for s in todo}
    run_steps = [s for s in todo if s.name in wanted and s.name != "report"]
    n = len(run_steps)

    failures: list[str] = []
    procs: list[subprocess.Popen] = []

    def lane(names: Sequence[str]) -> None:
        for name in names:
            s = by_name[name]
            if name not in wanted or failures:
                continue
            i = run_steps.index(s) + 1
            echo(f"[{i}/{n}] {s.title} …")
            t0 = time.perf_counter()
            rc = _exec(s, cwd=root, logs=logs, env=env, procs=procs)
            s.wall_s = time.perf_counter() - t0
            s.status = "ok" if rc == 0 else f"failed (exit {rc})"
            echo(f"[{i}/{n}] {s.title}: {s.status} in {s.wall_s:.0f} s")
            if rc != 0:
                log = logs / f"{name}.log"
                failures.append(f"step {name!r} failed (exit {rc}); last lines of {log}:\n"
                                f"{_tail(log)}")

    # Two lanes of one thread each (a 2-core machine): the restorer-independent rectification
    # and AUROC photo simulation run beside simulate → train → quality; AUROC needs both.
    side = threading.Thread(target=lane, args=(("rectify", "photos"),), daemon=True)
    side.start()
    try:
        lane(("pairs", "train", "quality"))
        side.join()
        lane(("auroc",))
    finally:  # Ctrl-C or an error here must not leave children running
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if failures:
        raise ReproduceError("\n".join(failures))

    metrics = collect_metrics(res)
    timing = {s.name: {"title": s.title, "status": s.status,
                       "wall_s": None if s.wall_s is None else round(s.wall_s, 1),
                       "cpu_s": round(s.extra["cpu_s"], 1) if "cpu_s" in s.extra else None,
                       "command": shlex.join(_rel(a, root) for a in s.argv)}
              for s in todo if s.name != "report"}
    prev = _load_json(res / "steps.json") or {}
    ran = [k for k, v in timing.items() if v["status"] != "pending"]
    for k, v in timing.items():  # keep timings of steps not re-run this time
        if v["status"] == "pending" and k in prev:
            timing[k] = prev[k]
    summary = {"profile": profile, "seed": seed, "disclaimer": DISCLAIMER,
               "note": PROFILES[profile].note, "figures": metrics}
    (res / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (res / "steps.json").write_text(json.dumps(timing, indent=2) + "\n")
    total = time.perf_counter() - t_all
    violations: list[Violation] | None = None
    expected_doc = None
    if check:
        expected_doc = _load_json(Path(check))
        if expected_doc is None:
            raise ConfigError(f"cannot read expectation file {check}")
        violations = check_figures(metrics, expected_doc)
    _write_readme(res, profile=profile, seed=seed, metrics=metrics, timing=timing, total_s=total,
                  ran=ran, root=root, expected=expected_doc, violations=violations)
    from photorad.provenance import write_run_info

    write_run_info(res, {"profile": profile, "seed": seed, "out": _rel(str(out_p), root),
                         "work": _rel(str(work_p), root), "steps": sorted(wanted),
                         "profile_settings": PROFILES[profile].__dict__,
                         "data_root": str(data_root) if data_root else None})
    echo(f"figures → {_rel(str(res / 'metrics.json'), root)}; report → "
         f"{_rel(str(res / 'README.md'), root)} ({total:.0f} s)")
    if violations:
        raise ReproduceError(f"{len(violations)} figure(s) left their band (see "
                             f"{check}):\n  " + "\n  ".join(v.message() for v in violations))
    if violations is not None:
        echo(f"all {len(expected_doc['figures'])} figures within their bands ({check})")
    return {"figures": metrics, "steps": timing, "wall_s": total}


def _rel(arg: str, root: Path) -> str:
    """Paths inside the checkout as relative paths, the interpreter as ``python``."""
    if arg == sys.executable:
        return "python"
    try:
        p = Path(arg)
        if p.is_absolute():
            return str(p.relative_to(root))
    except ValueError:
        pass
    return arg


def _fmt(v: Any, nd: int = 2) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def _write_readme(res: Path, *, profile: str, seed: int, metrics: Mapping[str, float],
                  timing: Mapping[str, Any], total_s: float, ran: list[str], root: Path,
                  expected: Mapping[str, Any] | None, violations: list[Violation] | None) -> None:
    from photorad.provenance import git_sha, machine_info, package_versions

    prof = PROFILES[profile]
    lines = [f"# photorad reproduce — profile `{profile}` (seed {seed})", "",
             f"> {DISCLAIMER}", "",
             f"Made by `photorad reproduce --profile {profile} --seed {seed}` ({prof.note}). "
             "All photos are **simulated** phone photos (`photorad.simulate`, preset `typical`) "
             "of **real** BUS-BRA breast-ultrasound images; nothing here is a real phone photo.",
             ""]
    q = _load_json(res / "quality" / "quality_table.json")
    lines += ["## Restoration quality (Table-1 analogue, with stage ablation)", ""]
    if q:
        lines += ["| split | stage | n | PSNR dB (mean ± sd) | SSIM (mean ± sd) | gain vs warp dB |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in q["rows"]:
            lines.append(f"| {r['split']} | {r['stage']} | {r['count']} | "
                         f"{r['psnr_mean']:.2f} ± {r['psnr_sd']:.2f} | "
                         f"{r['ssim_mean']:.3f} ± {r['ssim_sd']:.3f} | "
                         f"{r['psnr_gain_mean']:+.2f} |")
        lines += ["", "Seed paper (DnCNN-17, real iPhone photos, test set): PSNR 13.57 → 29.01 dB, "
                  "SSIM 0.704 → 0.935. `warp`: rectified with ground-truth corners; `warp+tone`: "
                  "oracle global tone curve fitted to each original (upper bound of a tone-only "
                  "fix); `restorer`: the model trained in this run.", "",
                  "![before/after](quality/before_after.png)", ""]
    else:
        lines += ["(not run)", ""]
    a = _load_json(res / "auroc" / "summary.json")
    lines += ["## Cross-validated AUROC (Fig.-7 analogue)", ""]
    if a:
        paper = {"original_all": "0.864", "original": "0.864", "photo": "0.849",
                 "restored": "0.853", "finetuned": "—"}
        lines += ["| arm | mean AUROC | sd | folds | seed paper |", "|---|---:|---:|---:|---:|"]
        for arm, v in a["arms"].items():
            lines.append(f"| {arm} | {_fmt(v.get('mean'), 3)} | {_fmt(v.get('sd'), 3)} | "
                         f"{v.get('n_folds')} | {paper.get(arm, '—')} |")
        lines += ["", f"`original_all`: every test image; other arms: the same "
                  f"{a.get('n_paired_images')} images per arm (paired). Classifier: "
                  f"`{a['config']['arch']}` at {a['config']['size']} px, "
                  f"{a['config']['splits']} patient-grouped folds × {a['config']['repeats']}. "
                  "Seed paper: Xception, 10 splits × 3 repeats.", ""]
        les = {k: v for k, v in (a.get("lesion") or {}).items() if k.startswith("auto_")}
        if les:
            lines += ["`original`/`photo`/`restored`/`finetuned`: the lesion ROI shown on the "
                      "monitor (the paper's workflow); `whole_*`: the whole frame scored as it "
                      "is; `auto_*`: the ROI around the lesion that the shipped localizer finds "
                      "(the clinician's path, as `Pipeline.analyze`). The localizer is confident "
                      "(the pipeline gives a score) on "
                      + ", ".join(f"{100 * v['found_rate']:.0f} % ({k})" for k, v in les.items())
                      + " of the images.", ""]
        lines += ["![AUROC per fold](auroc/box.png) ![ROC](auroc/roc.png)", ""]
    else:
        lines += ["(not run)", ""]
    r = _load_json(res / "rectify" / "summary.json")
    lines += ["## Rectification (simulated `typical` photos)", ""]
    if r and isinstance(r.get("typical"), dict):
        t = r["typical"]
        lines += ["| n | detection rate | median corner error (% of diagonal) | "
                  "mean Jaccard (failure = 0) |", "|---:|---:|---:|---:|",
                  f"| {t.get('n')} | {100 * t.get('detection_rate', float('nan')):.1f} % | "
                  f"{_fmt(t.get('median_corner_error_pct_of_diag'), 3)} | "
                  f"{_fmt(t.get('mean_jaccard_failed_as_0'), 4)} |", ""]
    else:
        lines += ["(not run)", ""]
    if violations is not None and expected is not None:
        lines += ["## Check against the expected bands", ""]
        if violations:
            lines += [f"**{len(violations)} figure(s) outside their band:**", ""]
            lines += [f"- {v.message()}" for v in violations]
        else:
            lines += [f"All {len(expected['figures'])} figures lie within their bands."]
        lines += [""]
    lines += ["## Steps", "", "| step | status | wall s | CPU s | command |",
              "|---|---|---:|---:|---|"]
    for name, t in timing.items():
        lines.append(f"| {name} | {t['status']} | {_fmt(t['wall_s'], 0)} | "
                     f"{_fmt(t.get('cpu_s'), 0)} | `{t['command']}` |")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    # A run limited by --steps keeps the other steps' rows (and their outputs) from an earlier run.
    earlier = [k for k in timing if k not in ran]
    scope = (f" (steps run: {', '.join(ran) or 'none'}; the rows of "
             f"{', '.join(earlier)} are from earlier invocations)" if earlier else "")
    lines += ["", f"Total wall time of this invocation{scope}: {total_s:.0f} s; load average at "
              f"the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min; wall times grow "
              "with other jobs on the machine, CPU seconds do not). `rectify` and `photos` run in "
              "parallel with `pairs`/`train`/`quality`.", ""]
    mi = machine_info()
    vers = package_versions()
    lines += ["## Environment", "",
              f"- git SHA: `{git_sha(root)}`",
              f"- machine: {json.dumps(mi)}",
              "- packages: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v),
              "- data hashes (sha256, from each step's `run_info.json`):"]
    for sub in ("quality", "rectify", "auroc"):
        info = _load_json(res / sub / "run_info.json") or {}
        for k, v in (info.get("data_hashes") or {}).items():
            lines.append(f"  - `{sub}` {k}: `{v}`")
    lines += [""]
    (res / "README.md").write_text("\n".join(lines))
