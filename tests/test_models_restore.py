"""Restoration architectures: registry, shapes, residual learning, cost, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from photorad.errors import ModelError
from photorad.models import create_model, list_models
from photorad.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from photorad.restore import conv_macs

RESTORERS = ("dncnn", "dncnn_s", "msunet", "msunet_s", "gtunet", "gtunet_s", "gtunet_s2")


def test_registered() -> None:
    assert set(RESTORERS) <= set(list_models())


def test_dncnn_paper_config() -> None:
    net = create_model("dncnn")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(bns) == 15
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert convs[1].in_channels == 64 and convs[1].out_channels == 64
    assert net.receptive_field == 35
    assert conv_macs(net, height=64, width=64) == net.macs_per_pixel() * 64 * 64


@pytest.mark.parametrize("name", RESTORERS)
@pytest.mark.parametrize("shape", [(1, 1, 40, 56), (2, 1, 37, 61)])
def test_shapes_any_size(name: str, shape: tuple[int, ...]) -> None:
    net = create_model(name).eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and y.dtype == torch.float32


@pytest.mark.parametrize("name", RESTORERS)
def test_starts_as_identity(name: str) -> None:
    # Residual learning with a zero-initialised last layer: an untrained net changes nothing.
    net = create_model(name).eval()
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(net(x), x, atol=1e-6)


def test_dncnn_subtracts_predicted_degradation() -> None:
    net = create_model("dncnn_s", depth=3, channels=4).eval()
    torch.nn.init.normal_(net.body[-1].weight, std=0.1)
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.allclose(net(x), x - net.body(x))


def test_successor_is_cheaper_and_sees_further() -> None:
    d = conv_macs(create_model("dncnn"), height=256, width=256)
    m = conv_macs(create_model("msunet"), height=256, width=256)
    assert m <= d / 4, (m, d)
    # Receptive field: an impulse at the centre changes outputs > 100 px away (DnCNN: ≤ 17 px).
    net = create_model("msunet_s").eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.zeros(1, 1, 256, 256)
    x2 = x.clone()
    x2[..., 128, 128] = 1.0
    with torch.no_grad():
        diff = (net(x2) - net(x)).abs()[0, 0]
    assert diff[128, 0:10].max() > 0 and diff[0:10, 128].max() > 0


def test_checkpoint_roundtrip(tmp_path) -> None:
    net = create_model("msunet_s", widths=(8, 16, 16), blocks=(1, 1, 1))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    meta = CheckpointMeta(architecture="msunet_s", task="restore",
                          model_kwargs={"widths": [8, 16, 16], "blocks": [1, 1, 1]},
                          metrics={"val_psnr": 1.0}, data_hash="abc")
    path = save_checkpoint(tmp_path / "m.safetensors", net, meta)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["architecture"] == "msunet_s" and side["data_hash"] == "abc"
    loaded, meta2 = load_checkpoint(path, task="restore")
    x = torch.rand(1, 1, 33, 47)
    with torch.no_grad():
        np.testing.assert_array_equal(net.eval()(x).numpy(), loaded(x).numpy())
    assert meta2.sha256 and len(meta2.sha256) == 64
    with pytest.raises(ModelError):
        load_checkpoint(path, task="classify")
    with pytest.raises(ModelError):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_gtunet_s_is_cheaper_than_dncnn_s() -> None:
    # The CPU successor must not cost more per pixel than the CPU baseline (thumbnail branch
    # included: conv_macs counts every convolution the forward pass runs).
    d = conv_macs(create_model("dncnn_s"), height=256, width=256)
    g = conv_macs(create_model("gtunet_s"), height=256, width=256)
    assert g <= d, (g, d)


def test_gtunet_global_branch_uses_the_given_context() -> None:
    from photorad.models.gtunet import thumbnail

    torch.manual_seed(0)
    net = create_model("gtunet_s", widths=(8, 8, 16), blocks=(1, 1, 1)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    whole = torch.rand(1, 1, 120, 150)
    patch = whole[..., 30:78, 40:88]
    with torch.no_grad():
        ctx = net.context(whole)
        # Default context = the thumbnail of the input itself.
        torch.testing.assert_close(net(whole), net(whole, ctx))
        assert ctx.shape == (1, 1, 64, 64)
        # A patch restored with the whole image's context differs from one with its own.
        assert (net(patch, ctx) - net(patch)).abs().max() > 1e-4
    # The thumbnail is an average: a constant image stays constant, the mean is kept.
    c = thumbnail(torch.full((1, 1, 37, 200), 0.25), 64)
    torch.testing.assert_close(c, torch.full_like(c, 0.25))
    x = torch.rand(2, 1, 640, 512)
    torch.testing.assert_close(thumbnail(x, 64).mean(dim=(2, 3)), x.mean(dim=(2, 3)),
                               atol=2e-3, rtol=0)


def test_gtunet_receptive_radius_bounds_the_local_branch() -> None:
    # The declared radius must really bound the local branch (tiling relies on it).
    torch.manual_seed(1)
    net = create_model("gtunet_s", widths=(4, 8, 8), blocks=(1, 1, 2)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    r = net.receptive_radius
    x = torch.rand(1, 1, 256, 256)
    ctx = net.context(x)
    x2 = x.clone()
    x2[..., 128, 128] += 0.5
    with torch.no_grad():
        diff = (net(x2, ctx) - net(x, ctx)).abs()[0, 0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert len(ys) > 0
    assert int((ys - 128).abs().max()) <= r and int((xs - 128).abs().max()) <= r


def test_gtunet_tone_curve_is_the_pointwise_global_branch() -> None:
    # tone_curve applies the context's curve to every value on its own: on shuffled pixels it
    # gives the shuffled image result, and at initialisation forward() == tone_curve().
    torch.manual_seed(2)
    net = create_model("gtunet_s", widths=(8, 8, 16), blocks=(1, 1, 1), cdf=True).eval()
    assert net.glob.cdf
    for p in net.glob.parameters():
        torch.nn.init.normal_(p, std=0.1)
    whole = torch.rand(2, 1, 60, 70)
    ctx = net.context(whole)
    perm = torch.randperm(60 * 70)
    with torch.no_grad():
        img = net.tone_curve(whole, ctx)
        pix = net.tone_curve(whole.reshape(2, 1, 1, -1)[..., perm], ctx)
        torch.testing.assert_close(pix, img.reshape(2, 1, 1, -1)[..., perm])
        torch.testing.assert_close(net(whole), img)  # local head is zero-initialised
        # The curve depends on the context (not a fixed map) and is non-decreasing.
        other = net.tone_curve(whole, net.context(whole.flip(0) ** 2))
        assert (other - img).abs().max() > 1e-4
        ramp = torch.linspace(0, 1, 101).reshape(1, 1, 1, -1).expand(2, 1, 1, 101)
        assert bool((net.tone_curve(ramp, ctx).diff(dim=-1) >= -1e-6).all())


def test_gtunet_s2_keeps_the_cost() -> None:
    # gtunet_s2's extra global features (CDF, texture thumbnails) widen the global MLP's input
    # and the thumbnail CNN's first convolution (2 more input channels on the 64² thumbnail,
    # whatever the image size); the full-resolution convolutions are gtunet_s's. The two
    # box-filtered local sds cost ≤ 2 × (9 + 49) × 2 operations per pixel (avg-pooling x and x²,
    # not counted by conv_macs) — well under dncnn_s's cost either way.
    a = conv_macs(create_model("gtunet_s"), height=256, width=256)
    b = conv_macs(create_model("gtunet_s2"), height=256, width=256)
    d = conv_macs(create_model("dncnn_s"), height=256, width=256)
    assert b - a == 32 * 32 * 16 * 9 * 2  # first thumbnail conv: 32² outputs × 16 × 3×3 × 2
    assert b + 2 * (9 + 49) * 2 * 256**2 < d


def test_gtunet_texture_context() -> None:
    # tex adds one channel per window: the thumbnail of the full-resolution local sd. A flat
    # image has zero local sd; a fine checkerboard has a large one that a 64² thumbnail of the
    # grey values alone cannot show (it averages to flat grey).
    from photorad.models.gtunet import local_std

    net = create_model("gtunet_s", widths=(8, 8, 16), blocks=(1, 1, 1), tex=(3, 7)).eval()
    flat = torch.full((1, 1, 128, 128), 0.5)
    checker = ((torch.arange(128)[:, None] + torch.arange(128)[None]) % 2).float()[None, None]
    with torch.no_grad():
        cf, cc = net.context(flat), net.context(checker)
    assert cf.shape == cc.shape == (1, 3, 64, 64)
    torch.testing.assert_close(cf[:, 0], cc[:, 0], atol=0.02, rtol=0)  # same grey thumbnail
    assert float(cf[:, 1:].abs().max()) < 1e-3 and float(cc[:, 1:].min()) > 0.4
    torch.testing.assert_close(local_std(flat, 3), torch.zeros_like(flat), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        create_model("gtunet_s", tex=(4,))
