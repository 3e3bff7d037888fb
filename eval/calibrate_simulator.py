"""Calibrate the screen-photo simulator against the seed paper and the real screen photos.

1. For ``--n`` BUS-BRA images (a seeded random subset) and each preset: simulate a photo,
   rectify it with the *ground-truth* corners back to the original size
   (``photorad.rectify.warp``), and compare with the original (``photorad.metrics.psnr/ssim``,
   data_range = 1). The seed paper's real iPhone photos: 13.57 ± 1.12 dB, SSIM 0.704 ± 0.093.
2. For the real photos in ``screen-photos`` (photoN.jpg of a monitor showing screenshotN.png):
   register each photo to its screenshot (ORB features + RANSAC homography — evaluation only),
   then measure the tone curve (binned median photo grey vs screen grey), the noise level
   (Immerkær's estimator on the grey photo) and the moiré/sub-pixel spectrum (peak-to-median
   ratio of the high-pass power spectrum); the same statistics are measured on simulated photos
   of the same screenshots at the same photo width.

Writes ``calibration.csv`` (one row per image and preset), ``calibration.json`` (means ± SD),
``real_vs_sim.json``, ``calibration.md`` and ``run_info.json`` to ``--out``, and a figure to
``--figures``.

    python eval/calibrate_simulator.py --n 300 --workers 2 --out results/simulate
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from photorad.cli._util import parse_size
from photorad.data.bus_bra import load_records
from photorad.data.paths import find_shared_data, sample_dir
from photorad.io import load_original, load_photo
from photorad.metrics import psnr, ssim
from photorad.provenance import hash_files, write_run_info
from photorad.rectify.warp import to_grey, warp
from photorad.simulate import PRESETS, simulate_photo
from photorad.simulate.dataset import stable_hash

PAPER = {"psnr": (13.57, 1.12), "ssim": (0.704, 0.093)}


def _one(args: tuple[str, str, list[str], tuple[int, int], int]) -> list[dict]:
    rid, path, presets, size, seed = args
    cv2.setNumThreads(1)
    o = load_original(path)
    rows = []
    for pr in presets:
        res = simulate_photo(o, preset=pr, seed=[seed, stable_hash(rid)], size=size)
        g = warp(res.photo, res.corners, size=(o.shape[1], o.shape[0]))
        rows.append({"id": rid, "preset": pr, "psnr": psnr(o, g, data_range=1.0),
                     "ssim": ssim(o, g, data_range=1.0), "mean_original": float(o.mean()),
                     "mean_rectified": float(g.mean())})
    return rows


# ----------------------------------------------------------------- real-photo statistics


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkær (1996) fast noise σ estimate of a grey image in [0, 1] (8-bit units out)."""
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    r = cv2.filter2D(grey.astype(np.float64) * 255.0, -1, k)[1:-1, 1:-1]
    h, w = grey.shape
    return float(np.sqrt(np.pi / 2.0) * np.abs(r).sum() / (6.0 * (w - 2) * (h - 2)))


