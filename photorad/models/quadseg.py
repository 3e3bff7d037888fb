"""A small U-Net that segments the displayed image area in a reduced phone photo.

Used by :mod:`photorad.rectify.segment` as a second opinion for the geometric detector: it maps
a B×C×H×W reduced photo (C input channels, see :func:`photorad.rectify.segment.segment_input`)
to B×1×H×W logits of "this pixel shows the displayed image". H and W must be multiples of 16.
The network only has to place the image area to a few working pixels; the borders are then
measured at full resolution by the edge refinement of :mod:`photorad.rectify.detect`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from photorad.models._registry import register_model

__all__ = ["QuadSeg", "quadseg_s"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class QuadSeg(nn.Module):
    """Four-level U-Net (max-pool down, bilinear up, concatenated skips) with a context block.

    The bottleneck adds dilated convolutions (rates 2, 4) so that its receptive field spans the
    whole reduced photo: whether a bright area is the image or the lit viewer around it depends
    on the layout of the whole screen, not on local texture alone.

    Parameters
    ----------
    widths:
        Channels of the five levels, finest first.
    in_chans:
        Input channels.
    """

    def __init__(self, *, widths: tuple[int, ...] = (8, 16, 32, 64, 96), in_chans: int = 2
                 ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"QuadSeg needs 5 widths, got {len(widths)}")
        self.widths = tuple(int(w) for w in widths)
        w = self.widths
        self.down = nn.ModuleList([_block(in_chans, w[0])] +
                                  [_block(w[i], w[i + 1]) for i in range(4)])
        self.context = nn.Sequential(*[
            m for r in (2, 4) for m in (
                nn.Conv2d(w[4], w[4], 3, padding=r, dilation=r, bias=False),
                nn.BatchNorm2d(w[4]), nn.ReLU(inplace=True))
        ])
        self.up = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in range(4)])
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = x + self.context(x)
        for i in range(3, -1, -1):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
        return self.head(x)


@register_model
def quadseg_s(*, widths: tuple[int, ...] = (8, 16, 32, 64, 96), in_chans: int = 2) -> QuadSeg:
    """CPU configuration (≈ 0.56 M parameters) for photos reduced to a 192-pixel long side."""
    return QuadSeg(widths=tuple(widths), in_chans=in_chans)
