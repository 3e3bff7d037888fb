"""Re-locate the window-centroid point pairs of ``tests/data/screen_points`` and check them.

Photos 2 and 7 of the real screen-photo set carry moiré (photo 7 heavily), so their point pairs
were not snapped to corners with ``cv2.cornerSubPix`` as for photos 3, 4 and 9. Instead each
feature (an icon, a coloured dot or bar, a word) was chosen by hand and a window around it was
placed by hand in each image; the point is the background-subtracted, intensity-weighted centroid
of one channel inside that window, after a light Gaussian blur. The centroid is a linear
functional, so the blur (which averages the moiré away) does not move it. The windows are stored
with each pair (``how``), so this script recomputes every point from the two images alone —
independently of :func:`photorad.rectify.align` — and reports:

* the difference between the stored and the recomputed points (should be ≈ 0);
* the self-consistency of the pairs: residuals of a least-squares homography through all of
  them and leave-one-out residuals (a badly located feature stands out here).

Usage::

    python eval/screen_points.py                      # all files with window-centroid pairs
    python eval/screen_points.py --data-root ../shared/data/screen-photos photo7.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
POINTS = ROOT / "tests" / "data" / "screen_points"
HOW = re.compile(
    r"(?P<mode>\w+)-mass centroid in a hand-placed window \(photo window \[(?P<pw>[\d, ]+)\], "
    r"Gaussian blur (?P<pb>[\d.]+) px; screenshot window \[(?P<sw>[\d, ]+)\], blur (?P<sb>[\d.]+) px(?P<all>; all blobs)?\)"
)


def feature_channel(rgb: np.ndarray, mode: str) -> np.ndarray:
    """One float channel in which the feature is bright: ``dark``, ``bright`` or a colour."""
    r, g, b = (rgb[..., k].astype(np.float32) / 255 for k in range(3))
    grey = 0.299 * r + 0.587 * g + 0.114 * b
    channels = {
        "dark": lambda: 1 - grey,
        "bright": lambda: grey,
        "orange": lambda: r - b,
        "green": lambda: g - (r + b) / 2,
        "blue": lambda: b - r,
    }
    if mode not in channels:
        raise ValueError(f"unknown feature mode {mode!r}; choose from {sorted(channels)}")
    return channels[mode]()


def window_centroid(
    rgb: np.ndarray,
    window: tuple[int, int, int, int],
    *,
    mode: str,
    blur_px: float,
    all_blobs: bool = False,
) -> tuple[float, float]:
    """Intensity-weighted centroid (x, y) of the feature in ``window`` = (x0, y0, x1, y1).

    The background is the median of the window's border; the weights are the channel above it,
    restricted to the largest blob above a quarter of the peak (dilated by 2 px) so that moiré
    or neighbouring glyphs elsewhere in the window do not pull the centroid. ``all_blobs`` keeps
    every blob above that level instead (a word: its letters are separate blobs).
    """
    x0, y0, x1, y1 = window
    c = feature_channel(rgb, mode)
    if blur_px > 0:
        c = cv2.GaussianBlur(c, (0, 0), blur_px)
    w = c[y0:y1, x0:x1].astype(np.float64)
    bg = np.median(np.concatenate([w[0], w[-1], w[:, 0], w[:, -1]]))
    wt = np.clip(w - bg, 0, None)
    blobs = (wt > 0.25 * np.percentile(wt, 99.5)).astype(np.uint8)
    _, lab, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
    if len(stats) < 2:
        raise ValueError(f"no feature found in window {window}")
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = lab > 0 if all_blobs else lab == k
    mask = cv2.dilate(keep.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    wt = wt * mask
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    s = wt.sum()
    return float((xs * wt).sum() / s + x0), float((ys * wt).sum() / s + y0)


def _ints(s: str) -> tuple[int, int, int, int]:
    a, b, c, d = (int(v) for v in s.split(","))
    return a, b, c, d


def check_file(path: Path, data_root: Path) -> dict:
    from photorad.io import load_photo

    doc = json.loads(path.read_text())
    photo = load_photo(data_root / doc["photo"])
    shot = cv2.cvtColor(cv2.imread(str(data_root / doc["screenshot"])), cv2.COLOR_BGR2RGB)
    stored_p, stored_s, moved = [], [], []
    for pair in doc["pairs"]:
        stored_p.append(pair["photo"])
        stored_s.append(pair["screenshot"])
        m = HOW.fullmatch(pair.get("how", ""))
        if m is None:  # read by hand (e.g. a bounding-box centre): nothing to recompute
            continue
        opts = {"mode": m["mode"], "all_blobs": bool(m["all"])}
        p = window_centroid(photo, _ints(m["pw"]), blur_px=float(m["pb"]), **opts)
        s = window_centroid(shot, _ints(m["sw"]), blur_px=float(m["sb"]), **opts)
        moved.append(max(np.hypot(*(np.subtract(p, pair["photo"]))),
                         np.hypot(*(np.subtract(s, pair["screenshot"])))))
    p, s = np.array(stored_p, float), np.array(stored_s, float)
    h, _ = cv2.findHomography(p, s, 0)
    fit = np.hypot(*(cv2.perspectiveTransform(p[None], h)[0] - s).T)
    loo = []
    for i in range(len(p)):
        keep = np.arange(len(p)) != i
        hi, _ = cv2.findHomography(p[keep], s[keep], 0)
        loo.append(float(np.hypot(*(cv2.perspectiveTransform(p[None, i : i + 1], hi)[0, 0] - s[i]))))
    return {
        "file": path.name, "pairs": len(p), "recomputed": len(moved),
        "max_stored_vs_recomputed_px": round(max(moved), 4) if moved else None,
        "lsq_residual_max_px": round(float(fit.max()), 3),
        "leave_one_out_max_px": round(max(loo), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="point files (default: all in tests/data/screen_points)")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "screen-photos")
    args = ap.parse_args(argv)
    if not args.data_root.is_dir():
        print(f"screen photos not found at {args.data_root} (pass --data-root)", file=sys.stderr)
        return 2
    files = [POINTS / f for f in args.files] if args.files else sorted(POINTS.glob("photo*.json"))
    for f in files:
        print(json.dumps(check_file(f, args.data_root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
