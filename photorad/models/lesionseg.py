"""Lesion localizer for breast ultrasound: a U-Net on the ``sepnet`` encoder.

Maps a B×1×H×W grey image (the whole ultrasound frame, or a zoomed view of the lesion,
resized to a square of ``side`` pixels; H and W multiples of 32) to B×1×H×W logits of
"this pixel is lesion". Used by :mod:`photorad.lesion`, trained by ``train/train_lesion.py``.

The encoder is the classifier's own (:class:`photorad.models.classifier.SepNet` without its
head), so the localizer can start from the shipped classifier's weights: those already respond
to lesion texture, and the localizer then needs far fewer CPU steps to learn where a lesion
ends. The decoder upsamples 2× per level, concatenates the encoder feature of that scale and
applies two depthwise-separable convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from photorad.models._registry import register_model
from photorad.models.classifier import SepNet, _SepConv

__all__ = ["LesionNet", "lesionseg_l", "lesionseg_s"]


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_SepConv(cin + cskip, cout), _SepConv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))


class LesionNet(nn.Module):
    """SepNet encoder (5 stride-2 levels) + separable U-Net decoder + 1-logit head.

    Parameters
    ----------
    widths:
        Encoder channels per level (as ``sepnet``'s ``widths``), finest first.
    dec_widths:
        Decoder channels, coarsest first (one per upsampling to the four finer levels).
    in_chans:
        Input channels.
    """

    def __init__(self, *, widths: tuple[int, ...] = (32, 64, 128, 192, 256),
                 dec_widths: tuple[int, ...] = (128, 96, 64, 32), in_chans: int = 1) -> None:
        super().__init__()
        if len(widths) != 5 or len(dec_widths) != 4:
            raise ValueError("LesionNet needs 5 encoder widths and 4 decoder widths")
        enc = SepNet(in_chans=in_chans, widths=tuple(widths))
        # the same attribute names as SepNet, so a classifier state dict loads into the encoder
        self.stem, self.blocks = enc.stem, enc.blocks
        ups, cin = [], widths[4]
        for skip, cout in zip(widths[3::-1], dec_widths, strict=True):
            ups.append(_Up(cin, skip, cout))
            cin = cout
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [self.stem(x)]
        for blk in self.blocks:
            feats.append(blk(feats[-1]))
        y = feats[-1]
        for up, skip in zip(self.ups, feats[3::-1], strict=True):
            y = up(y, skip)
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


@register_model
def lesionseg_s(*, widths: tuple[int, ...] = (32, 64, 128, 192, 256),
                dec_widths: tuple[int, ...] = (128, 96, 64, 32), in_chans: int = 1) -> LesionNet:
    """CPU configuration (≈ 0.4 M parameters, < 2 MB), encoder = the ``sepnet`` classifier's."""
    return LesionNet(widths=tuple(widths), dec_widths=tuple(dec_widths), in_chans=in_chans)


@register_model
def lesionseg_l(*, widths: tuple[int, ...] = (64, 128, 256, 384, 512),
                dec_widths: tuple[int, ...] = (256, 192, 128, 64), in_chans: int = 1
                ) -> LesionNet:
    """GPU configuration (≈ 1.6 M parameters): twice the channels, same layout."""
    return LesionNet(widths=tuple(widths), dec_widths=tuple(dec_widths), in_chans=in_chans)
