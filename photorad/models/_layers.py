"""Building blocks shared by the U-Net restorer families (``msunet``, ``gtunet``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """``x + conv(act(conv(x)))`` with 3×3 convolutions and LeakyReLU(0.1)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def monotone_knots(p: torch.Tensor) -> torch.Tensor:
    """B×(n+1) raw outputs → non-decreasing knots: the first value, then softplus increments."""
    return torch.cumsum(torch.cat([p[:, :1], F.softplus(p[:, 1:])], dim=1), dim=1)


def apply_curve(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear curve through ``knots`` (B×(n+1), at 0, 1/n, …, 1) applied to ``x``."""
    n = knots.shape[1] - 1
    b = x.shape[0]
    xk = x.clamp(0.0, 1.0).reshape(b, -1) * n
    idx = xk.floor().clamp(max=n - 1)
    frac = xk - idx
    idx = idx.long()
    lo = torch.gather(knots, 1, idx)
    hi = torch.gather(knots, 1, idx + 1)
    return (lo + (hi - lo) * frac).reshape(x.shape)
