#!/usr/bin/env python
"""Cross-validated AUROC study: original vs phone photo vs restored photo vs fine-tuned model.

    python eval/auroc_cv.py --profile ci   --out results/auroc/ci     # 3 folds × 1, CPU model
    python eval/auroc_cv.py --profile full --out results/auroc/full   # 10 folds × 3, Xception, GPU

For each repeat (a different seed) the BUS-BRA images are split into K patient-grouped,
label-stratified folds. For every fold a classifier is trained on the originals of the other
folds (a patient-grouped 10 % of them is the validation set for early stopping), then the same
test images are scored in each arm:

* ``original`` — the original image (lesion ROI: BBOX + margin, as the paper showed);
* ``photo``    — a simulated ``typical`` phone photo of that ROI shown on a monitor, rectified by
  ``photorad.rectify.detect`` + ``warp`` (ground-truth corners only where detection fails —
  counted and reported);
* ``restored`` — that rectified photo restored by the shipped (or ``--restorer``) restorer;
* ``finetuned`` — restored photos scored by the fold's classifier after fine-tuning it on
  restored photos of its own training images.

These four show the paper's workflow (the ROI on the monitor). The clinician's workflow shows the
whole frame, and the classifier then needs the lesion; for that, the arms

* ``whole_original`` / ``whole_photo`` / ``whole_restored`` — the whole frame scored as it is;
* ``auto_original`` / ``auto_photo`` / ``auto_restored`` — the ROI around the lesion that the
  shipped localizer (``photorad.lesion``) finds in that image: exactly what ``Pipeline.analyze``
  does (detect → warp at the pipeline's size cap → restore → localize → the classifier's ROI).

For scores on every image the ``auto_*`` arms take the localizer's most probable area whatever
its confidence; ``summary.json`` also gives the share of images the pipeline would score (found
at the shipped threshold) and the pooled AUROC over those (``auto_found``). The localizer was
trained on patients outside the shipped classifier's test set: in hold-out mode (``--model``) no
arm sees a patient any model was trained on; in cross-validation ``auto_unseen`` gives the pooled
AUROC over the localizer's held-out patients.

Outputs in ``--out``: ``per_fold.{csv,json,md}``, ``summary.{json,md}`` (mean ± sd per arm,
paired per-fold differences with paired t and Wilcoxon tests and bootstrap CIs, pooled DeLong),
``predictions.csv``, ``roc.png`` (pooled ROC curves), ``box.png`` (per-fold AUROC box plot, like
the paper's Fig. 7) and ``run_info.json``. Research use only — not a diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from photorad import DISCLAIMER
from photorad.classify import (
    FitResult,
    PreprocessSpec,
    TrainConfig,
    fit,
    predict_proba,
    prepare_image,
)
from photorad.data.bus_bra import Record, grouped_folds, load_records
from photorad.data.cls_dataset import load_cls_images
from photorad.data.paths import find_shared_data
from photorad.errors import ConfigError, NoScreenFoundError, PhotoradError
from photorad.metrics import auroc, bootstrap_ci, delong_test
from photorad.provenance import hash_files, write_run_info

ARMS = ("original", "photo", "restored", "finetuned", "whole_original", "whole_photo",
        "whole_restored", "auto_original", "auto_photo", "auto_restored")
#: Arms of the whole-frame photos (the clinician's workflow) and their image keys.
FRAME_ARMS = {"whole_photo": ("rect", None), "whole_restored": ("restored", None),
              "auto_photo": ("rect", "box_rect"), "auto_restored": ("restored", "box_restored")}
#: Arms that need a restorer.
RESTORED_ARMS = ("restored", "finetuned", "whole_restored", "auto_restored")

# ci: one torch thread, because two OpenMP threads on a shared, busy 2-core machine spin-wait and
# ran many times slower (eval/bench_classify.py); photo arms on 20 % of the images (CPU budget).
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {
        "splits": 3, "repeats": 1, "arch": "sepnet", "model_kwargs": {}, "size": 128,
        "epochs": 12, "patience": 4, "batch_size": 32, "lr": 2e-3, "device": "cpu",
        "photo_size": [1024, 768], "finetune_epochs": 3, "finetune_lr": 5e-4,
        "finetune_limit": 0, "photo_fraction": 0.2, "threads": 1,
    },
    "full": {
        "splits": 10, "repeats": 3, "arch": "xception", "model_kwargs": {"drop_rate": 0.2},
        "size": 299, "epochs": 40, "patience": 10, "batch_size": 32, "lr": 5e-4,
        "device": "auto", "photo_size": [4032, 3024], "finetune_epochs": 8,
        "finetune_lr": 1e-4, "finetune_limit": 0, "photo_fraction": 1.0, "threads": 8,
    },
}


# --------------------------------------------------------------------------------------------
# arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " " + DISCLAIMER)
    p.add_argument("-c", "--config", help="YAML file whose keys override the profile")
    p.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    p.add_argument("--out", default="results/auroc/ci")
    p.add_argument("--data-root", default=None, help="BUS-BRA folder (default: ../shared/data)")
    p.add_argument("--arms", default=",".join(ARMS), help="comma list of " + ", ".join(ARMS))
    p.add_argument("--restorer", default=None, help="restorer checkpoint (default: shipped)")
    p.add_argument("--model", default=None,
                   help="hold-out mode: score this classifier checkpoint on the test patients "
                        "listed in its sidecar instead of cross-validating (no training)")
    p.add_argument("--preset", default="typical", help="simulator preset for the photo arms")
    p.add_argument("--seed", type=int, default=0, help="base seed (repeat r uses seed + r)")
    p.add_argument("--margin", type=float, default=0.25, help="ROI margin (fraction of box)")
    p.add_argument("--no-roi", action="store_true", help="full images instead of lesion ROIs")
    p.add_argument("--limit", type=int, default=0, help="use N random images (smoke runs)")
    p.add_argument("--cache", default="runs/auroc_cache",
                   help="where simulated/rectified/restored photos are cached (git-ignored)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--prepare-photos", action="store_true",
                   help="only simulate + rectify the photo-arm images into --cache, then stop "
                        "(the restorer-independent part; photorad reproduce runs it while the "
                        "restorer trains)")
    for k, v in PROFILES["ci"].items():  # every profile key can be overridden
        flag = "--" + k.replace("_", "-")
        if isinstance(v, list):
            p.add_argument(flag, type=int, nargs=2, default=None)
        elif isinstance(v, dict):
            continue
        else:
            p.add_argument(flag, type=type(v), default=None)
    return p


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    cfg = dict(PROFILES[args.profile])
    if args.config:
        try:
            cfg.update(yaml.safe_load(Path(args.config).read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {args.config}: {exc}") from None
    for k in PROFILES["ci"]:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = set(arms) - set(ARMS)
    if bad or "original" not in arms:
        raise ConfigError(f"--arms must include 'original' and be among {ARMS}; got {arms}")
    cfg.update(profile=args.profile, arms=arms, restorer=args.restorer, preset=args.preset,
               seed=args.seed, margin=args.margin, roi=not args.no_roi, limit=args.limit,
               cache=args.cache, model=args.model, prepare_photos=args.prepare_photos)
    return cfg


# --------------------------------------------------------------------------------------------
# photo arms


def photo_code_tag() -> str:
    """Short digest of the code that makes a rectified photo (simulator, rectify, io).

    Part of the cache key: a changed detector or simulator must not reuse photos cached by the
    old code (the figures would silently describe the previous version).
    """
    import hashlib

    import photorad

    root = Path(photorad.__file__).resolve().parent
    h = hashlib.sha256()
    for sub in ("simulate", "rectify", "io"):
        for f in sorted((root / sub).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


def _image_seed(image_id: str, seed: int) -> int:
    return (zlib.crc32(image_id.encode()) + 1_000_003 * seed) % (2**31)


def displayed_original(rec: Record, *, roi: bool, margin: float) -> np.ndarray:
    """What the monitor shows: the lesion ROI (or the whole image) at its native resolution."""
    from photorad.classify import roi_box
    from photorad.io import load_original

    img = load_original(rec.path)
    if not roi:
        return img
    x0, y0, x1, y1 = roi_box(img.shape, rec.bbox, margin=margin)
    return np.ascontiguousarray(img[y0:y1, x0:x1])


class PhotoArms:
    """Simulate → detect (GT fallback) → warp → restore, cached per image on disk.

    The rectified photo (native ROI resolution) is cached once per simulator setting; restored
    versions are cached per restorer SHA-256, so a new restorer does not re-simulate.
    """

    def __init__(self, cfg: dict[str, Any], spec: PreprocessSpec, cache: Path) -> None:
        from photorad.rectify import detect, warp
        from photorad.simulate import simulate_photo

        self.simulate, self.detect, self.warp = simulate_photo, detect, warp
        self.cfg, self.spec = cfg, spec
        self.restorer = None
        self.restorer_error = "not requested"
        if set(cfg["arms"]) & set(RESTORED_ARMS):
            try:
                from photorad.restore import Restorer, default_restorer

                self.restorer = (Restorer.from_checkpoint(cfg["restorer"]) if cfg["restorer"]
                                 else default_restorer())
            except (ImportError, PhotoradError) as exc:
                if cfg["restorer"]:  # an explicit checkpoint that fails is the user's error
                    raise
                self.restorer_error = f"{type(exc).__name__}: {exc}"
        tag = f"{cfg['preset']}-{cfg['photo_size'][0]}x{cfg['photo_size'][1]}-s{cfg['seed']}" \
              f"-{'roi' if spec.roi else 'full'}{spec.margin}-code{photo_code_tag()}"
        self.cache = cache / tag
        self.cache.mkdir(parents=True, exist_ok=True)
        self.rcache = None
        if self.restorer is not None:
            self.rcache = self.cache / f"restored-{self.restorer.sha256[:16]}"
            self.rcache.mkdir(exist_ok=True)
        self.done: dict[str, dict[str, Any]] = {}

    def get(self, rec: Record) -> dict[str, Any]:
        """Prepared photo (and restored photo when a restorer is loaded) of one record."""
        if rec.id in self.done:
            return self.done[rec.id]
        f = self.cache / f"{rec.id}.npz"
        if f.is_file():
            z = np.load(f)
            d = {k: z[k] for k in z.files}
        else:
            d = self._make(rec)
            _save_npz(f, d)
        rect = d["rect"].astype(np.float32)
        out = {k: v for k, v in d.items() if k != "rect"}
        out["fallback"] = bool(out["fallback"])
        out["photo"] = prepare_image(rect, spec=self.spec)
        if self.restorer is not None:
            rf = self.rcache / f"{rec.id}.npz"
            if rf.is_file():
                r = dict(np.load(rf))
            else:
                t0 = time.perf_counter()
                restored = self.restorer.restore(rect)
                r = {"restored": restored.astype(np.float16),
                     "t_restore": np.float64(time.perf_counter() - t0)}
                _save_npz(rf, r)
            out["restored"] = prepare_image(r["restored"].astype(np.float32), spec=self.spec)
            out["t_restore"] = float(r["t_restore"])
        self.done[rec.id] = out
        return out

    def _make(self, rec: Record) -> dict[str, Any]:
        orig = displayed_original(rec, roi=self.spec.roi, margin=self.spec.margin)
        t0 = time.perf_counter()
        sim = self.simulate(orig, preset=self.cfg["preset"],
                            seed=_image_seed(rec.id, self.cfg["seed"]),
                            size=tuple(self.cfg["photo_size"]))
        t1 = time.perf_counter()
        fallback = False
        try:
            corners = self.detect(sim.photo).corners
        except NoScreenFoundError:
            fallback = True
            corners = sim.corners
        h, w = orig.shape
        rect = self.warp(sim.photo, corners, size=(w, h))
        t2 = time.perf_counter()
        return {
            # float16 halves the cache; its 11-bit mantissa is finer than the 8-bit source.
            "rect": rect.astype(np.float16),
            "fallback": np.bool_(fallback),
            "corner_err_px": np.float64(np.abs(np.asarray(corners) - sim.corners).max()),
            "t_sim": np.float64(t1 - t0), "t_rect": np.float64(t2 - t1),
        }


class FramePhotos:
    """Whole-frame photos as ``Pipeline.analyze`` sees them, cached per image on disk.

    Simulate the whole original on the monitor → detect (true corners where detection fails,
    counted) → warp at the pipeline's size cap → the localizer's box; with a restorer, also the
    restored image and its box. Each box is the most probable area, with whether it clears the
    shipped threshold. As in :class:`PhotoArms`, the rectified part is cached once per simulator
    setting and the restored part per restorer, so ``--prepare-photos`` needs no restorer.
    """

    def __init__(self, cfg: dict[str, Any], restorer: Any | None, cache: Path) -> None:
        from photorad.lesion import default_localizer
        from photorad.pipeline import DEFAULT_MAX_SIDE

        self.cfg, self.restorer = cfg, restorer
        self.localizer = default_localizer()
        self.max_side = DEFAULT_MAX_SIDE
        tag = (f"frame-{cfg['preset']}-{cfg['photo_size'][0]}x{cfg['photo_size'][1]}"
               f"-s{cfg['seed']}-m{self.max_side}-code{photo_code_tag()}"
               f"-l{str(self.localizer.sha256)[:12]}")
        self.cache = cache / tag
        self.cache.mkdir(parents=True, exist_ok=True)
        self.rcache = None
        if restorer is not None:
            self.rcache = self.cache / f"restored-{restorer.sha256[:16]}"
            self.rcache.mkdir(exist_ok=True)
        self.done: dict[str, dict[str, Any]] = {}

    def get(self, rec: Record) -> dict[str, Any]:
        if rec.id not in self.done:
            made: list[np.ndarray] = []  # the float32 rectified image when made just now

            def make() -> dict[str, Any]:
                d = self._make(rec)
                made.append(d.pop("rect32"))
                return d

            d = _cached(self.cache / f"{rec.id}.npz", make)
            if self.rcache is not None:
                # a fresh image is restored as the pipeline would (float32); a cached one from its
                # float16 copy (rounding 10× below the 8-bit photo's step)
                rect = made[0] if made else d["rect"].astype(np.float32)
                d = {**d, **_cached(self.rcache / f"{rec.id}.npz", lambda: self._restore(rect))}
            self.done[rec.id] = d
        return self.done[rec.id]

    def _make(self, rec: Record) -> dict[str, Any]:
        from photorad.io import load_original
        from photorad.pipeline import capped_size
        from photorad.rectify import detect, warp
        from photorad.simulate import simulate_photo

        orig = load_original(rec.path)
        sim = simulate_photo(orig, preset=self.cfg["preset"],
                             seed=_image_seed(rec.id, self.cfg["seed"]),
                             size=tuple(self.cfg["photo_size"]))
        fallback = False
        try:
            corners = np.asarray(detect(sim.photo).corners, dtype=np.float64)
        except NoScreenFoundError:
            fallback, corners = True, sim.corners
        rect = warp(sim.photo, corners, size=capped_size(corners, self.max_side))
        return {"rect": rect.astype(np.float16), "rect32": rect, "fallback": np.bool_(fallback),
                **self._box("rect", rect)}

    def _restore(self, rect: np.ndarray) -> dict[str, Any]:
        restored = np.clip(self.restorer.restore(rect), 0.0, 1.0).astype(np.float32)
        return {"restored": restored.astype(np.float16), **self._box("restored", restored)}

    def _box(self, key: str, img: np.ndarray) -> dict[str, Any]:
        box, found = lesion_box(self.localizer, img)
        return {f"box_{key}": np.asarray(box if box is not None else [-1, -1, -1, -1],
                                         dtype=np.float64),
                f"found_{key}": np.bool_(found)}


def _cached(path: Path, make: Any) -> dict[str, Any]:
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    d = make()
    _save_npz(path, d)
    return d


def lesion_box(localizer: Any, img: np.ndarray) -> tuple[tuple[int, ...] | None, bool]:
    """The localizer's most probable lesion box (any confidence) and whether it is confident."""
    from photorad.lesion import lesion_from_prob

    img = np.asarray(img, dtype=np.float32)
    prob = localizer.prob(img)
    best = lesion_from_prob(prob, min_confidence=0.0, min_area_fraction=0.0)
    if best.lesion is None:
        return None, False
    return best.lesion.box, localizer.judge(img, prob).lesion is not None


