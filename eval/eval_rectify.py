"""Rectification accuracy on simulated phone photos of BUS-BRA images (issue 4 targets).

For each preset, N BUS-BRA originals (seeded choice; the full dataset when found, else the
embedded sample, cycled) are rendered by ``photorad.simulate.simulate_photo``; ``detect`` is run
on the photo and compared with the ground-truth corners:

* detection rate (no ``NoScreenFoundError``);
* corner error in % of the ground-truth quad diagonal (per corner, and per photo the mean of 4);
* SmartDoc-2015 Jaccard index: both quads are mapped into the ground-truth image frame (the
  original's rectangle) by the homography that maps the ground-truth quad onto it, and their
  polygon IoU is taken there; a failed detection scores 0.

* edge visibility, computed from the original and the simulator's viewer/display settings only
  (independent of ``detect``): for each image border, the median drive value ``d`` of its
  outermost band (1 % of the image side, at least 2 px) after the viewer's window/level is
  turned into emitted luminance ``L(d) = black_level + (1 - black_level) d^gamma`` and compared
  with the empty viewport's ``L(viewport_grey)`` plus the ambient light it reflects
  (``ambient × screen_reflectance``): Weber contrast ``C = (L(d) - L(vp)) / (L(vp) + ambient ×
  screen_reflectance)``. A border is *visible* when ``C ≥ VISIBLE_CONTRAST`` (0.5: a 50 %
  luminance step over the surrounding background); the all-photo figures are always reported,
  and next to them the same figures restricted to photos whose four borders are visible.

* content box: the share of the image inside the bounding box of its visible content (see
  :func:`content_box_fraction`), also from the original and the simulator's settings only — a
  ceiling on what a detector that finds the content's extent can score.

* honesty: a detected quad is *bad* when its Jaccard index is below ``BAD_JACCARD`` (0.9) and
  *flagged* when ``detect`` warned (``edges_not_found``, ``screen_edge_sides``, ``inner_sides`` or
  ``background_inside_sides`` non-empty — the quality report's ``edges`` check then warns — or a
  score below 0.5); the summary counts bad
  quads that are not flagged (wrong answers given silently) and good quads that are (false
  alarms).

Writes ``OUT/<preset>.csv`` (one row per photo), ``OUT/summary.json``, ``OUT/summary.md`` and
``OUT/run_info.json``.

Usage::

    python eval/eval_rectify.py --presets typical hard --n 200 --size 2016x1512 \
        --out results/rectify
    python eval/eval_rectify.py -c eval/configs/rectify.yaml   # YAML keys = option names
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from photorad.cli._util import parse_size
from photorad.data.bus_bra import load_records
from photorad.data.paths import find_shared_data, sample_dir
from photorad.errors import ConfigError, PhotoradError
from photorad.io import load_original
from photorad.provenance import hash_files, write_run_info
from photorad.rectify import detect, warp
from photorad.rectify.geometry import quad_size, rect_corners
from photorad.rectify.quality import edges_flagged
from photorad.rectify.warp import apply_homography, homography
from photorad.simulate import simulate_photo
from photorad.simulate.viewer import apply_window

DEFAULTS: dict[str, Any] = {
    "presets": ["typical", "hard"],
    "n": 200,
    "size": "2016x1512",
    "seed": 0,
    "out": "results/rectify",
    "workers": 1,
    "data": None,
    "real": False,
}


#: Smallest Weber contrast of a border band's luminance over the viewport for a visible border.
VISIBLE_CONTRAST = 0.5
SIDES = ("top", "right", "bottom", "left")


def edge_contrast(original: np.ndarray, params: dict[str, Any]) -> dict[str, float]:
    """Weber luminance contrast of each image border over the empty viewport (see module doc).

    Uses only the original and the simulator's viewer/display/scene parameters, never the photo
    or the detector, so that "visible" is defined independently of what is evaluated.
    """
    shown = apply_window(original, width=params["window_width"], level=params["window_level"])
    h, w = shown.shape
    kh, kw = max(2, round(0.01 * h)), max(2, round(0.01 * w))
    bands = {"top": shown[:kh], "right": shown[:, -kw:], "bottom": shown[-kh:],
             "left": shown[:, :kw]}
    black, gamma = float(params["black_level"]), float(params["display_gamma"])

    def lum(d: float) -> float:
        return black + (1.0 - black) * d**gamma

    vp = lum(float(params["viewport_grey"]))
    veil = float(params["ambient"]) * float(params["screen_reflectance"])
    return {k: (lum(float(np.median(b))) - vp) / (vp + veil) for k, b in bands.items()}


#: Smallest Weber contrast (either sign) of a displayed pixel over the viewport for it to count as
#: visible content in :func:`content_box_fraction`.
CONTENT_CONTRAST = 0.1
#: Share of a row's (column's) pixels that must be visible content for the row (column) to count.
CONTENT_LINE_SHARE = 0.02


def content_box_fraction(original: np.ndarray, params: dict[str, Any]) -> float:
    """Share of the image's area inside the bounding box of its visible content.

    A pixel is visible content when its emitted luminance differs from the empty viewport's by a
    Weber contrast of at least :data:`CONTENT_CONTRAST` (as in :func:`edge_contrast`); the box
    spans the first to the last row and column with at least :data:`CONTENT_LINE_SHARE` of such
    pixels. A detector that places borders only where content shows cannot, on average, score
    a Jaccard index above this (camera blur and noise ignored), so its mean over the photos
    says how much of the gap to 1 is physically invisible and how much is the detector's.
    """
    shown = apply_window(original, width=params["window_width"], level=params["window_level"])
    black, gamma = float(params["black_level"]), float(params["display_gamma"])
    lum = black + (1.0 - black) * np.asarray(shown, np.float64) ** gamma
    vp = black + (1.0 - black) * float(params["viewport_grey"]) ** gamma
    veil = float(params["ambient"]) * float(params["screen_reflectance"])
    seen = np.abs(lum - vp) / (vp + veil) >= CONTENT_CONTRAST
    rows = np.flatnonzero(seen.mean(axis=1) >= CONTENT_LINE_SHARE)
    cols = np.flatnonzero(seen.mean(axis=0) >= CONTENT_LINE_SHARE)
    if len(rows) == 0 or len(cols) == 0:
        return 0.0
    h, w = seen.shape
    return float((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) / (h * w))


def jaccard_smartdoc(found: np.ndarray, truth: np.ndarray, image_size: tuple[int, int]) -> float:
    """SmartDoc-2015 Jaccard index of two quads, computed in the ground-truth image frame."""
    w, h = image_size
    rect = rect_corners(w, h)
    hm = homography(truth, rect)
    den = (np.c_[found, np.ones(4)] @ hm.T)[:, 2]
    if np.any(den <= 0):
        return 0.0
    q = apply_homography(hm, found).astype(np.float32)
    if not cv2.isContourConvex(q.reshape(-1, 1, 2)):
        return 0.0
    area_q = abs(cv2.contourArea(q))
    area_r = float(w * h)
    inter, _ = cv2.intersectConvexConvex(rect.astype(np.float32), q)
    union = area_q + area_r - inter
    return float(inter / union) if union > 0 else 0.0


#: A detected quad is *bad* when its Jaccard index is below this.
BAD_JACCARD = 0.9
#: A quad with a score below this is flagged (``detect`` caps the score of flagged quads at 0.5).
FLAG_SCORE = 0.5


def is_flagged(details: dict[str, Any], score: float) -> bool:
    """Whether ``detect`` told the user to check the corners: a side not found, a quad that may
    be the whole screen, a side that seems to lie inside the image, viewer background just
    inside two or more sides (all four make the quality report's ``edges`` check warn), or a
    low score."""
    return edges_flagged(details) or score < FLAG_SCORE


def pick_records(records: list[Any], rng: np.random.Generator, n: int) -> list[Any]:
    """The ``n`` originals one preset uses: a fresh permutation of ``records``, cycled if short.

    ``main`` calls it once per preset with the same generator, so preset k of a run with seed s
    uses the k-th permutation drawn by ``np.random.default_rng(s)``
    (``train/train_segmenter.py`` relies on this to keep those patients out of training).
    """
    idx = rng.permutation(len(records))
    return [records[idx[i % len(idx)]] for i in range(n)]


def one(job: tuple[str, str, str, int, tuple[int, int]]) -> dict[str, Any]:
    """Simulate one photo and score detection on it."""
    preset, rid, path, seed, size = job
    original = load_original(path)
    res = simulate_photo(original, preset=preset, seed=seed, size=size)
    truth = res.corners
    diag = float(np.hypot(*quad_size(truth)))
    row: dict[str, Any] = {"preset": preset, "id": rid, "seed": seed, "diag_px": round(diag, 2)}
    contrast = edge_contrast(original, res.params)
    row.update({f"contrast_{k}": round(v, 3) for k, v in contrast.items()})
    row["edges_visible"] = int(min(contrast.values()) >= VISIBLE_CONTRAST)
    row["content_box"] = round(content_box_fraction(original, res.params), 4)
    t0 = time.perf_counter()
    try:
        quad = detect(res.photo)
        warp(res.photo, quad, size=(original.shape[1], original.shape[0]))
    except PhotoradError as exc:
        row.update(detected=0, reason=str(exc)[:120], jaccard=0.0, edges_not_found="",
                   seconds=round(time.perf_counter() - t0, 4))
        return row
    err = np.hypot(*(quad.corners - truth).T) / diag * 100.0
    row.update(
        detected=1,
        reason="",
        score=round(quad.score, 4),
        method=quad.method,
        edges_not_found=" ".join(quad.details.get("edges_not_found", [])),
        screen_edge_sides=" ".join(quad.details.get("screen_edge_sides", [])),
        inner_sides=" ".join(quad.details.get("inner_sides", [])),
        background_inside_sides=" ".join(quad.details.get("background_inside_sides", [])),
        blur_px=quad.details.get("blur_px", 0.0),
        retried_side=quad.details.get("retried_side", ""),
        flagged=int(is_flagged(quad.details, quad.score)),
        **{f"err{k}_pct": round(float(e), 4) for k, e in enumerate(err)},
        mean_err_pct=round(float(err.mean()), 4),
        jaccard=round(jaccard_smartdoc(quad.corners, truth, original.shape[::-1]), 5),
        seconds=round(time.perf_counter() - t0, 4),
    )
    return row


def summarise(rows: list[dict[str, Any]], *, split: bool = True) -> dict[str, Any]:
    """Figures over ``rows``; with ``split`` also over the photos with four visible borders."""
    det = [r for r in rows if r["detected"]]
    per_corner = np.array([r[f"err{k}_pct"] for r in det for k in range(4)]) if det else np.array([])
    per_photo = np.array([r["mean_err_pct"] for r in det]) if det else np.array([])
    jac = np.array([r["jaccard"] for r in rows])
    out: dict[str, Any] = {
        "n": len(rows),
        "detection_rate": len(det) / max(len(rows), 1),
        "median_corner_error_pct_of_diag": float(np.median(per_corner)) if det else None,
        "p90_corner_error_pct_of_diag": float(np.percentile(per_corner, 90)) if det else None,
        "median_photo_mean_error_pct": float(np.median(per_photo)) if det else None,
        "mean_jaccard_failed_as_0": float(jac.mean()) if len(jac) else None,
        "share_jaccard_ge_0.98": float(np.mean(jac >= 0.98)) if len(jac) else None,
        "median_detect_warp_s": float(np.median([r["seconds"] for r in rows])) if rows else None,
        "mean_content_box": (float(np.mean([r["content_box"] for r in rows]))
                             if rows and all("content_box" in r for r in rows) else None),
    }
    if det:
        # How often the "edge not found" flag fires, and how often it is right (a flagged photo
        # whose worst corner is off by more than 1 % of the diagonal).
        flagged = [r for r in det if r.get("edges_not_found")]
        bad = [r for r in det if max(r[f"err{k}_pct"] for k in range(4)) > 1.0]
        out["share_flagged_edge_not_found"] = len(flagged) / len(det)
        out["share_bad_corners_flagged"] = (
            sum(1 for r in bad if r.get("edges_not_found")) / len(bad) if bad else None
        )
        # Honesty: a detected quad with Jaccard < BAD_JACCARD that is not flagged (see
        # is_flagged) is a wrong answer given silently; a flagged quad with Jaccard ≥
        # BAD_JACCARD is a false alarm.
        wrong = [r for r in det if r["jaccard"] < BAD_JACCARD]
        right = [r for r in det if r["jaccard"] >= BAD_JACCARD]
        out["n_bad_quads"] = len(wrong)
        out["n_bad_unflagged"] = sum(1 for r in wrong if not r.get("flagged"))
        out["n_good_quads"] = len(right)
        out["n_good_flagged"] = sum(1 for r in right if r.get("flagged"))
    if split:
        vis = [r for r in rows if r.get("edges_visible")]
        out["share_edges_visible"] = len(vis) / max(len(rows), 1)
        out["edges_visible"] = summarise(vis, split=False) if vis else None
    return out


def eval_real(out: Path) -> list[dict[str, Any]]:
    """``align`` on the real screen photos vs hand-picked pairs (errors in screenshot px)."""
    import warnings

    from photorad.io import load_photo
    from photorad.io.original import ColourConvertedWarning
    from photorad.rectify import align

    root = find_shared_data("screen-photos")
    points = Path(__file__).resolve().parent.parent / "tests" / "data" / "screen_points"
    rows: list[dict[str, Any]] = []
    if root is None:
        print("real screen photos not found; skipped")
        return rows
    for n in range(1, 11):
        photo_path, shot_path = root / f"photo{n}.jpg", root / f"screenshot{n}.png"
        if not photo_path.exists():
            continue
        row: dict[str, Any] = {"photo": photo_path.name}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColourConvertedWarning)
            shot = load_original(shot_path)
        t0 = time.perf_counter()
        try:
            res = align(load_photo(photo_path), shot)
        except PhotoradError as exc:
            row.update(aligned=0, reason=str(exc)[:120])
            rows.append(row)
            continue
        row.update(aligned=1, seconds=round(time.perf_counter() - t0, 2),
                   **{k: v for k, v in res.to_dict().items() if k != "homography"})
        pf = points / f"photo{n}.json"
        if pf.exists():
            doc = json.loads(pf.read_text())
            ph = np.array([q["photo"] for q in doc["pairs"]])
            sc = np.array([q["screenshot"] for q in doc["pairs"]])
            err = np.hypot(*(apply_homography(res.homography, ph) - sc).T)
            row.update(n_points=len(err), point_rms_px=round(float(np.sqrt(np.mean(err**2))), 3),
                       point_median_px=round(float(np.median(err)), 3),
                       point_max_px=round(float(err.max()), 3))
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "photo", k))
    with open(out / "real_photos.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    return rows


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    cfg = dict(DEFAULTS)
    if known.config:
        import yaml

        try:
            cfg.update(yaml.safe_load(known.config.read_text()) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {known.config}: {exc}") from None
    p = argparse.ArgumentParser(description=__doc__, parents=[pre],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", help="simulator presets (default typical hard)")
    p.add_argument("--n", type=int, help="photos per preset (default 200)")
    p.add_argument("--size", help="photo size WxH (default 2016x1512; 12 MP is 4032x3024)")
    p.add_argument("--seed", type=int, help="base seed (default 0)")
    p.add_argument("--out", help="output folder (default results/rectify)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--data", help="BUS-BRA root (default: shared data, else embedded sample)")
    p.add_argument("--real", action="store_true",
                   help="also align the real screen photos and score them on the hand-picked "
                        "point pairs in tests/data/screen_points (writes OUT/real_photos.csv)")
    p.set_defaults(**cfg)
    args = p.parse_args(argv)
    out = {k: getattr(args, k) for k in DEFAULTS}
    out["config"] = str(known.config) if known.config else None
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    size = parse_size(cfg["size"])
    root = Path(cfg["data"]) if cfg["data"] else (find_shared_data("bus-bra") or sample_dir())
    records = load_records(root)
    rng = np.random.default_rng(cfg["seed"])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    used: set[Path] = set()
    for pi, preset in enumerate(cfg["presets"] if cfg["n"] > 0 else []):
        picks = pick_records(records, rng, cfg["n"])
        jobs = [(preset, r.id, str(r.path), cfg["seed"] * 100_000 + pi * 10_000 + i, size)
                for i, r in enumerate(picks)]
        used.update(r.path for r in picks)
        t0 = time.perf_counter()
        if cfg["workers"] > 1:
            with ProcessPoolExecutor(cfg["workers"]) as ex:
                rows = list(ex.map(one, jobs, chunksize=4))
        else:
            rows = [one(j) for j in jobs]
        keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
        with open(out / f"{preset}.csv", "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=keys)
            wr.writeheader()
            wr.writerows(rows)
        summary[preset] = summarise(rows)
        summary[preset]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(preset, json.dumps(summary[preset]), flush=True)
    if cfg["real"]:
        summary["real_photos"] = eval_real(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# Rectification on simulated photos ({size[0]}x{size[1]} px, {cfg['n']} per preset)",
        "",
        "| preset | n | detection rate | median corner error (% diag) | p90 (% diag) "
        "| mean Jaccard (fail = 0) | share Jaccard ≥ 0.98 | median detect+warp (s) "
        "| flagged 'edge not found' | bad corners (> 1 % diag) flagged "
        "| bad quads unflagged | good quads flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    for preset, s in summary.items():
        if preset == "real_photos":
            continue
        subsets = [(preset, s)]
        if s.get("edges_visible"):
            subsets.append((f"{preset}, 4 borders visible", s["edges_visible"]))
        for name, t in subsets:
            lines.append(
                f"| {name} | {t['n']} | {t['detection_rate']:.1%} "
                f"| {f(t['median_corner_error_pct_of_diag'], '.3f')} "
                f"| {f(t['p90_corner_error_pct_of_diag'], '.3f')} "
                f"| {f(t['mean_jaccard_failed_as_0'], '.4f')} "
                f"| {f(t['share_jaccard_ge_0.98'], '.1%')} "
                f"| {f(t['median_detect_warp_s'], '.3f')} "
                f"| {f(t.get('share_flagged_edge_not_found'), '.1%')} "
                f"| {f(t.get('share_bad_corners_flagged'), '.1%')} "
                f"| {t.get('n_bad_unflagged', '—')} of {t.get('n_bad_quads', '—')} "
                f"| {t.get('n_good_flagged', '—')} of {t.get('n_good_quads', '—')} |"
            )
    boxes = [f"{p} {s['mean_content_box']:.4f}" for p, s in summary.items()
             if p != "real_photos" and s.get("mean_content_box") is not None]
    lines += [
        "",
        "Mean share of the image inside the bounding box of its visible content (pixels ≥ "
        f"{CONTENT_CONTRAST} Weber contrast over the viewport, rows/columns with ≥ "
        f"{CONTENT_LINE_SHARE:.0%} of them; from the original and the viewer/display settings "
        "only): a ceiling on the mean Jaccard index of a detector that places borders only where "
        "content shows: " + ", ".join(boxes) + ".",
    ] if boxes else []
    lines += [
        "",
        f"\"4 borders visible\": every image border's luminance exceeds the empty viewport's by a "
        f"Weber contrast ≥ {VISIBLE_CONTRAST} (computed from the original and the viewer/display "
        "settings only; see the docstring of eval/eval_rectify.py). Share of such photos: "
        + ", ".join(f"{p} {s['share_edges_visible']:.1%}" for p, s in summary.items()
                    if p != "real_photos" and "share_edges_visible" in s) + ".",
        "",
        f"Bad quad: detected with Jaccard < {BAD_JACCARD}; good quad: Jaccard ≥ {BAD_JACCARD}. "
        "Flagged: `edges_not_found`, `screen_edge_sides`, `inner_sides` or "
        "`background_inside_sides` non-empty (the quality report's "
        f"`edges` check warns) or score < {FLAG_SCORE}. 'Bad quads unflagged' are wrong answers "
        "given without a warning; 'good quads flagged' are false alarms.",
    ]
    real = summary.get("real_photos") or []
    if real:
        lines += [
            "",
            "Real screen photos (`align`, photo → screenshot; point errors in screenshot px on "
            "the hand-picked pairs of tests/data/screen_points):",
            "",
            "| photo | aligned | inliers | feature residual (median px) | ECC rho | coverage "
            "| points | point RMS | point max |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in real:
            lines.append(
                f"| {r['photo']} | {'yes' if r['aligned'] else 'no: ' + r.get('reason', '')} "
                f"| {r.get('n_inliers', '—')} | {r.get('reproj_error_px', '—')} "
                f"| {r.get('ecc_rho', '—')} | {r.get('coverage', '—')} | {r.get('n_points', '—')} "
                f"| {r.get('point_rms_px', '—')} | {r.get('point_max_px', '—')} |"
            )
    lines += ["", "Command: `python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]) + "`", ""]
    (out / "summary.md").write_text("\n".join(lines))
    write_run_info(out, {**cfg, "data_root": str(root)},
                   data_hashes={"originals": hash_files(sorted(used), root=root)})
    print((out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
