"""GTUNet: a small U-Net whose global branch sees a thumbnail of the WHOLE image.

Why: most of the photo → original error is an image-wide tone change (display gamma, black level,
camera curve, exposure): an oracle per-image tone curve alone reaches ~25.7 dB on simulated
``typical`` photos. A model trained on 128² patches that infers "global" statistics from the patch
(``msunet``) sees different statistics at training time (a patch) and at inference (the whole
image), and cannot infer the per-image curve. GTUNet splits the two jobs:

* **global branch** — a fixed-size thumbnail (``thumb``², default 64², triangle-filtered, computed
  from the whole rectified image by :meth:`GTUNet.context`) plus its soft histogram go through a
  tiny CNN + MLP that predicts (i) a monotone tone curve with ``knots`` linear pieces, applied to
  every input pixel, and (ii) a per-channel scale and shift (FiLM) of the local branch's coarsest
  features. At training time the thumbnail is computed from the whole training image while the
  local branch sees a patch of it — the same thing it sees at inference.
* **local branch** — a 3-scale residual U-Net (1, 1/2, 1/4) on ``[x, curve(x)]`` that predicts the
  spatially varying rest (moiré, blur, noise, local contrast), added to ``curve(x)``. Its
  receptive-field radius (:attr:`GTUNet.receptive_radius`) is small enough that tiled inference
  with the context of the whole image equals whole-image inference (see
  :class:`photorad.restore.Restorer`).

``forward(x, ctx=None)``: ``x`` B×1×H×W in [0, 1]; ``ctx`` B×1×thumb×thumb (computed from ``x``
when omitted) → B×1×H×W (unclamped). Any H, W: the input is replicate-padded to a multiple of
:attr:`GTUNet.factor` and the output cropped back. The thumbnail is a matrix product (no adaptive
pooling), so the model exports to ONNX with dynamic sizes, with or without the ``context`` input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from photorad.models._layers import ResBlock as _ResBlock
from photorad.models._layers import apply_curve, monotone_knots
from photorad.models._registry import register_model

__all__ = ["GTUNet", "gtunet", "gtunet_s", "gtunet_s2", "local_std", "thumbnail"]


def _resize_matrix(n: int | torch.Tensor, size: int, *, like: torch.Tensor) -> torch.Tensor:
    """``size × n`` row-normalised triangle-filter weights (an antialiased linear resize)."""
    # Written with tensor ops on the traced size so that ONNX graphs keep dynamic H, W.
    nf = torch.as_tensor(n, dtype=like.dtype, device=like.device) if not torch.is_tensor(n) \
        else n.to(like.dtype)
    src = (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) / nf
    dst = (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) / size
    # Half-width: one output pixel when shrinking, one input pixel when enlarging, so that every
    # output row has at least one input pixel with positive weight.
    hw = torch.clamp(1.0 / nf, min=1.0 / size)
    w = torch.relu(1.0 - (dst[:, None] - src[None, :]).abs() / hw)
    return w / w.sum(dim=1, keepdim=True)


def thumbnail(x: torch.Tensor, size: int) -> torch.Tensor:
    """B×C×H×W → B×C×size×size triangle-filtered thumbnail (aspect ratio not kept)."""
    h, w = x.shape[-2], x.shape[-1]
    ah = _resize_matrix(h, size, like=x)
    aw = _resize_matrix(w, size, like=x)
    return torch.matmul(torch.matmul(ah, x), aw.transpose(0, 1))


def local_std(x: torch.Tensor, k: int) -> torch.Tensor:
    """Standard deviation of ``x`` in a ``k × k`` window around each pixel (same size)."""
    m = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)
    m2 = F.avg_pool2d(x * x, k, stride=1, padding=k // 2, count_include_pad=False)
    return torch.sqrt(torch.clamp(m2 - m * m, min=1e-12))


class _GlobalBranch(nn.Module):
    """Thumbnail(s) → (tone-curve knots, FiLM scale, FiLM shift).

    Channel 0 of the context is the grey thumbnail; further channels (``n_tex``) are thumbnails of
    the full-resolution local standard deviation at some window sizes. Their mean per grey level
    of channel 0 says how local contrast grows with brightness — the slope of the tone curve
    (display gamma, camera curve) that the grey-level histogram alone cannot tell from content.
    """

    def __init__(self, *, thumb: int, widths: Sequence[int], bins: int, knots: int,
                 film: int, hidden: int = 96, cdf: bool = False, n_tex: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1 + n_tex
        self.n_tex = n_tex
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        # No convolutions: the MLP sees the grey-level statistics only.
        self.n_conv = c_in if widths else 0
        self.bins = bins
        self.knots = knots
        self.film = film
        # The cumulative histogram (CDF) makes the photo's quantiles — black level, exposure —
        # linearly readable; a ridge regression on quantiles alone is a strong tone baseline.
        self.cdf = bool(cdf)
        self.fc1 = nn.Linear(self.n_conv + bins * ((2 if self.cdf else 1) + n_tex) + 2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, knots + 1 + 2 * film)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        # Identity at start: equal knot increments (softplus(b) = 1/knots), no FiLM change.
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[1:knots + 1] = math.log(math.expm1(1.0 / knots))

    def soft_bins(self, t: torch.Tensor) -> torch.Tensor:
        """B×bins×N triangular-kernel weights of each thumbnail value (channel 0) per bin."""
        b = t.shape[0]
        v = t[:, :1].clamp(0.0, 1.0).reshape(b, 1, -1) * (self.bins - 1)
        centres = torch.arange(self.bins, dtype=t.dtype, device=t.device).reshape(1, -1, 1)
        return torch.relu(1.0 - (v - centres).abs())

    def histogram(self, t: torch.Tensor) -> torch.Tensor:
        """Soft (triangular-kernel) histogram of the thumbnail, ``bins`` values summing to 1."""
        return self.soft_bins(t).mean(dim=2)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = t.shape[0]
        flat = t[:, 0].reshape(b, -1)
        stats = torch.stack([flat.mean(dim=1), flat.std(dim=1)], dim=1)
        w = self.soft_bins(t)
        hist = w.mean(dim=2)
        parts = [self.convs(t).mean(dim=(2, 3))] if self.n_conv else []
        parts += [hist, torch.cumsum(hist, dim=1)] if self.cdf else [hist]
        if self.n_tex:
            # Mean local contrast per grey-level bin (empty bins → 0); scaled ×10 to order 1.
            tex = t[:, 1:].reshape(b, self.n_tex, -1)
            sums = torch.matmul(tex, w.transpose(1, 2))  # B×n_tex×bins
            parts.append((10.0 * sums / (w.sum(dim=2)[:, None, :] + 1e-3)).reshape(b, -1))
        g = torch.cat([*parts, stats], dim=1)
        p = self.out(self.act(self.fc2(self.act(self.fc1(g)))))
        k = self.knots + 1
        knots = monotone_knots(p[:, :k])
        scale = p[:, k:k + self.film]
        shift = p[:, k + self.film:]
        return knots, scale, shift


class GTUNet(nn.Module):
    """Global-thumbnail U-Net (see the module docstring).

    Parameters
    ----------
    widths:
        Local-branch channels per scale, finest first (``len(widths) − 1`` halvings).
    blocks:
        Residual blocks per scale (encoder and decoder; the last entry is the bottleneck).
    thumb:
        Side of the whole-image thumbnail the global branch sees.
    thumb_widths:
        Channels of the global branch's stride-2 convolutions.
    hist_bins:
        Bins of the thumbnail's soft histogram fed to the global MLP.
    knots:
        Linear pieces of the predicted global tone curve.
    in_chans:
        Image channels (1 for grey).
    cdf:
        Also feed the thumbnail's cumulative histogram to the global MLP.
    hidden:
        Width of the global MLP.
    tex:
        Window sizes of full-resolution local standard deviations whose thumbnails join the
        context (extra channels; see :class:`_GlobalBranch`). Empty: a grey thumbnail only.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 1, 2),
        thumb: int = 64,
        thumb_widths: Sequence[int] = (16, 32, 64, 64),
        hist_bins: int = 32,
        knots: int = 32,
        in_chans: int = 1,
        cdf: bool = False,
        hidden: int = 96,
        tex: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.tex = tuple(int(k) for k in tex)
        if any(k < 3 or k % 2 == 0 for k in self.tex):
            raise ValueError("tex window sizes must be odd and ≥ 3")
        widths, blocks = list(widths), list(blocks)
        if len(widths) != len(blocks) or len(widths) < 2:
            raise ValueError("widths and blocks must have the same length (≥ 2)")
        if in_chans != 1:
            raise ValueError("GTUNet is a grey-image model (in_chans=1)")
        self.thumb = int(thumb)
        self.factor = 2 ** (len(widths) - 1)
        self.glob = _GlobalBranch(thumb=thumb, widths=thumb_widths, bins=hist_bins, knots=knots,
                                  film=widths[-1], hidden=hidden, cdf=cdf,
                                  n_tex=len(self.tex))
        self.stem = nn.Conv2d(2, widths[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1):
            self.enc.append(nn.Sequential(*[_ResBlock(widths[i]) for _ in range(blocks[i])]))
            self.down.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1))
            self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.dec.append(nn.Sequential(*[_ResBlock(widths[i]) for _ in range(blocks[i])]))
        self.mid = nn.Sequential(*[_ResBlock(widths[-1]) for _ in range(blocks[-1])])
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.receptive_radius = self._radius(blocks)

    def _radius(self, blocks: Sequence[int]) -> int:
        """Upper bound of the local branch's receptive-field radius in input pixels."""
        r, s = 1, 1  # stem
        for i in range(len(blocks) - 1):
            r += 2 * blocks[i] * s + s  # encoder blocks, then the stride-2 conv (3×3 at scale s)
            s *= 2
        r += 2 * blocks[-1] * s
        for i in reversed(range(len(blocks) - 1)):
            s //= 2
            r += s + 2 * blocks[i] * s  # transposed conv (2×2), decoder blocks
        return r + 1  # head

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The global branch's input from the whole image: a ``thumb``² thumbnail (B×1×t×t),
        plus one thumbnail of the local standard deviation per ``tex`` window (B×(1+n)×t×t)."""
        x = x.clamp(0.0, 1.0)
        if not self.tex:
            return thumbnail(x, self.thumb)
        return thumbnail(torch.cat([x, *(local_std(x, k) for k in self.tex)], dim=1), self.thumb)

    def tone_curve(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """The global branch alone: the predicted tone curve applied to ``x`` (any shape B×…).

        ``ctx`` must be given when ``x`` is not the whole image (e.g. sampled pixels or a patch).
        Used for the tone-only training stage and the auxiliary tone loss.
        """
        if ctx is None:
            ctx = self.context(x)
        knots, _scale, _shift = self.glob(ctx)
        return apply_curve(x, knots)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        if ctx is None:
            ctx = self.context(x)
        knots, scale, shift = self.glob(ctx)
        h, w = x.shape[-2:]
        # Always pad (a zero pad is free) so that traced/ONNX graphs stay valid for any size.
        ph, pw = (-h) % self.factor, (-w) % self.factor
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
        base = apply_curve(xp, knots)
        f = self.act(self.stem(torch.cat([xp, base], dim=1)))
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            f = enc(f)
            skips.append(f)
            f = self.act(down(f))
        f = f * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
        f = self.mid(f)
        for i in reversed(range(len(self.up))):
            f = self.dec[i](self.up[i](f) + skips[i])
        out = base + self.head(f)
        return out[..., :h, :w]


@register_model
def gtunet(
    *,
    widths: Sequence[int] = (32, 64, 128),
    blocks: Sequence[int] = (1, 2, 3),
    thumb: int = 64,
    thumb_widths: Sequence[int] = (32, 64, 128, 128),
    hist_bins: int = 64,
    knots: int = 64,
    in_chans: int = 1,
    cdf: bool = False,
    hidden: int = 96,
    tex: Sequence[int] = (),
) -> GTUNet:
    """GPU-scale configuration (well under ``dncnn``'s multiply-adds per pixel)."""
    return GTUNet(widths=widths, blocks=blocks, thumb=thumb, thumb_widths=thumb_widths,
                  hist_bins=hist_bins, knots=knots, in_chans=in_chans, cdf=cdf, hidden=hidden, tex=tex)


@register_model
def gtunet_s(
    *,
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[int] = (1, 1, 2),
    thumb: int = 64,
    thumb_widths: Sequence[int] = (16, 32, 64, 64),
    hist_bins: int = 32,
    knots: int = 32,
    in_chans: int = 1,
    cdf: bool = False,
    hidden: int = 96,
    tex: Sequence[int] = (),
) -> GTUNet:
    """CPU configuration (fewer multiply-adds per pixel than ``dncnn_s``)."""
    return GTUNet(widths=widths, blocks=blocks, thumb=thumb, thumb_widths=thumb_widths,
                  hist_bins=hist_bins, knots=knots, in_chans=in_chans, cdf=cdf, hidden=hidden, tex=tex)


@register_model
def gtunet_s2(*, cdf: bool = True, tex: Sequence[int] = (3, 7), **kwargs: Any) -> GTUNet:
    """``gtunet_s`` whose global branch also sees the thumbnail's CDF and the mean local
    contrast (3×3 and 7×7 local sd at full resolution) per grey level — the tone-curve cues
    a ridge regression on the photo alone found most predictive (``eval/tone_diagnosis.py``).
    Same local branch and multiply-adds per pixel as ``gtunet_s`` (+ two box filters)."""
    return gtunet_s(cdf=cdf, tex=tex, **kwargs)