def _box_or_none(b: np.ndarray) -> tuple[float, ...] | None:
    return None if b[2] <= 0 else tuple(float(v) for v in b)


def original_frames(records: list[Record], idx: np.ndarray, spec: PreprocessSpec,
                    arms: list[str], progress: bool) -> dict[str, Any]:
    """Prepared whole originals and their localizer ROIs, for the records at ``idx`` only.

    ``pos`` maps a record index to its row in the arrays.
    """
    from photorad.io import load_original
    from photorad.lesion import default_localizer

    loc = default_localizer()
    whole_spec = PreprocessSpec(**{**spec.to_dict(), "roi": False})
    whole, auto, found = [], [], []
    for j, i in enumerate(idx):
        img = load_original(records[int(i)].path)
        whole.append(prepare_image(img, spec=whole_spec))
        if "auto_original" in arms:
            box, ok = lesion_box(loc, img)
            auto.append(prepare_image(img, spec=spec, bbox=box))
            found.append(ok)
        if progress and (j + 1) % 200 == 0:
            print(f"  whole originals {j + 1}/{len(idx)}", file=sys.stderr, flush=True)
    return {"whole_original": np.stack(whole),
            "auto_original": np.stack(auto) if auto else None,
            "found_original": np.array(found, dtype=bool) if found else None,
            "pos": {int(i): j for j, i in enumerate(idx)},
            "localizer": loc.info(), "localizer_held_out": set(loc.held_out)}


