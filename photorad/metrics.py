"""Image-quality and diagnostic-accuracy metrics with explicit units and keyword-only options.

* :func:`psnr` and :func:`ssim` follow scikit-image's definitions (tests compare against it).
* :func:`auroc` is the Mann–Whitney statistic (ties count one half), equal to scikit-learn's
  ``roc_auc_score`` for binary labels.
* :func:`bootstrap_ci` gives percentile bootstrap intervals for any statistic.
* :func:`delong_test` compares two correlated AUROCs on the same cases (DeLong, DeLong &
  Clarke-Pearson 1988, in the fast midrank form of Sun & Xu 2014); :func:`paired_bootstrap_auroc`
  does the same by resampling cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

__all__ = [
    "AurocComparison",
    "auroc",
    "bootstrap_ci",
    "conditional_mean_curve",
    "delong_test",
    "paired_bootstrap_auroc",
    "psnr",
    "ssim",
]


def _check_pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if ref.shape != test.shape:
        raise ValueError(f"shape mismatch: ref {ref.shape} vs test {test.shape}")
    if ref.size == 0:
        raise ValueError("empty images")
    return ref, test


def psnr(ref: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB.

    ``PSNR = 10 log10(data_range² / MSE)``; ``inf`` for identical images.

    Parameters
    ----------
    ref, test:
        Arrays of the same shape.
    data_range:
        Distance between the largest and smallest possible values (1.0 for float [0, 1] images,
        255 for uint8). Required: guessing it from the dtype is a classic source of wrong tables.
    """
    if data_range <= 0:
        raise ValueError("data_range must be positive")
    ref, test = _check_pair(ref, test)
    mse = float(np.mean((ref - test) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(
    ref: np.ndarray,
    test: np.ndarray,
    *,
    data_range: float,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
) -> float | tuple[float, np.ndarray]:
    """Structural similarity index of two grey-scale images (Wang et al., IEEE TIP 2004).

    Local statistics use an isotropic Gaussian window with standard deviation ``sigma`` = 1.5 px
    truncated at 3.5 σ (an 11 × 11 window, as in the paper), population (not sample) covariances,
    and the constants C1 = (k1 L)², C2 = (k2 L)² with k1 = 0.01, k2 = 0.03 and L = ``data_range``.
    The mean is taken over the map with a border of (win − 1)/2 px removed, as scikit-image does
    with ``gaussian_weights=True, use_sample_covariance=False``.

    Parameters
    ----------
    ref, test:
        2-D arrays of the same shape, each side ≥ 11 px.
    data_range:
        Dynamic range L of the images (1.0 for float [0, 1]).
    return_map:
        Also return the full SSIM map.
    """
    if data_range <= 0:
        raise ValueError("data_range must be positive")
    ref, test = _check_pair(ref, test)
    if ref.ndim != 2:
        raise ValueError(f"ssim expects 2-D grey-scale images, got shape {ref.shape}")
    truncate = 3.5
    win = 2 * int(truncate * sigma + 0.5) + 1
    if min(ref.shape) < win:
        raise ValueError(f"images must be at least {win}×{win} px for SSIM")

    def filt(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma=sigma, truncate=truncate, mode="reflect")

    mu_x, mu_y = filt(ref), filt(test)
    sxx = filt(ref * ref) - mu_x * mu_x
    syy = filt(test * test) - mu_y * mu_y
    sxy = filt(ref * test) - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    )
    pad = (win - 1) // 2
    value = float(smap[pad:-pad, pad:-pad].mean())
    if return_map:
        return value, smap
    return value


def conditional_mean_curve(
    test: np.ndarray, ref: np.ndarray, *, bins: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The best global tone curve mapping ``test`` onto ``ref``, as (x, y) knots.

    ``test`` is binned into ``bins`` equal grey-level bins over [0, 1]; each non-empty bin gives
    one knot: the mean of ``test`` and the mean of ``ref`` over its pixels (the conditional
    mean, i.e. the least-squares curve at that resolution). Used as the oracle "tone-only fix"
    of the restoration ablation. Empty bins give no knot.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(test.ravel(), edges) - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    sums = np.bincount(idx, weights=ref.ravel().astype(np.float64), minlength=bins)
    xs = np.bincount(idx, weights=test.ravel().astype(np.float64), minlength=bins)
    ok = counts > 0
    return xs[ok] / counts[ok], sums[ok] / counts[ok]


def _binary(y_true: Sequence | np.ndarray) -> np.ndarray:
    y = np.asarray(y_true).ravel()
    u = np.unique(y)
    if not set(u.tolist()) <= {0, 1}:
        raise ValueError(f"labels must be 0/1, got values {u[:5].tolist()}")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("AUROC needs at least one positive and one negative case")
    return y


def auroc(y_true: Sequence | np.ndarray, y_score: Sequence | np.ndarray) -> float:
    """Area under the ROC curve for binary labels (1 = positive, e.g. malignant).

    Computed as the Mann–Whitney U statistic over midranks, so tied scores count one half.
    """
    y = _binary(y_true)
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if s.shape != y.shape:
        raise ValueError("y_true and y_score must have the same length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    ranks = stats.rankdata(s)
    n1 = int(y.sum())
    n0 = y.size - n1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: Sequence | np.ndarray,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    stratify: Sequence | np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``statistic(*arrays)``.

    Cases (the first axis, shared by all arrays) are resampled with replacement; with
    ``stratify`` they are resampled within each stratum (e.g. per class, so every resample
    has both classes for an AUROC). Resamples where the statistic is undefined (raises
    ``ValueError``) are skipped.

    Returns
    -------
    (estimate, low, high)
        The statistic on the full data and the ``confidence`` interval bounds.
    """
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError("all arrays must have the same length")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    rng = np.random.default_rng(seed)
    estimate = float(statistic(*arrs))
    if stratify is None:
        groups = [np.arange(n)]
    else:
        st = np.asarray(stratify)
        groups = [np.flatnonzero(st == g) for g in np.unique(st)]
    values = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        try:
            values.append(float(statistic(*(a[idx] for a in arrs))))
        except ValueError:
            continue
    if not values:
        raise ValueError("the statistic was undefined on every bootstrap resample")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return estimate, float(lo), float(hi)


@dataclass(frozen=True)
class AurocComparison:
    """Result of comparing two AUROCs measured on the same cases."""

    auc_a: float
    auc_b: float
    diff: float  #: auc_a − auc_b
    se: float  #: standard error of the difference
    ci_low: float
    ci_high: float
    p_value: float  #: two-sided
    method: str


def _midrank_components(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong structural components via midranks (Sun & Xu 2014)."""
    m, n = len(pos), len(neg)
    tx = stats.rankdata(pos)
    ty = stats.rankdata(neg)
    tz = stats.rankdata(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v01 = (tz[:m] - tx) / n  # per positive: fraction of negatives below (ties 1/2)
    v10 = 1.0 - (tz[m:] - ty) / m  # per negative: fraction of positives above
    return float(auc), v01, v10


def delong_test(
    y_true: Sequence | np.ndarray,
    score_a: Sequence | np.ndarray,
    score_b: Sequence | np.ndarray,
    *,
    confidence: float = 0.95,
) -> AurocComparison:
    """DeLong test for two correlated AUROCs (same cases scored by two readers/models)."""
    y = _binary(y_true)
    a = np.asarray(score_a, dtype=np.float64).ravel()
    b = np.asarray(score_b, dtype=np.float64).ravel()
    if not (a.shape == b.shape == y.shape):
        raise ValueError("labels and both score arrays must have the same length")
    m, n = int(y.sum()), int((~y).sum())
    auc_a, v01_a, v10_a = _midrank_components(a[y], a[~y])
    auc_b, v01_b, v10_b = _midrank_components(b[y], b[~y])
    s01 = np.cov(np.vstack([v01_a, v01_b])) if m > 1 else np.zeros((2, 2))
    s10 = np.cov(np.vstack([v10_a, v10_b])) if n > 1 else np.zeros((2, 2))
    cov = s01 / m + s10 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    se = math.sqrt(max(var, 0.0))
    zcrit = float(stats.norm.ppf(0.5 + confidence / 2.0))
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
    else:
        p = float(2.0 * stats.norm.sf(abs(diff) / se))
    return AurocComparison(
        auc_a=auc_a,
        auc_b=auc_b,
        diff=diff,
        se=se,
        ci_low=diff - zcrit * se,
        ci_high=diff + zcrit * se,
        p_value=p,
        method="DeLong",
    )


def paired_bootstrap_auroc(
    y_true: Sequence | np.ndarray,
    score_a: Sequence | np.ndarray,
    score_b: Sequence | np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AurocComparison:
    """Paired, class-stratified bootstrap comparison of two AUROCs on the same cases.

    The p-value is the two-sided bootstrap p-value of the difference (twice the smaller tail
    fraction around zero, at least 1/n_boot).
    """
    y = _binary(y_true).astype(int)
    a = np.asarray(score_a, dtype=np.float64).ravel()
    b = np.asarray(score_b, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate(
            [rng.choice(pos, len(pos), replace=True), rng.choice(neg, len(neg), replace=True)]
        )
        diffs[i] = auroc(y[idx], a[idx]) - auroc(y[idx], b[idx])
    auc_a, auc_b = auroc(y, a), auroc(y, b)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    tail = min((diffs <= 0).mean(), (diffs >= 0).mean())
    p = float(min(1.0, max(2.0 * tail, 1.0 / n_boot)))
    return AurocComparison(
        auc_a=auc_a,
        auc_b=auc_b,
        diff=auc_a - auc_b,
        se=float(diffs.std(ddof=1)),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=p,
        method="paired bootstrap",
    )
