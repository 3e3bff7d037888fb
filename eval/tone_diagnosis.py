"""How predictable is the per-image global tone curve from the rectified photo alone?

Blind (no original) tone baselines on a paired folder, fitted on ``train`` and scored on ``val``
(PSNR vs the original, whole images):

* ``identity``   — the rectified photo itself;
* ``oracle``     — per-image conditional-mean curve fitted to the original (the upper bound);
* ``pooled``     — one curve for all images (conditional mean over all training pixels);
* ``histmatch``  — map each photo's CDF onto the mean quantile function of the training originals;
* ``ridge``      — ridge regression from photo quantile/histogram features to the oracle curve
  sampled at ``knots + 1`` grey levels (fit on train);
* ``ridge+tex``  — the same plus the mean local standard deviation (3×3 and 7×7 windows) per
  16 grey-level bins of the local mean: how local contrast grows with brightness, i.e. the
  slope of the tone curve, which the histogram alone confuses with image content.

Usage::

    python eval/tone_diagnosis.py --pairs runs/pairs_typical [--knots 32] [--alpha 1e-2]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from photorad.data.paired import load_pairs
from photorad.metrics import conditional_mean_curve, psnr

QS = np.linspace(0.0, 1.0, 65)


def oracle_curve(rect: np.ndarray, orig: np.ndarray, *, grid: np.ndarray,
                 bins: int = 64) -> np.ndarray:
    """The conditional mean of ``orig`` per grey level of ``rect``, sampled on ``grid``."""
    return np.interp(grid, *conditional_mean_curve(rect, orig, bins=bins))


def features(rect: np.ndarray) -> np.ndarray:
    """Photo-only features: 65 quantiles, a 32-bin histogram, mean and sd."""
    q = np.quantile(rect, QS)
    h = np.histogram(rect, bins=32, range=(0.0, 1.0))[0] / rect.size
    return np.concatenate([q, h, [rect.mean(), rect.std()]])


def texture_features(rect: np.ndarray, *, windows: tuple[int, ...] = (3, 7),
                     bins: int = 16) -> np.ndarray:
    """Mean local sd (``k × k`` box windows) per grey-level bin of the local mean."""
    out = []
    for k in windows:
        m = cv2.blur(rect, (k, k))
        sd = np.sqrt(np.maximum(cv2.blur(rect * rect, (k, k)) - m * m, 0.0))
        idx = np.clip((m * bins).astype(int), 0, bins - 1).ravel()
        cnt = np.bincount(idx, minlength=bins)
        tot = np.bincount(idx, weights=sd.ravel(), minlength=bins)
        out.append(np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0))
    return np.concatenate(out)


def ridge(x: np.ndarray, y: np.ndarray, *,
          alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression on standardised features: (weights, feature mean, feature sd, y mean)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    ym = y.mean(0)
    w = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - ym))
    return w, mu, sd, ym


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", default="runs/pairs_typical")
    p.add_argument("--knots", type=int, default=32)
    p.add_argument("--alpha", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1, 1.0])
    args = p.parse_args(argv)
    grid = np.linspace(0.0, 1.0, args.knots + 1)
    tr, va = load_pairs(args.pairs, split="train"), load_pairs(args.pairs, split="val")

    def score(curves: list[np.ndarray] | None = None, fn=None) -> tuple[float, float]:
        vals = []
        for i, pr in enumerate(va):
            out = fn(pr) if fn is not None else np.interp(pr.rect, grid, curves[i])
            vals.append(psnr(pr.orig, np.clip(out, 0, 1).astype(np.float32), data_range=1.0))
        return float(np.mean(vals)), float(np.std(vals))

    res: dict[str, tuple[float, float]] = {}
    res["identity"] = score(fn=lambda pr: pr.rect)
    res["oracle(knots)"] = score([oracle_curve(pr.rect, pr.orig, grid=grid) for pr in va])
    allr = np.concatenate([pr.rect.ravel() for pr in tr])
    allo = np.concatenate([pr.orig.ravel() for pr in tr])
    pooled = oracle_curve(allr, allo, grid=grid)
    res["pooled"] = score([pooled] * len(va))
    mq = np.mean([np.quantile(pr.orig, QS) for pr in tr], axis=0)
    res["histmatch"] = score(fn=lambda pr: np.interp(
        pr.rect, np.maximum.accumulate(np.quantile(pr.rect, QS) + 1e-7 * np.arange(len(QS))), mq))
    ytr = np.stack([oracle_curve(pr.rect, pr.orig, grid=grid) for pr in tr])
    for tag, feat in (("ridge", features),
                      ("ridge+tex", lambda r: np.concatenate([features(r), texture_features(r)]))):
        xtr = np.stack([feat(pr.rect) for pr in tr])
        xva = np.stack([feat(pr.rect) for pr in va])
        for a in args.alpha:
            w, mu, sd, ym = ridge(xtr, ytr, alpha=a)
            pred = ((xva - mu) / sd) @ w + ym
            res[f"{tag}(alpha={a:g})"] = score(list(np.maximum.accumulate(pred, axis=1)))
            # The same regression on the train images (fit quality, not generalisation).
            ptr = ((xtr - mu) / sd) @ w + ym
            vals = [psnr(pr.orig, np.clip(np.interp(pr.rect, grid, c), 0, 1).astype(np.float32),
                         data_range=1.0) for pr, c in zip(tr, ptr, strict=True)]
            res[f"{tag}(alpha={a:g}) on train"] = (float(np.mean(vals)), float(np.std(vals)))
    for k, (m, s) in res.items():
        split, n = ("train", len(tr)) if "train" in k else ("val", len(va))
        print(f"{k:32s} {m:6.2f} ± {s:4.2f} dB ({split}, n={n})")
    print(json.dumps({k: round(v[0], 3) for k, v in res.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