def frame_inputs(frames: FramePhotos, recs: list[Record], spec: PreprocessSpec
                 ) -> dict[str, np.ndarray]:
    """Prepared classifier inputs of the whole-frame photo arms, and the found flags.

    Arms whose image the cache lacks (``restored`` without a restorer) are left out.
    """
    whole_spec = PreprocessSpec(**{**spec.to_dict(), "roi": False})
    items = [frames.get(r) for r in recs]
    out: dict[str, np.ndarray] = {}
    for arm, (key, box_key) in FRAME_ARMS.items():
        if not items or key not in items[0]:
            continue
        out[arm] = np.stack([
            prepare_image(d[key].astype(np.float32), spec=whole_spec) if box_key is None
            else prepare_image(d[key].astype(np.float32), spec=spec,
                               bbox=_box_or_none(d[box_key]))
            for d in items])
    for name, key in (("found_photo", "found_rect"), ("found_restored", "found_restored")):
        if items and key in items[0]:
            out[name] = np.array([bool(d[key]) for d in items])
    return out


def _save_npz(path: Path, d: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **d)
    tmp.replace(path)


# --------------------------------------------------------------------------------------------
# study


def _inner_val(records: list[Record], train_idx: np.ndarray, *, seed: int) -> np.ndarray:
    """Positions in ``train_idx`` of a patient-grouped, stratified ~10 % validation set."""
    sub = [records[i] for i in train_idx]
    n_min = min(sum(r.label for r in sub), sum(1 - r.label for r in sub))
    k = int(min(10, max(2, n_min)))
    return grouped_folds(sub, n_splits=k, seed=seed)[0][1]


