"""The shipped CPU restorer: loads from the package and really restores simulated photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from photorad.io import load_original
from photorad.metrics import psnr, ssim
from photorad.models.weights import WEIGHTS_DIR, shipped_weights

pytestmark = pytest.mark.skipif(
    "restorer" not in shipped_weights(), reason="shipped restorer weights not present"
)


def test_card_sidecar_and_size() -> None:
    w = WEIGHTS_DIR / "restorer_cpu.safetensors"
    assert w.stat().st_size <= 10 * 2**20
    meta = json.loads(w.with_suffix(".json").read_text())
    assert meta["task"] == "restore" and meta["data_hash"] and meta["metrics"]
    card = (WEIGHTS_DIR / "restorer_cpu.md").read_text()
    assert "not a diagnosis" in card.lower() and meta["architecture"] in card


def test_shipped_restorer_gains_on_simulated_typical_photos(sample_root) -> None:
    pytest.importorskip("photorad.simulate", reason="simulator stage not installed")
    from photorad.rectify import warp
    from photorad.restore import default_restorer
    from photorad.simulate import simulate_photo

    r = default_restorer()
    assert r.sha256 and len(r.sha256) == 64
    paths = sorted((sample_root / "Images").glob("*.png"))[:3]
    gains, ssim_after = [], []
    for i, p in enumerate(paths):
        orig = load_original(p)
        sim = simulate_photo(orig, preset="typical", seed=900 + i, size=(1600, 1200))
        rect = warp(sim.photo, sim.corners, size=(orig.shape[1], orig.shape[0]))
        out = r.restore(rect)
        assert out.shape == orig.shape and out.dtype == np.float32
        gains.append(psnr(orig, out, data_range=1.0) - psnr(orig, rect, data_range=1.0))
        ssim_after.append(ssim(orig, out, data_range=1.0))
    # Some sample images may be training images (other simulation seeds): this checks that the
    # shipped weights load and help on every image, not generalisation (see the quality table).
    assert min(gains) > 6.0, gains
    assert float(np.mean(gains)) > 9.0, gains
    assert float(np.mean(ssim_after)) > 0.7, ssim_after


def test_shipped_successor_loads_and_restores(sample_root) -> None:
    """The optional successor weights: card, sidecar, and a real restore through Restorer."""
    w = WEIGHTS_DIR / "restorer_successor_cpu.safetensors"
    if not w.is_file():
        pytest.skip("successor weights not shipped in this installation")
    from photorad.restore import Restorer

    meta = json.loads(w.with_suffix(".json").read_text())
    assert meta["task"] == "restore" and meta["architecture"] == "gtunet_s2" and meta["data_hash"]
    card = (WEIGHTS_DIR / "restorer_successor_cpu.md").read_text()
    assert "not a diagnosis" in card.lower() and meta["architecture"] in card
    pytest.importorskip("photorad.simulate", reason="simulator stage not installed")
    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    r = Restorer.from_checkpoint(w)
    gains = []
    for i, p in enumerate(sorted((sample_root / "Images").glob("*.png"))[:2]):
        orig = load_original(p)
        sim = simulate_photo(orig, preset="typical", seed=950 + i, size=(1600, 1200))
        rect = warp(sim.photo, sim.corners, size=(orig.shape[1], orig.shape[0]))
        out = r.restore(rect)
        assert out.shape == orig.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        gains.append(psnr(orig, out, data_range=1.0) - psnr(orig, rect, data_range=1.0))
    assert min(gains) > 6.0, gains
