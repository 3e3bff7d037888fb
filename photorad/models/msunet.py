"""MSUNet: a multi-scale residual U-Net successor to DnCNN for screen-photo restoration.

Why: a phone photo of a monitor carries moiré with periods longer than DnCNN's 35×35 receptive
field, a global tone/gamma shift and low-frequency glare. MSUNet sees them by doing most of its
work at low resolution: five scales (1, 1/2, 1/4, 1/8, 1/16), residual 3×3 blocks at each, strided
convolutions down, 2×2 transposed convolutions up, additive skips, and a global-context block at
the coarsest scale (mean over the whole input → per-channel bias, so a global tone shift can be
inferred from the entire image). The receptive field exceeds 300 pixels, yet the cost per pixel is
a fraction of ``dncnn``'s because each halving of resolution quarters the pixels.

Input B×1×H×W in [0, 1] → output B×1×H×W (``x + net(x)``, unclamped). Any H, W: the input is
reflect-padded to a multiple of 16 and the output cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from photorad.models._layers import ResBlock as _ResBlock
from photorad.models._layers import apply_curve, monotone_knots
from photorad.models._registry import register_model

__all__ = ["MSUNet", "msunet", "msunet_s"]


class _GlobalContext(nn.Module):
    """Add a per-channel bias computed from the spatial mean of the whole feature map."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c, 1)
        self.fc2 = nn.Conv2d(c, c, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(dim=(2, 3), keepdim=True)
        return x + self.fc2(self.act(self.fc1(g)))


class _ToneCurve(nn.Module):
    """Predict a global monotone tone curve (``knots`` linear pieces) from pooled features.

    Most of the photo → original error is an image-wide tone change (display gamma, black level,
    camera curve, exposure). An explicit curve, inferred from the whole image's coarse features
    and applied to the input pixel values, models it with a handful of numbers; the U-Net then only
    predicts the spatially varying rest. Initialised to the identity curve.
    """

    def __init__(self, c: int, knots: int) -> None:
        super().__init__()
        self.knots = knots
        self.fc1 = nn.Linear(c, 64)
        self.fc2 = nn.Linear(64, knots + 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():
            self.fc2.bias.zero_()
            # softplus(b) = 1/knots → equal increments → identity curve
            self.fc2.bias[1:] = math.log(math.expm1(1.0 / knots))

    def forward(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # Mean pooling only: unlike a max it does not drift with the image size (train patches
        # vs whole images at inference).
        g = feats.mean(dim=(2, 3))
        return apply_curve(x, monotone_knots(self.fc2(self.act(self.fc1(g)))))


class MSUNet(nn.Module):
    """Multi-scale residual U-Net.

    Parameters
    ----------
    widths:
        Channels at each scale, finest first; ``len(widths) − 1`` halvings.
    blocks:
        Residual blocks per scale in the encoder and again in the decoder (same length as
        ``widths``; the last entry is the bottleneck's block count).
    global_context:
        Add the global-context block at the coarsest scale.
    tone_knots:
        When > 0, a global tone curve with this many linear pieces is predicted from the
        coarsest features and applied to the input before the residual is added.
    in_chans:
        Image channels (1 for grey).
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (16, 32, 64, 128, 128),
        blocks: Sequence[int] = (1, 1, 1, 1, 2),
        global_context: bool = True,
        tone_knots: int = 0,
        in_chans: int = 1,
    ) -> None:
        super().__init__()
        widths, blocks = list(widths), list(blocks)
        if len(widths) != len(blocks) or len(widths) < 2:
            raise ValueError("widths and blocks must have the same length (≥ 2)")
        self.factor = 2 ** (len(widths) - 1)
        self.stem = nn.Conv2d(in_chans, widths[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1):
            self.enc.append(nn.Sequential(*[_ResBlock(widths[i]) for _ in range(blocks[i])]))
            self.down.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1))
            self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.dec.append(nn.Sequential(*[_ResBlock(widths[i]) for _ in range(blocks[i])]))
        mid: list[nn.Module] = [_ResBlock(widths[-1]) for _ in range(blocks[-1])]
        if global_context:
            mid.insert(len(mid) // 2, _GlobalContext(widths[-1]))
        self.mid = nn.Sequential(*mid)
        self.tone = _ToneCurve(widths[-1], tone_knots) if tone_knots > 0 else None
        self.head = nn.Conv2d(widths[0], in_chans, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Always pad (a zero pad is free) so that traced/ONNX graphs stay valid for any size.
        ph, pw = (-h) % self.factor, (-w) % self.factor
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
        f = self.act(self.stem(xp))
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            f = enc(f)
            skips.append(f)
            f = self.act(down(f))
        f = self.mid(f)
        base = self.tone(f, xp) if self.tone is not None else xp
        for i in reversed(range(len(self.up))):
            f = self.dec[i](self.up[i](f) + skips[i])
        out = base + self.head(f)
        return out[..., :h, :w]


@register_model
def msunet(
    *,
    widths: Sequence[int] = (24, 48, 96, 192, 256),
    blocks: Sequence[int] = (1, 1, 1, 2, 2),
    global_context: bool = True,
    tone_knots: int = 32,
    in_chans: int = 1,
) -> MSUNet:
    """GPU/paper-scale successor (≤ 1/4 of ``dncnn``'s multiply-adds per pixel)."""
    return MSUNet(widths=widths, blocks=blocks, global_context=global_context,
                  tone_knots=tone_knots, in_chans=in_chans)


@register_model
def msunet_s(
    *,
    widths: Sequence[int] = (16, 32, 64, 96, 128),
    blocks: Sequence[int] = (1, 1, 1, 1, 2),
    global_context: bool = True,
    tone_knots: int = 32,
    in_chans: int = 1,
) -> MSUNet:
    """CPU configuration for CI, the demo and the shipped weights (< dncnn_s compute per pixel)."""
    return MSUNet(widths=widths, blocks=blocks, global_context=global_context,
                  tone_knots=tone_knots, in_chans=in_chans)
