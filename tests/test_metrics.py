"""Metrics against scikit-image / scikit-learn and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import roc_auc_score

from photorad.metrics import (
    auroc,
    bootstrap_ci,
    conditional_mean_curve,
    delong_test,
    paired_bootstrap_auroc,
    psnr,
    ssim,
)


def test_psnr_hand_values() -> None:
    a = np.zeros((10, 10))
    assert psnr(a, a + 0.1, data_range=1.0) == pytest.approx(20.0)
    assert psnr(a, a + 25.5, data_range=255) == pytest.approx(20.0)
    assert psnr(a, a, data_range=1.0) == math.inf
    with pytest.raises(ValueError):
        psnr(a, a[:5], data_range=1.0)
    with pytest.raises(ValueError):
        psnr(a, a, data_range=0)


def test_psnr_matches_skimage(rng) -> None:
    ref = rng.random((64, 80))
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    assert psnr(ref, test, data_range=1.0) == pytest.approx(
        peak_signal_noise_ratio(ref, test, data_range=1.0), rel=1e-12
    )


@pytest.mark.parametrize("noise", [0.01, 0.1, 0.3])
def test_ssim_matches_skimage(rng, noise: float) -> None:
    yy, xx = np.mgrid[0:96, 0:128]
    ref = 0.5 + 0.4 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    test = np.clip(ref + rng.normal(0, noise, ref.shape), 0, 1)
    expected = structural_similarity(
        ref, test, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(ref, test, data_range=1.0) == pytest.approx(expected, abs=1e-9)


def test_ssim_hand_cases(rng) -> None:
    img = rng.random((32, 32))
    assert ssim(img, img, data_range=1.0) == pytest.approx(1.0)
    # Constant images differing only in mean: SSIM = (2 μx μy + C1)/(μx² + μy² + C1).
    a, b = np.full((32, 32), 0.2), np.full((32, 32), 0.6)
    c1 = (0.01 * 1.0) ** 2
    assert ssim(a, b, data_range=1.0) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1))
    value, smap = ssim(img, img * 0.5, data_range=1.0, return_map=True)
    assert smap.shape == img.shape and value < 1.0
    with pytest.raises(ValueError):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)), data_range=1.0)


def test_auroc_hand_and_sklearn(rng) -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    # 2 positives (0.4, 0.8) × 2 negatives (0.4, 0.1): pairs 0.5 + 1 + 1 + 1 = 3.5 of 4
    assert auroc([1, 1, 0, 0], [0.4, 0.8, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 2)  # rounding creates ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(ValueError):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])


def _delong_naive(y, a, b):
    """Textbook DeLong with O(m·n) kernel ψ(x, y) = 1 if x > y, 1/2 if equal, 0 otherwise."""
    y = np.asarray(y).astype(bool)
    out = []
    for s in (a, b):
        pos, neg = np.asarray(s)[y], np.asarray(s)[~y]
        psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = y.sum(), (~y).sum()
    v10 = np.vstack([o[1] for o in out])
    v01 = np.vstack([o[2] for o in out])
    cov = np.cov(v10) / m + np.cov(v01) / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return out[0][0], out[1][0], math.sqrt(var)


def test_delong_matches_naive_definition(rng) -> None:
    y = rng.integers(0, 2, 120)
    a = np.round(rng.random(120) + 0.6 * y, 2)
    b = np.round(0.5 * a + 0.5 * rng.random(120) + 0.2 * y, 2)
    res = delong_test(y, a, b)
    auc_a, auc_b, se = _delong_naive(y, a, b)
    assert res.auc_a == pytest.approx(auc_a) and res.auc_b == pytest.approx(auc_b)
    assert res.se == pytest.approx(se, rel=1e-10)
    assert 0 <= res.p_value <= 1 and res.ci_low < res.diff < res.ci_high


def test_delong_identical_scores_and_strong_difference(rng) -> None:
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    s = rng.random(200) + 0.5 * y
    same = delong_test(y, s, s)
    assert same.diff == 0 and same.p_value == 1.0
    good = y + rng.normal(0, 0.3, 200)
    bad = rng.random(200)
    res = delong_test(y, good, bad)
    assert res.diff > 0.3 and res.p_value < 1e-6


def test_paired_bootstrap_agrees_with_delong(rng) -> None:
    y = rng.integers(0, 2, 200)
    a = y + rng.normal(0, 0.8, 200)
    b = y + rng.normal(0, 1.2, 200)
    d = delong_test(y, a, b)
    bt = paired_bootstrap_auroc(y, a, b, n_boot=1000, seed=1)
    assert bt.diff == pytest.approx(d.diff)
    assert bt.se == pytest.approx(d.se, rel=0.25)


def test_bootstrap_ci_properties(rng) -> None:
    x = rng.normal(1.0, 1.0, 400)
    est, lo, hi = bootstrap_ci(np.mean, x, n_boot=500, seed=3)
    assert lo < est < hi and lo < 1.0 < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 / 20, rel=0.25)  # ≈ normal-theory width
    again = bootstrap_ci(np.mean, x, n_boot=500, seed=3)
    assert again == (est, lo, hi)  # seeded
    y = rng.integers(0, 2, 60)
    s = rng.random(60)
    est, lo, hi = bootstrap_ci(auroc, y, s, n_boot=300, seed=0, stratify=y)
    assert lo <= est <= hi


def test_conditional_mean_curve_matches_scipy_binned_statistic(rng) -> None:
    from scipy.stats import binned_statistic

    x = rng.uniform(0.0, 0.6, (64, 48)) ** 1.5  # leaves the upper bins empty
    y = np.sqrt(x) + rng.normal(0.0, 0.02, x.shape)
    cx, cy = conditional_mean_curve(x, y, bins=16)
    ref_y = binned_statistic(x.ravel(), y.ravel(), "mean", bins=16, range=(0.0, 1.0)).statistic
    ref_x = binned_statistic(x.ravel(), x.ravel(), "mean", bins=16, range=(0.0, 1.0)).statistic
    ok = ~np.isnan(ref_y)
    assert ok.sum() < 16 and len(cx) == ok.sum()
    np.testing.assert_allclose(cy, ref_y[ok], rtol=1e-12)
    np.testing.assert_allclose(cx, ref_x[ok], rtol=1e-12)