def _paired_stats(a: np.ndarray, b: np.ndarray, *, seed: int) -> dict[str, Any]:
    """Paired per-fold comparison of AUROC arrays a − b."""
    from scipy import stats

    d = np.asarray(a) - np.asarray(b)
    out: dict[str, Any] = {"mean_diff": float(d.mean()), "sd_diff": float(d.std(ddof=1))
                           if len(d) > 1 else float("nan"), "n_folds": int(len(d))}
    if len(d) > 1:
        out["paired_t_p"] = float(stats.ttest_rel(a, b).pvalue) if d.std() > 0 else 1.0
        try:
            out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
        except ValueError:
            out["wilcoxon_p"] = float("nan")
        _, lo, hi = bootstrap_ci(np.mean, d, n_boot=5000, seed=seed)
        out["bootstrap_ci95"] = [lo, hi]
    return out


def _fig_to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()


def plot_roc(pred: list[dict[str, Any]], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from photorad.io import save_png

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=110)
    y = np.array([p["label"] for p in pred])
    for arm in arms:
        s = np.array([p.get(arm, np.nan) for p in pred], dtype=float)
        ok = np.isfinite(s)
        if ok.sum() < 2:
            continue
        fpr, tpr, _ = roc_curve(y[ok], s[ok])
        ax.plot(fpr, tpr, label=f"{arm} (pooled AUROC {auroc(y[ok], s[ok]):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("Pooled test predictions (all folds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout(rect=(0.0, 0.04, 1.0, 1.0))
    fig.text(0.01, 0.01, DISCLAIMER, fontsize=7, color="grey")
    save_png(path, _fig_to_rgb(fig))
    plt.close(fig)


def plot_box(rows: list[dict[str, Any]], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from photorad.io import save_png

    data = [[r[arm] for r in rows if r.get(arm) is not None] for arm in arms]
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=110)
    ax.boxplot(data, tick_labels=arms, showmeans=True)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.08, 0.08, len(d)), d, s=10, alpha=0.6)
    ax.set_ylabel("AUROC per test fold")
    ax.set_title(f"{len(rows)} test folds")
    fig.tight_layout(rect=(0.0, 0.04, 1.0, 1.0))
    fig.text(0.01, 0.01, DISCLAIMER, fontsize=7, color="grey")
    save_png(path, _fig_to_rgb(fig))
    plt.close(fig)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4f}"
    return "—" if v is None else str(v)