def moire_peak_ratio(grey: np.ndarray) -> float:
    """Peak-to-median ratio of the high-pass power spectrum of the central crop."""
    h, w = grey.shape
    s = min(h, w) // 2
    crop = grey[h // 2 - s // 2:h // 2 + s // 2, w // 2 - s // 2:w // 2 + s // 2].astype(np.float64)
    hp = crop - cv2.GaussianBlur(crop, (0, 0), 3.0)
    win = np.outer(np.hanning(hp.shape[0]), np.hanning(hp.shape[1]))
    spec = np.abs(np.fft.fftshift(np.fft.fft2(hp * win))) ** 2
    c = np.array(spec.shape) // 2
    spec[c[0] - 3:c[0] + 4, c[1] - 3:c[1] + 4] = 0  # drop the (high-passed) DC region
    return float(spec.max() / max(np.median(spec), 1e-12))


def register(photo_grey: np.ndarray, screen_grey: np.ndarray) -> np.ndarray | None:
    """Homography screen → photo from ORB matches (None when registration fails)."""
    orb = cv2.ORB_create(4000)
    a8 = np.rint(photo_grey * 255).astype(np.uint8)
    b8 = np.rint(screen_grey * 255).astype(np.uint8)
    ka, da = orb.detectAndCompute(a8, None)
    kb, db = orb.detectAndCompute(b8, None)
    if da is None or db is None or len(ka) < 10 or len(kb) < 10:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(db, da)
    if len(matches) < 12:
        return None
    src = np.float32([kb[m.queryIdx].pt for m in matches])
    dst = np.float32([ka[m.trainIdx].pt for m in matches])
    h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
    if h is None or inl.sum() < 12:
        return None
    return h


def tone_curve(photo_grey: np.ndarray, screen_grey: np.ndarray, h: np.ndarray,
               bins: int = 16) -> list[float | None]:
    """Median photo grey per screen-grey bin over the registered overlap."""
    ph, pw = photo_grey.shape
    inv = np.linalg.inv(h)
    warped = cv2.warpPerspective(screen_grey, h, (pw, ph), flags=cv2.INTER_AREA)
    valid = cv2.warpPerspective(np.ones_like(screen_grey), h, (pw, ph)) > 0.99
    del inv
    # only flat neighbourhoods: text edges would mix levels under any residual misregistration
    flat = cv2.morphologyEx(warped, cv2.MORPH_GRADIENT, np.ones((7, 7), np.uint8)) < 0.03
    m = valid & flat
    out: list[float | None] = []
    for b in range(bins):
        sel = m & (warped >= b / bins) & (warped < (b + 1) / bins)
        out.append(float(np.median(photo_grey[sel])) if sel.sum() > 200 else None)
    return out


def real_vs_sim(folder: Path, presets: list[str], seed: int) -> dict:
    """Statistics of the real screen photos and of simulated photos of the same screenshots."""
    out: dict = {"real": [], "sim": {p: [] for p in presets}}
    for photo_path in sorted(folder.glob("photo*.jpg"), key=lambda p: int(p.stem[5:])):
        n = photo_path.stem[5:]
        shot = folder / f"screenshot{n}.png"
        if not shot.is_file():
            continue
        photo = load_photo(photo_path)
        pg = to_grey(photo)
        sg = load_original(shot)
        h = register(pg, sg)
        out["real"].append({
            "photo": photo_path.name, "size": [photo.shape[1], photo.shape[0]],
            "noise_sigma_8bit": noise_sigma(pg), "moire_peak_ratio": moire_peak_ratio(pg),
            "registered": h is not None,
            "tone_curve": tone_curve(pg, sg, h) if h is not None else None,
        })
        for pr in presets:
            # The screenshot *is* the screen: shown full-screen without viewer chrome.
            res = simulate_photo(sg, preset=pr, seed=[seed, int(n)], size=(2016, 1512),
                                 params={"ui": False, "image_zoom": 1.0,
                                         "screen_w": sg.shape[1], "screen_h": sg.shape[0]})
            # same photo width as the real one, as a phone's downscaled export
            scale = photo.shape[1] / res.photo.shape[1]
            small = cv2.resize(res.photo, (photo.shape[1], round(res.photo.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            sgrey = to_grey(small)
            c = (res.corners + 0.5) * scale - 0.5
            hs = cv2.getPerspectiveTransform(
                np.float32([[-0.5, -0.5], [sg.shape[1] - 0.5, -0.5],
                            [sg.shape[1] - 0.5, sg.shape[0] - 0.5], [-0.5, sg.shape[0] - 0.5]]),
                c.astype(np.float32))
            out["sim"][pr].append({
                "photo": photo_path.name, "noise_sigma_8bit": noise_sigma(sgrey),
                "moire_peak_ratio": moire_peak_ratio(sgrey),
                "tone_curve": tone_curve(sgrey, sg, hs),
            })
    return out


def _figure(rvs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    x = (np.arange(16) + 0.5) / 16
    for r in rvs["real"]:
        if r["tone_curve"]:
            y = [np.nan if v is None else v for v in r["tone_curve"]]
            ax[0].plot(x, y, color="k", alpha=0.5, lw=1)
    colours = {"ideal": "tab:green", "typical": "tab:blue", "hard": "tab:red"}
    for pr, rows in rvs["sim"].items():
        for r in rows:
            y = [np.nan if v is None else v for v in r["tone_curve"]]
            ax[0].plot(x, y, color=colours.get(pr, "grey"), alpha=0.4, lw=1)
    ax[0].plot([0, 1], [0, 1], ":", color="grey")
    ax[0].set(title="tone curve (black: real photos)", xlabel="screen grey", ylabel="photo grey")
    for i, key in enumerate(("noise_sigma_8bit", "moire_peak_ratio")):
        data = [[r[key] for r in rvs["real"]]] + [[r[key] for r in rows]
                                                  for rows in rvs["sim"].values()]
        ax[i + 1].boxplot(data, tick_labels=["real"] + list(rvs["sim"]))
        ax[i + 1].set(title=key.replace("_", " "))
        if key == "moire_peak_ratio":
            ax[i + 1].set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, help="BUS-BRA folder (default: full data, else sample)")
    ap.add_argument("--n", type=int, default=300, help="images (seeded random subset)")
    ap.add_argument("--presets", default="ideal,typical,hard")
    ap.add_argument("--size", type=parse_size, default=(2016, 1512), help="photo size WxH")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--real", type=Path, help="screen-photos folder (default: shared data)")
    ap.add_argument("--out", type=Path, default=Path("results/simulate"))
    ap.add_argument("--figures", type=Path, default=Path("data_cards/figures"))
    args = ap.parse_args(argv)

    presets = args.presets.split(",")
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p}")
    root = args.root or find_shared_data("bus-bra") or sample_dir()
    recs = load_records(root)
    rng = np.random.default_rng(args.seed)
    pick = sorted(rng.choice(len(recs), size=min(args.n, len(recs)), replace=False))
    chosen = [recs[i] for i in pick]
    jobs = [(r.id, str(r.path), presets, tuple(args.size), args.seed) for r in chosen]
    rows: list[dict] = []
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            for i, rr in enumerate(pool.imap_unordered(_one, jobs, chunksize=2), 1):
                rows += rr
                if i % 25 == 0:
                    print(f"  {i}/{len(jobs)} images", flush=True)
    else:
        for j in jobs:
            rows += _one(j)
    rows.sort(key=lambda r: (r["preset"], r["id"]))
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "calibration.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    summary = {}
    for p in presets:
        ps = np.array([r["psnr"] for r in rows if r["preset"] == p])
        ss = np.array([r["ssim"] for r in rows if r["preset"] == p])
        summary[p] = {"n": int(ps.size), "psnr_mean": float(ps.mean()), "psnr_sd": float(ps.std(ddof=1)),
                      "ssim_mean": float(ss.mean()), "ssim_sd": float(ss.std(ddof=1))}
    lines = ["| preset | n | PSNR (dB) mean ± SD | SSIM mean ± SD |", "|---|---|---|---|",
             f"| paper, real iPhone photos | – | {PAPER['psnr'][0]} ± {PAPER['psnr'][1]} | "
             f"{PAPER['ssim'][0]} ± {PAPER['ssim'][1]} |"]
    for p, s in summary.items():
        lines.append(f"| {p} | {s['n']} | {s['psnr_mean']:.2f} ± {s['psnr_sd']:.2f} | "
                     f"{s['ssim_mean']:.3f} ± {s['ssim_sd']:.3f} |")
    table = "\n".join(lines)
    print(table)

    real = args.real or find_shared_data("screen-photos")
    rvs = None
    if real is not None and Path(real).is_dir():
        rvs = real_vs_sim(Path(real), presets, args.seed)
        (args.out / "real_vs_sim.json").write_text(json.dumps(rvs, indent=1) + "\n")
        _figure(rvs, args.figures / "simulator_vs_real_photos.png")
        for key in ("noise_sigma_8bit", "moire_peak_ratio"):
            med = {"real": float(np.median([r[key] for r in rvs["real"]]))}
            med.update({p: float(np.median([r[key] for r in v])) for p, v in rvs["sim"].items()})
            print(f"median {key}: " + ", ".join(f"{k} {v:.3g}" for k, v in med.items()))
            summary[f"median_{key}"] = med
    (args.out / "calibration.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "calibration.md").write_text(
        "Made by `python " + " ".join(sys.argv) + "`\n\n" + table + "\n")
    hashes = {"bus_bra_subset": hash_files([r.path for r in chosen], root=root)}
    if rvs is not None:
        hashes["screen_photos"] = hash_files(sorted(Path(real).glob("*")), root=real)
    write_run_info(args.out, {"command": "eval/calibrate_simulator.py", **vars(args),
                              "bus_bra_root": str(root), "ids": [r.id for r in chosen]},
                   data_hashes=hashes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
