"""Restorer inference: tiling, backends, ONNX, CLI, paired data, training smoke test."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from photorad.errors import ImageTooSmallError, ModelError, UnsupportedImageError
from photorad.io import load_original, save_png
from photorad.metrics import psnr
from photorad.models import create_model
from photorad.models.checkpoint import CheckpointMeta, save_checkpoint
from photorad.restore import (
    MATCH_TOL,
    Restorer,
    blend_ramp,
    export_onnx,
    fuse_conv_bn,
    tile_starts,
)

REPO = Path(__file__).resolve().parent.parent


def _random_net(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model(name, **kw)
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.05)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def _reference(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(img)[None, None])[0, 0].numpy()


@pytest.fixture(scope="module")
def small_dncnn() -> torch.nn.Module:
    return _random_net("dncnn_s", depth=6, channels=16)


def test_tile_starts_cover() -> None:
    for length in (100, 512, 513, 1000, 2049):
        starts = tile_starts(length, tile=256, overlap=48)
        assert starts[0] == 0 and starts[-1] + min(256, length) == length
        assert all(b - a <= 256 - 48 for a, b in zip(starts, starts[1:], strict=False))


def test_blend_ramps_sum_to_one() -> None:
    # Two neighbouring tiles overlapping by exactly `overlap`: their weights sum to 1.
    tile, overlap = 64, 24
    a = blend_ramp(tile, overlap=overlap, start_inner=False, end_inner=True)
    b = blend_ramp(tile, overlap=overlap, start_inner=True, end_inner=False)
    s = a[tile - overlap:] + b[:overlap]
    np.testing.assert_allclose(s, 1.0, atol=1e-6)
    assert a[-1] == 0 and b[0] == 0 and a[0] == 1 and b[-1] == 1


def test_fuse_conv_bn_is_exact(small_dncnn) -> None:
    import copy

    x = torch.rand(1, 1, 40, 40)
    fused = fuse_conv_bn(copy.deepcopy(small_dncnn))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    with torch.no_grad():
        np.testing.assert_allclose(fused(x).numpy(), small_dncnn(x).numpy(), atol=1e-5)


def test_tiled_equals_whole_for_dncnn(small_dncnn) -> None:
    # DnCNN's receptive-field radius (6 layers: 6 px) is below overlap // 3, so tiling is exact.
    img = np.random.default_rng(1).random((300, 410), dtype=np.float32)
    ref = np.clip(_reference(small_dncnn, img), 0, 1)
    r = Restorer(small_dncnn, tile=128, overlap=36, batch_size=3, backend="eager")
    out = r.restore(img)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_tiled_successor_is_close_to_whole() -> None:
    net = _random_net("msunet_s", widths=(8, 16, 16), blocks=(1, 1, 1), global_context=False)
    img = np.random.default_rng(2).random((260, 300), dtype=np.float32)
    ref = np.clip(_reference(net, img), 0, 1)
    out = Restorer(net, tile=160, overlap=48, backend="eager").restore(img)
    assert float(np.abs(out - ref).mean()) < 0.01


@pytest.mark.parametrize("kw", [{}, {"cdf": True, "tex": (3, 7)}])
def test_tiled_context_model_equals_whole_on_large_input(kw: dict) -> None:
    # gtunet: the thumbnail comes from the whole image (not per tile) and the tiles are aligned
    # to its stride factor with an overlap ≥ 3 × its receptive-field radius, so a 2000×1600
    # image restored in 1024² tiles matches the untiled forward pass. With ``tex`` the context
    # has texture channels (full-resolution local sd of the whole image), still one per image.
    net = _random_net("gtunet_s", widths=(4, 8, 8), blocks=(1, 1, 1), **kw)
    rng = np.random.default_rng(6)
    img = np.clip(rng.random((1600, 2000), dtype=np.float32) * 0.3
                  + np.linspace(0, 0.7, 2000, dtype=np.float32)[None], 0, 1)
    ref = np.clip(_reference(net, img), 0, 1)
    r = Restorer(net, tile=1024, overlap=96, backend="eager")
    assert r.overlap >= 3 * net.receptive_radius and r.overlap % net.factor == 0
    out = r.restore(img)
    assert out.shape == img.shape
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # The same with odd sizes (padding to the stride factor) and small tiles.
    crop = img[:301, :457]
    ref = np.clip(_reference(net, crop), 0, 1)
    np.testing.assert_allclose(Restorer(net, tile=256, overlap=96, backend="eager").restore(crop), ref,
                               atol=1e-5)
    # Per-tile thumbnails would be visibly different (the check above is not vacuous).
    tiles = np.clip(_reference(net, crop[:, :160]), 0, 1)
    assert float(np.abs(tiles - ref[:, :160]).max()) > 1e-3


@pytest.mark.parametrize("name,kw", [("dncnn_s", {"depth": 5, "channels": 16}),
                                     ("msunet_s", {"widths": (8, 16, 24), "blocks": (1, 1, 1)}),
                                     ("gtunet_s", {"widths": (8, 8, 16), "blocks": (1, 1, 1)})])
def test_backends_agree_and_auto_picks_one(name: str, kw: dict) -> None:
    net = _random_net(name, **kw)
    img = np.random.default_rng(3).random((97, 131), dtype=np.float32)
    ref = np.clip(_reference(net, img), 0, 1)
    for backend in ("eager", "channels_last", "onnx"):
        out = Restorer(net, backend=backend).restore(img)
        np.testing.assert_allclose(out, ref, atol=MATCH_TOL)
    r = Restorer(net, backend="auto")
    r.select_backend(probe=64, repeats=1)
    assert r.backend in r.candidates()
    np.testing.assert_allclose(r.restore(img), ref, atol=MATCH_TOL)


@pytest.mark.parametrize("name,kw", [("dncnn_s", {"depth": 5, "channels": 16}),
                                     ("msunet_s", {"widths": (8, 16, 16, 24), "blocks": (1, 1, 1, 2)}),
                                     ("gtunet_s", {"widths": (8, 8, 16), "blocks": (1, 1, 1)}),
                                     ("gtunet_s", {"widths": (8, 8, 16), "blocks": (1, 1, 1),
                                                   "cdf": True, "tex": (3, 7)})])
def test_onnx_matches_pytorch(tmp_path, name: str, kw: dict) -> None:
    ort = pytest.importorskip("onnxruntime")
    net = _random_net(name, **kw)
    path = tmp_path / "m.onnx"
    export_onnx(net, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 64, 96), (2, 1, 75, 133)]:  # dynamic batch and odd sizes
        x = np.random.default_rng(4).random(shape, dtype=np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"image": x})[0]
        assert got.shape == ref.shape
        assert float(np.abs(got - ref).max()) <= 1e-4


@pytest.mark.parametrize("kw", [{}, {"cdf": True, "tex": (3, 7)}])
def test_onnx_with_context_input_matches_pytorch(kw: dict) -> None:
    # The graph Restorer uses for tiles takes the whole image's context as a second input.
    ort = pytest.importorskip("onnxruntime")
    net = _random_net("gtunet_s", widths=(8, 8, 16), blocks=(1, 1, 1), **kw)
    sess = ort.InferenceSession(export_onnx(net, with_context=True),
                                providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image", "context"]
    rng = np.random.default_rng(7)
    whole = torch.from_numpy(rng.random((2, 1, 150, 170), dtype=np.float32))
    with torch.no_grad():
        ctx = net.context(whole)
        tile = whole[..., 10:75, 20:133].contiguous()
        ref = net(tile, ctx).numpy()
    got = sess.run(None, {"image": tile.numpy(), "context": ctx.numpy()})[0]
    assert float(np.abs(got - ref).max()) <= 1e-4


def test_bad_inputs(small_dncnn) -> None:
    r = Restorer(small_dncnn, backend="eager")
    with pytest.raises(UnsupportedImageError):
        r.restore(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ImageTooSmallError):
        r.restore(np.zeros((4, 40), np.float32))
    bad = np.zeros((40, 40), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(UnsupportedImageError):
        r.restore(bad)
    with pytest.raises(ModelError):
        Restorer(small_dncnn, backend="cuda-magic")
    out = r.restore(np.full((40, 40), 2.0, np.float32))  # out-of-range input is clipped
    assert out.min() >= 0 and out.max() <= 1


def _save_restorer(tmp_path: Path, net: torch.nn.Module, arch: str, kw: dict) -> Path:
    meta = CheckpointMeta(architecture=arch, model_kwargs=kw, task="restore")
    return save_checkpoint(tmp_path / f"{arch}.safetensors", net, meta)


def test_cli_restore_and_export(tmp_path) -> None:
    from photorad.cli import main

    kw = {"depth": 4, "channels": 8}
    net = _random_net("dncnn_s", **kw)
    ckpt = _save_restorer(tmp_path, net, "dncnn_s", kw)
    img = np.random.default_rng(5).random((70, 90), dtype=np.float32)
    src = tmp_path / "in.png"
    save_png(src, img, bit_depth=16)
    img16 = load_original(src)
    dst = tmp_path / "out.png"
    rc = main(["restore", str(src), "-o", str(dst), "--model", str(ckpt), "--bit-depth", "16"])
    assert rc == 0
    got = load_original(dst)
    want = np.clip(_reference(fuse_conv_bn(net), img16), 0, 1)
    np.testing.assert_allclose(got, want, atol=2e-4)
    onnx_path = tmp_path / "m.onnx"
    assert main(["export-onnx", "--model", str(ckpt), "-o", str(onnx_path)]) == 0
    assert onnx_path.stat().st_size > 0
    # A missing checkpoint is a clean error, not a traceback.
    assert main(["restore", str(src), "-o", str(dst), "--model", str(tmp_path / "no")]) != 0


# ----------------------------------------------------------------------------- paired data
def _fake_pairs(folder: Path, sample_root: Path, n: int = 6) -> None:
    """Pairs with a known global degradation (gamma, black level, haze) — no simulator needed."""
    from photorad.data.bus_bra import load_records

    recs = load_records(sample_root)[:n]
    (folder / "rect").mkdir(parents=True)
    (folder / "orig").mkdir()
    rows = []
    for i, r in enumerate(recs):
        o = load_original(r.path)
        o = o[: min(o.shape[0], 160), : min(o.shape[1], 160)]
        deg = 0.15 + 0.7 * o**1.6
        save_png(folder / "orig" / f"{r.id}.png", o, bit_depth=16)
        save_png(folder / "rect" / f"{r.id}.png", deg, bit_depth=16)
        rows.append({"id": r.id, "split": "train" if i < n - 2 else "val", "label": r.label,
                     "group": r.group, "preset": "fake", "seed": i, "source": r.path.name})
    with (folder / "pairs.csv").open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)


def test_patch_sampler(tmp_path, sample_root) -> None:
    from photorad.data.paired import PatchSampler, load_pairs

    _fake_pairs(tmp_path / "p", sample_root)
    pairs = load_pairs(tmp_path / "p", split="train")
    assert len(pairs) == 4
    a = PatchSampler(pairs, patch=32, seed=7).batch(5)
    b = PatchSampler(pairs, patch=32, seed=7).batch(5)
    np.testing.assert_array_equal(a[0], b[0])
    x, y = a
    assert x.shape == y.shape == (5, 1, 32, 32)
    # Patches stay aligned under flips/rotations: the degradation maps target onto input.
    np.testing.assert_allclose(x, 0.15 + 0.7 * y**1.6, atol=2e-3)
    # With contexts, each patch comes with its own image's context, flipped/rotated alike: with
    # 48² images, 48² patches and each image as its own context, patch and context must agree.
    from photorad.data.paired import Pair

    crops = [Pair(p.id, p.rect[:48, :48].copy(), p.orig[:48, :48].copy(), p.row) for p in pairs]
    ctxs = [p.rect[None] for p in crops]
    x, y, c = PatchSampler(crops, patch=48, seed=3, contexts=ctxs).batch(8)
    assert c.shape == (8, 1, 48, 48)
    np.testing.assert_array_equal(x, c)
    x2, _ = PatchSampler(crops, patch=48, seed=3).batch(8)
    np.testing.assert_array_equal(x, x2)  # contexts do not change the patch stream


def test_make_pair_with_simulator(sample_root) -> None:
    pytest.importorskip("photorad.simulate", reason="simulator stage not installed")
    from photorad.data.paired import make_pair

    o = load_original(next((sample_root / "Images").glob("*.png")))
    rect, params = make_pair(o, preset="typical", seed=1, photo_size=(800, 600))
    assert rect.shape == o.shape and rect.dtype == np.float32
    assert json.dumps(params)
    assert 3.0 < psnr(o, rect, data_range=1.0) < 40.0


def test_make_pairs_keeps_recorded_seed_of_existing_pairs(sample_root, tmp_path) -> None:
    """Growing the record list must not rewrite the seed of pairs already on disk.

    Seeds are ``seed + index``; prepending a record shifts every index. The pixels of a skipped
    pair were made by its recorded seed, so ``pairs.csv`` must keep that row.
    """
    pytest.importorskip("photorad.simulate", reason="simulator stage not installed")
    from photorad.data.bus_bra import load_records
    from photorad.data.paired import make_pairs, read_pairs_csv

    recs = load_records(sample_root)[:3]
    make_pairs(recs[1:], tmp_path, split="train", seed=10, photo_size=(320, 240))
    before = {r["id"]: r["seed"] for r in read_pairs_csv(tmp_path)}
    rect = (tmp_path / "rect" / f"{recs[1].id}.png").read_bytes()
    rows = make_pairs(recs, tmp_path, split="train", seed=10, photo_size=(320, 240))
    after = {r["id"]: r["seed"] for r in read_pairs_csv(tmp_path)}
    assert {k: after[k] for k in before} == before
    assert (tmp_path / "rect" / f"{recs[1].id}.png").read_bytes() == rect
    assert str(after[recs[0].id]) == "10" and len(rows) == 3


def _trainer(tmp_path: Path, cfg: dict) -> tuple[list[str], dict[str, str]]:
    """Command line and environment that run train/train_restorer.py on ``cfg`` (one thread)."""
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    cmd = [sys.executable, str(REPO / "train" / "train_restorer.py"), "-c", str(tmp_path / "c.yaml")]
    return cmd, dict(os.environ, OMP_NUM_THREADS="1")


def test_train_smoke_and_resume(tmp_path, sample_root) -> None:
    pairs = tmp_path / "pairs"
    _fake_pairs(pairs, sample_root)
    out = tmp_path / "run"
    cfg = {"model": "msunet_s", "model_kwargs": {"widths": [8, 16, 16], "blocks": [1, 1, 1]},
           "out": str(out), "pairs": str(pairs), "make_pairs": False, "patch": 48,
           "batch_size": 4, "steps": 40, "val_every": 20, "lr": 3e-3, "threads": 1,
           "progress": False, "max_minutes": 5.0}
    cmd, env = _trainer(tmp_path, cfg)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for f in ("best.safetensors", "best.json", "last.safetensors", "log.csv", "run_info.json",
              "resume.pt"):
        assert (out / f).is_file(), f
    log = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in log] == [20, 40]
    # The net must beat doing nothing on the held-out pairs (identity PSNR).
    from photorad.data.paired import load_pairs

    val = load_pairs(pairs, split="val")
    ident = np.mean([psnr(p.orig, p.rect, data_range=1.0) for p in val])
    assert float(log[-1]["val_psnr"]) > ident + 1.0
    r = Restorer.from_checkpoint(out / "best.safetensors")
    assert r.meta.data_hash and r.meta.metrics["val_psnr"] > ident
    res = subprocess.run(cmd + ["--resume", "--steps", "60"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed from step 40" in res.stdout
    log = list(csv.DictReader((out / "log.csv").open()))
    assert int(log[-1]["step"]) == 60


def test_train_context_model_smoke(tmp_path, sample_root) -> None:
    # gtunet: the trainer feeds each patch the thumbnail of its whole image and records the
    # CPU budget; the fake pairs' degradation is a pure global tone curve, which the global
    # branch must pick up quickly.
    pairs = tmp_path / "pairs"
    _fake_pairs(pairs, sample_root)
    out = tmp_path / "run"
    cfg = {"model": "gtunet_s", "model_kwargs": {"widths": [8, 8, 16], "blocks": [1, 1, 1]},
           "out": str(out), "pairs": str(pairs), "make_pairs": False, "patch": 48,
           "batch_size": 4, "steps": 40, "val_every": 40, "lr": 3e-3, "threads": 1,
           "progress": False, "max_minutes": 5.0, "max_cpu_minutes": 5.0, "warmup": 0.05}
    cmd, env = _trainer(tmp_path, cfg)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    from photorad.data.paired import load_pairs

    val = load_pairs(pairs, split="val")
    ident = np.mean([psnr(p.orig, p.rect, data_range=1.0) for p in val])
    r = Restorer.from_checkpoint(out / "best.safetensors")
    m = r.meta.metrics
    assert m["step"] == 40 and m["threads"] == 1 and m["train_cpu_seconds"] > 0
    assert m["budget"]["max_cpu_minutes"] == 5.0
    assert m["val_psnr"] > ident + 1.0, (m["val_psnr"], ident)
    # The process-CPU budget ends a run whose step budget is far away.
    out2 = tmp_path / "run2"
    res = subprocess.run(cmd + ["--steps", "100000", "--val-every", "100000", "--max-cpu-minutes",
                                "0.05", "--out", str(out2)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    m2 = json.loads((out2 / "last.json").read_text())["metrics"]
    assert 0 < m2["step"] < 100000 and m2["train_cpu_seconds"] >= 3.0


def _tone_stage_cfg(tmp_path: Path, sample_root: Path, out: Path, **over: object) -> dict:
    """A tiny gtunet_s run with a 150-step tone stage on fake tone-curve pairs."""
    pairs = tmp_path / "pairs"
    _fake_pairs(pairs, sample_root)
    cfg = {"model": "gtunet_s", "model_kwargs": {"widths": [8, 8, 16], "blocks": [1, 1, 1],
                                                 "cdf": True},
           "out": str(out), "pairs": str(pairs), "make_pairs": False, "patch": 48,
           "batch_size": 4, "steps": 10, "val_every": 10, "lr": 1e-3, "threads": 1,
           "progress": False, "max_minutes": 5.0, "tone_steps": 150, "tone_lr": 3e-3,
           "tone_batch": 4, "tone_pixels": 512, "tone_val_every": 50}
    return {**cfg, **over}


def test_train_tone_stage_smoke(tmp_path, sample_root) -> None:
    # The tone-only stage fits the global branch on whole-image pixels before the patch
    # training: on pairs whose degradation is a pure global tone curve, the tone branch alone
    # must gain on val, and the run records it. A model without tone_curve is refused.
    out = tmp_path / "run"
    cfg = _tone_stage_cfg(tmp_path, sample_root, out, tone_aux_weight=1.0, global_lr_mult=0.5)
    cmd, env = _trainer(tmp_path, cfg)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "tone stage" in res.stdout
    m = json.loads((out / "last.json").read_text())["metrics"]
    assert m["tone_steps"] == 150 and m["tone_best_step"] > 0
    assert m["tone_val_psnr"] > m["tone_val_psnr_start"] + 3.0, m
    assert m["step"] == 10
    # The tone-stage model is validated (and can be kept as best) at step 0.
    log = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in log] == [0, 10]
    res = subprocess.run(cmd + ["--model", "dncnn_s", "--model-kwargs", "{}", "--out",
                                str(tmp_path / "run2")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode != 0 and "tone_steps needs a context model" in res.stderr


def _trainer_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_restorer",
                                                  REPO / "train" / "train_restorer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_log_mse_is_minus_mean_psnr_and_bad_loss_names_are_refused() -> None:
    mod = _trainer_module()
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 1, 16, 16, generator=g)
    scale = torch.tensor([0.1, 0.2, 0.3])[:, None, None, None]  # MSE ≫ LOG_EPS
    pred = (y + scale * torch.randn(3, 1, 16, 16, generator=g)).clamp(0, 1)
    mse = ((pred - y) ** 2).flatten(1).mean(1)
    expect = torch.log(mse + mod.LOG_EPS).mean()
    assert float(mod.log_mse(pred, y)) == pytest.approx(float(expect), rel=1e-6)
    # Far above the floor, −10/ln(10) · log_mse is the mean per-sample PSNR (data range 1).
    mean_psnr = np.mean([psnr(y[i, 0].numpy(), pred[i, 0].numpy(), data_range=1.0)
                         for i in range(3)])
    assert -10 / np.log(10) * float(mod.log_mse(pred, y)) == pytest.approx(mean_psnr, abs=0.05)
    with pytest.raises(SystemExit, match="loss must be l1, l2 or log_l2"):
        mod.parse_args(["--loss", "l3"])
    with pytest.raises(SystemExit, match="tone_loss must be mse or log_mse"):
        mod.parse_args(["--tone-loss", "pooled"])


def test_train_with_log_losses_smoke(tmp_path, sample_root) -> None:
    # The per-image log losses (mean PSNR, not pooled MSE) train the tone stage as well.
    out = tmp_path / "run"
    cfg = _tone_stage_cfg(tmp_path, sample_root, out, tone_loss="log_mse", loss="log_l2")
    cmd, env = _trainer(tmp_path, cfg)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((out / "last.json").read_text())["metrics"]
    assert m["tone_val_psnr"] > m["tone_val_psnr_start"] + 3.0, m
    assert np.isfinite(float(m["val_psnr"])) and m["step"] == 10
    resolved = (out / "config.resolved.yaml").read_text()
    assert "tone_loss: log_mse" in resolved and "loss: log_l2" in resolved