def write_tables(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any],
                 arms: list[str]) -> None:
    cols = ["repeat", "fold", "n_test", "n_malignant", "original_all", "n_paired", *arms,
            "fallbacks", "train_s", "photo_arms_s", "best_epoch"]
    with (out / "per_fold.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "per_fold.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    (out / "per_fold.md").write_text("\n".join(md) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = (f"hold-out evaluation of `{summary['config']['model']}`"
             if summary["mode"] == "hold-out" else f"profile `{summary['config']['profile']}`")
    lines = [f"# AUROC study — {title}", "",
             f"{DISCLAIMER}", "", f"Command: `{summary['command']}`", "",
             f"Wall time: {summary['wall_s']:.0f} s (process CPU time {summary['cpu_s']:.0f} s); "
             f"{summary['machine']}", "",
             f"`original_all`: all test images ({summary['n_images']} per repeat); the other arms: "
             f"the same {summary['n_paired_images']} images in every arm (paired).", "",
             "| arm | mean AUROC | sd | folds | pooled AUROC |", "|---|---|---|---|---|"]
    for arm in ["original_all", *arms]:
        a = summary["arms"].get(arm, {})
        lines.append(f"| {arm} | {_fmt(a.get('mean'))} | {_fmt(a.get('sd'))} | "
                     f"{a.get('n_folds', 0)} | {_fmt(a.get('pooled_auroc'))} |")
    for arm, why in summary.get("not_run", {}).items():
        lines.append(f"| {arm} | not run: {why} | | | |")
    lines += ["", "Paired per-fold differences (a − b):", "",
              "| a − b | mean | sd | paired t p | Wilcoxon p | bootstrap 95 % CI |",
              "|---|---|---|---|---|---|"]
    for name, d in summary["paired"].items():
        ci = d.get("bootstrap_ci95")
        lines.append(f"| {name} | {_fmt(d['mean_diff'])} | {_fmt(d['sd_diff'])} | "
                     f"{_fmt(d.get('paired_t_p'))} | {_fmt(d.get('wilcoxon_p'))} | "
                     f"{'[' + ', '.join(f'{c:.4f}' for c in ci) + ']' if ci else '—'} |")
    if summary.get("delong_pooled"):
        lines += ["", "DeLong test on the pooled test cases (each image scored once):", "",
                  "| a − b | AUROC difference | 95 % CI | p |", "|---|---|---|---|"]
        for name, d in summary["delong_pooled"].items():
            lines.append(f"| {name} | {d['diff']:.4f} | [{d['ci95'][0]:.4f}, {d['ci95'][1]:.4f}]"
                         f" | {d['p']:.2g} |")
    if summary.get("photo"):
        ph = summary["photo"]
        lines += ["", f"Photo arms: {ph['n_images']} images simulated (`{summary['config']['preset']}`, "
                  f"{summary['config']['photo_size'][0]}×{summary['config']['photo_size'][1]} px); "
                  f"detection fell back to ground-truth corners for {ph['fallbacks']} "
                  f"({100.0 * ph['fallbacks'] / max(1, ph['n_images']):.1f} %)."]
    lines += _lesion_lines(summary)
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def _lesion_lines(summary: dict[str, Any]) -> list[str]:
    les = {k: v for k, v in (summary.get("lesion") or {}).items() if k.startswith("auto_")}
    if not les:
        return []
    fr = summary.get("frames") or {}
    lines = ["", "Automatic lesion ROI (`auto_*` arms; localizer "
             f"`{summary['lesion'].get('localizer', {}).get('name')}`; whole-frame photos: "
             f"{fr.get('n_images', 0)}, detection fell back to true corners for "
             f"{fr.get('fallbacks', 0)}): share found at the shipped confidence threshold (the "
             "pipeline scores only those), pooled AUROC over them, and pooled AUROC over the "
             "localizer's held-out patients beside the ground-truth ROI (`original`) on the same "
             "images:", "",
             "| arm | found | AUROC (found) | held-out images | AUROC held-out | "
             "GT ROI held-out |", "|---|---|---|---|---|---|"]
    for arm, d in les.items():
        lines.append(f"| {arm} | {100 * d['found_rate']:.1f} % | "
                     f"{_fmt(d.get('auroc_found'))} | {d.get('n_unseen', 0)} | "
                     f"{_fmt(d.get('auroc_unseen'))} | {_fmt(d.get('original_unseen'))} |")
    return lines


def lesion_summary(preds: list[dict[str, Any]], arms: list[str], orig_frames: Any,
                   frames: Any) -> dict[str, Any]:
    """Coverage and AUROC of the ``auto_*`` arms: found at the shipped threshold, unseen patients.

    ``found_rate``: share of scored images where the localizer clears its threshold (the rest
    get no score in the pipeline); ``auroc_found``: pooled AUROC over those; ``auroc_unseen``
    (and ``original_unseen``, the ground-truth ROI on the same images): pooled over the
    localizer's held-out patients only.
    """
    out: dict[str, Any] = {}
    held: set[str] = set()
    if orig_frames is not None:
        held = orig_frames["localizer_held_out"]
        out["localizer"] = orig_frames["localizer"]
    elif frames is not None:
        held = set(frames.localizer.held_out)
        out["localizer"] = frames.localizer.info()
    y = np.array([p["label"] for p in preds])
    for arm, key in (("auto_original", "found_original"), ("auto_photo", "found_photo"),
                     ("auto_restored", "found_restored")):
        if arm not in arms:
            continue
        s = np.array([p.get(arm, np.nan) for p in preds], dtype=float)
        f = np.array([bool(p.get(key, False)) for p in preds])
        ok = np.isfinite(s)
        d: dict[str, Any] = {"n": int(ok.sum()), "found_rate": float(f[ok].mean()) if ok.any()
                             else float("nan")}
        sel = ok & f
        if 0 < y[sel].sum() < sel.sum():
            d["auroc_found"] = auroc(y[sel], s[sel])
        unseen = ok & np.array([p["patient"] in held for p in preds])
        if 0 < y[unseen].sum() < unseen.sum():
            d["n_unseen"] = int(unseen.sum())
            d["auroc_unseen"] = auroc(y[unseen], s[unseen])
            o = np.array([p.get("original", np.nan) for p in preds], dtype=float)
            if np.isfinite(o[unseen]).all():
                d["original_unseen"] = auroc(y[unseen], o[unseen])
        out[arm] = d
    return out


def run_study(cfg: dict[str, Any], *, out: Path, progress: bool, command: str) -> dict[str, Any]:
    import torch

    from photorad.provenance import machine_info

    t_start = time.perf_counter()
    torch.set_num_threads(int(cfg["threads"]))
    root = Path(cfg["data_root"]) if cfg.get("data_root") else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or set PHOTORAD_DATA")
    records = load_records(root)
    if cfg["limit"]:
        rng = np.random.default_rng(cfg["seed"])
        records = [records[i] for i in sorted(rng.choice(len(records), cfg["limit"], replace=False))]
    spec = PreprocessSpec(size=int(cfg["size"]), roi=cfg["roi"], margin=float(cfg["margin"]))
    fixed = None
    if cfg.get("model"):
        # Hold-out mode: no training; a given checkpoint is scored on the patients its sidecar
        # lists as test patients (the shipped model: patients it never saw).
        from photorad.classify import Classifier

        fixed = Classifier.from_checkpoint(cfg["model"], device=cfg["device"])
        spec = fixed.spec
        held = set(fixed.meta.extra.get("test_patients") or [])
        if not held:
            raise ConfigError(f"{cfg['model']}: sidecar lists no test_patients; cannot evaluate "
                              "without leaking training patients")
        cfg.update(repeats=1, splits=1, size=spec.size, roi=spec.roi, margin=spec.margin,
                   arch=fixed.meta.architecture, model_sha256=fixed.sha256)
        cfg["arms"] = [a for a in cfg["arms"] if a != "finetuned"]
    tcfg = TrainConfig(arch=cfg["arch"], model_kwargs=dict(cfg["model_kwargs"]),
                       epochs=int(cfg["epochs"]), patience=int(cfg["patience"]),
                       batch_size=int(cfg["batch_size"]), lr=float(cfg["lr"]),
                       device=cfg["device"])
    out.mkdir(parents=True, exist_ok=True)

    def log(*a: Any) -> None:
        print(*a, file=sys.stderr, flush=True)

    log(f"loading {len(records)} originals …")
    images = load_cls_images(records, spec=spec, progress=progress)
    labels = np.array([r.label for r in records])
    if fixed is not None:
        is_test = np.array([r.group in held for r in records])
        fixed_split = (np.flatnonzero(~is_test), np.flatnonzero(is_test))

    arms = list(cfg["arms"])
    not_run: dict[str, str] = {}
    if fixed is not None:
        not_run["finetuned"] = "hold-out mode (--model) trains nothing"
    photo: PhotoArms | None = None
    photo_arms = [a for a in arms if a != "original"]
    if photo_arms:
        try:
            photo = PhotoArms(cfg, spec, Path(cfg["cache"]))
        except (ImportError, PhotoradError) as exc:
            for a in photo_arms:
                not_run[a] = f"{type(exc).__name__}: {exc}"
            arms = ["original"]
            log(f"photo arms not run: {exc}")
    if photo is not None and photo.restorer is None:
        for a in RESTORED_ARMS:
            if a in arms:
                arms.remove(a)
                not_run[a] = photo.restorer_error
    frames = orig_frames = None
    if any(a in arms for a in FRAME_ARMS) and photo is not None:
        frames = FramePhotos(cfg, photo.restorer, Path(cfg["cache"]))

    # Photo arms run on a fixed random subset of images (all of them in the full profile):
    # simulation dominates the CPU budget. All arms, "original" included, are scored on the same
    # subset so that per-fold differences are paired; "original_all" is the whole test fold.
    frac = float(cfg["photo_fraction"]) if photo is not None else 1.0
    in_sub = np.random.default_rng(int(cfg["seed"]) + 4242).random(len(records)) < frac
    if frac >= 1.0:
        in_sub[:] = True
    if ("whole_original" in arms or "auto_original" in arms) and not cfg.get("prepare_photos"):
        log("whole originals and their lesion ROIs …")
        orig_frames = original_frames(records, np.flatnonzero(in_sub), spec, arms, progress)
    if cfg.get("prepare_photos"):
        if photo is None:
            raise ConfigError("--prepare-photos: the photo arms could not be set up "
                              f"({not_run.get('photo', 'not requested')})")
        todo = np.flatnonzero(in_sub)
        log(f"preparing {len(todo)} rectified photos in {photo.cache} …")
        for j, i in enumerate(todo):
            if set(arms) & {"photo", "restored", "finetuned"}:
                photo.get(records[i])
            if frames is not None:
                frames.get(records[i])
            if progress and (j + 1) % 50 == 0:
                log(f"  {j + 1}/{len(todo)}")
        return {"prepared": int(len(todo)), "cache": str(photo.cache)}
    rows: list[dict[str, Any]] = []
    preds: list[dict[str, Any]] = []
    # image index → localizer found the lesion at the shipped threshold (auto_* arms)
    found: dict[str, dict[int, bool]] = {"found_original": {}, "found_photo": {},
                                         "found_restored": {}}
    for rep in range(int(cfg["repeats"])):
        seed = int(cfg["seed"]) + rep
        if fixed is not None:
            folds = [fixed_split]
        else:
            folds = grouped_folds(records, n_splits=int(cfg["splits"]), seed=seed)
        for k, (tr_all, te) in enumerate(folds):
            t0 = time.perf_counter()
            if fixed is not None:
                res = FitResult(model=fixed.model, best_epoch=-1, best_val_auroc=float("nan"),
                                history=[], last_state={})
                va = tr = tr_all
            else:
                va = tr_all[_inner_val(records, tr_all, seed=seed + 100 * k)]
                tr = np.setdiff1d(tr_all, va)
                res = fit(images[tr], labels[tr], images[va], labels[va], cfg=tcfg, spec=spec,
                          seed=seed * 1000 + k, progress=progress,
                          on_epoch=lambda r, k=k: log(f"fold {k} epoch {r['epoch']}: loss "
                                                       f"{r['train_loss']:.3f} val AUROC "
                                                       f"{r['val_auroc']:.3f}"))
            train_s = time.perf_counter() - t0
            p_all = predict_proba(res.model, images[te], spec=spec, device=tcfg.device)
            te_s = te[in_sub[te]]
            scores: dict[str, np.ndarray] = {"original": p_all[in_sub[te]]}
            fallbacks = 0
            t1 = time.perf_counter()
            if frames is not None:
                fi = frame_inputs(frames, [records[i] for i in te_s], spec)
                for arm in FRAME_ARMS:
                    if arm in arms and arm in fi:
                        scores[arm] = predict_proba(res.model, fi[arm], spec=spec,
                                                    device=tcfg.device)
                for key in ("found_photo", "found_restored"):
                    if key in fi:
                        found[key].update({int(i): bool(f) for i, f in zip(te_s, fi[key],
                                                                            strict=True)})
            if orig_frames is not None:
                rows_s = [orig_frames["pos"][int(i)] for i in te_s]
                for arm in ("whole_original", "auto_original"):
                    if arm in arms:
                        scores[arm] = predict_proba(res.model, orig_frames[arm][rows_s],
                                                    spec=spec, device=tcfg.device)
                if orig_frames["found_original"] is not None:
                    found["found_original"].update(
                        {int(i): bool(orig_frames["found_original"][j])
                         for i, j in zip(te_s, rows_s, strict=True)})
            if photo is not None and set(arms) & {"photo", "restored", "finetuned"}:
                feats = [photo.get(records[i]) for i in te_s]
                fallbacks = int(sum(bool(f["fallback"]) for f in feats))
                x_photo = np.stack([f["photo"] for f in feats])
                if "photo" in arms:
                    scores["photo"] = predict_proba(res.model, x_photo, spec=spec,
                                                    device=tcfg.device)
                if "restored" in arms or "finetuned" in arms:
                    x_rest = np.stack([f["restored"] for f in feats])
                if "restored" in arms:
                    scores["restored"] = predict_proba(res.model, x_rest, spec=spec,
                                                       device=tcfg.device)
                if "finetuned" in arms:
                    rng = np.random.default_rng(seed * 1000 + k)
                    ft_tr = tr[in_sub[tr]]
                    if cfg["finetune_limit"] and len(ft_tr) > int(cfg["finetune_limit"]):
                        ft_tr = np.sort(rng.choice(ft_tr, int(cfg["finetune_limit"]),
                                                   replace=False))
                    fv = va[in_sub[va]]
                    if len(fv) < 2 or len(np.unique(labels[fv])) < 2:
                        # The photo subset of a small validation set can miss a class; early
                        # stopping then uses restored photos of the whole validation set.
                        fv = va
                    x_ft = np.stack([photo.get(records[i])["restored"] for i in ft_tr])
                    x_fv = np.stack([photo.get(records[i])["restored"] for i in fv])
                    ft_cfg = TrainConfig(**{**tcfg.__dict__, "epochs": int(cfg["finetune_epochs"]),
                                            "lr": float(cfg["finetune_lr"]), "warmup_epochs": 0,
                                            "patience": int(cfg["finetune_epochs"])})
                    ft = fit(x_ft, labels[ft_tr], x_fv, labels[fv], cfg=ft_cfg, spec=spec,
                             seed=seed * 1000 + k + 7, init_state=res.model.state_dict(),
                             progress=progress)
                    scores["finetuned"] = predict_proba(ft.model, x_rest, spec=spec,
                                                        device=tcfg.device)
            row: dict[str, Any] = {"repeat": rep, "fold": k, "n_test": int(len(te)),
                                   "n_malignant": int(labels[te].sum()),
                                   "n_paired": int(len(te_s)), "fallbacks": fallbacks,
                                   "train_s": round(train_s, 1),
                                   "photo_arms_s": round(time.perf_counter() - t1, 1),
                                   "best_epoch": res.best_epoch,
                                   "original_all": auroc(labels[te], p_all)}
            for arm, sc in scores.items():
                row[arm] = auroc(labels[te_s], sc)
            rows.append(row)
            pos = {int(i): j for j, i in enumerate(te_s)}
            for j, i in enumerate(te):
                p = {"id": records[i].id, "patient": records[i].group, "repeat": rep,
                     "fold": k, "label": int(labels[i]), "original_all": float(p_all[j])}
                for arm, sc in scores.items():
                    p[arm] = float(sc[pos[int(i)]]) if int(i) in pos else float("nan")
                for key, d in found.items():
                    if int(i) in d:
                        p[key] = d[int(i)]
                preds.append(p)
            log(json.dumps({kk: (round(v, 4) if isinstance(v, float) else v)
                            for kk, v in row.items()}))
            # A long run that is stopped still leaves the folds it finished.
            (out / "per_fold.partial.json").write_text(json.dumps(rows, indent=2) + "\n")

    summary: dict[str, Any] = {"config": cfg, "command": command, "disclaimer": DISCLAIMER,
                               "arms": {}, "paired": {}, "delong_pooled": {},
                               "not_run": not_run,
                               "mode": "hold-out" if fixed is not None else "cross-validation",
                               "n_images": sum(r["n_test"] for r in rows if r["repeat"] == 0),
                               "n_paired_images": sum(r["n_paired"] for r in rows
                                                      if r["repeat"] == 0)}
    y_all = np.array([p["label"] for p in preds])
    for arm in ["original_all", *arms]:
        v = np.array([r[arm] for r in rows])
        s_all = np.array([p[arm] for p in preds])
        ok = np.isfinite(s_all)
        summary["arms"][arm] = {"mean": float(v.mean()),
                                "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                                "n_folds": int(len(v)), "pooled_auroc": auroc(y_all[ok], s_all[ok])}
    pairs = [("original", "photo"), ("original", "restored"), ("restored", "photo"),
             ("finetuned", "restored"), ("original", "finetuned"),
             ("original", "auto_original"), ("original", "whole_original"),
             ("auto_original", "whole_original"), ("original", "auto_restored"),
             ("auto_restored", "whole_restored"), ("auto_photo", "whole_photo"),
             ("restored", "auto_restored")]
    for a, b in pairs:
        if a in arms and b in arms:
            va_, vb_ = np.array([r[a] for r in rows]), np.array([r[b] for r in rows])
            summary["paired"][f"{a} − {b}"] = _paired_stats(va_, vb_, seed=int(cfg["seed"]))
            if int(cfg["repeats"]) == 1:  # each image once: a DeLong test on pooled cases is valid
                sa = np.array([p[a] for p in preds])
                sb = np.array([p[b] for p in preds])
                ok = np.isfinite(sa) & np.isfinite(sb)
                c = delong_test(y_all[ok], sa[ok], sb[ok])
                summary["delong_pooled"][f"{a} − {b}"] = {
                    "diff": c.diff, "ci95": [c.ci_low, c.ci_high], "p": c.p_value}
    summary["lesion"] = lesion_summary(preds, arms, orig_frames, frames)
    if frames is not None:
        fd = list(frames.done.values())
        summary["frames"] = {"n_images": len(fd),
                             "fallbacks": int(sum(bool(f["fallback"]) for f in fd))}
    if photo is not None and photo.done:
        feats = list(photo.done.values())
        summary["photo"] = {
            "n_images": len(feats),
            "fallbacks": int(sum(bool(f["fallback"]) for f in feats)),
            "median_corner_err_px": float(np.median([f["corner_err_px"] for f in feats])),
            "mean_sim_s": float(np.mean([f["t_sim"] for f in feats])),
            "mean_rectify_s": float(np.mean([f["t_rect"] for f in feats])),
        }
        if photo.restorer is not None:
            summary["photo"]["restorer"] = {"name": photo.restorer.name,
                                            "sha256": photo.restorer.sha256}
    summary["wall_s"] = time.perf_counter() - t_start
    # CPU seconds are what the run costs independent of other jobs sharing the machine.
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    summary["cpu_s"] = ru.ru_utime + ru.ru_stime
    try:
        import os

        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    mi = machine_info()
    summary["machine"] = (f"{mi['cpu_count']} CPUs, torch threads {mi.get('torch_threads')}, "
                          f"cuda={mi.get('cuda')}, load average at end {load[0]:.2f}/"
                          f"{load[1]:.2f}/{load[2]:.2f} (1/5/15 min)")
    with (out / "predictions.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "patient", "repeat", "fold", "label",
                                           "original_all", *arms, *found],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(preds)
    write_tables(out, rows, summary, arms)
    (out / "per_fold.partial.json").unlink(missing_ok=True)
    plot_roc(preds, arms, out / "roc.png")
    plot_box(rows, arms, out / "box.png")
    data_hash = hash_files([r.path for r in records], root=root)
    write_run_info(out, {**cfg, "data_root": str(root)}, data_hashes={"bus-bra": data_hash})
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = resolve(args)
    cfg["data_root"] = args.data_root
    if args.profile == "full":
        import torch

        if cfg["device"] in ("auto", "cuda") and not torch.cuda.is_available():
            print("auroc_cv: warning: --profile full is meant for a GPU; none found, running on "
                  "CPU will take days", file=sys.stderr)
    command = "python eval/auroc_cv.py " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = run_study(cfg, out=Path(args.out), progress=not args.no_progress, command=command)
    if "prepared" in summary:
        print(json.dumps(summary))
        return 0
    print(json.dumps({"arms": summary["arms"], "paired": summary["paired"],
                      "not_run": summary["not_run"], "wall_s": round(summary["wall_s"], 1),
                      "photo": summary.get("photo")}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"auroc_cv: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
