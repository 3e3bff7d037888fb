"""DnCNN (Zhang et al., 2017) as used by the reference paper: photo → original, residual learning.

The network predicts the *degradation* ``r`` of a grey image ``x`` (B×1×H×W) and returns
``x - r``. ``dncnn`` is the paper configuration (17 layers, 64 channels, 3×3 convolutions, BN,
ReLU; receptive field 35×35 pixels). ``dncnn_s`` is a CPU-friendly configuration for CI and the
demo. Outputs are not clamped so that training sees the raw residual; :class:`photorad.restore.
Restorer` clamps to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from photorad.models._registry import register_model

__all__ = ["DnCNN", "dncnn", "dncnn_s"]


class DnCNN(nn.Module):
    """Plain DnCNN: conv+ReLU, (depth − 2) × (conv+BN+ReLU), conv; output ``x − net(x)``.

    Parameters
    ----------
    depth:
        Number of 3×3 convolution layers (≥ 2). The receptive field is ``2·depth + 1`` pixels.
    channels:
        Feature channels of the hidden layers.
    in_chans:
        Image channels (1 for grey).
    """

    def __init__(self, *, depth: int = 17, channels: int = 64, in_chans: int = 1) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"DnCNN depth must be ≥ 2, got {depth}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, channels, 3, padding=1, bias=True),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(channels, in_chans, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self.depth = depth
        self.channels = channels
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Start as the identity map: the last layer predicts no degradation at first.
        nn.init.zeros_(self.body[-1].weight)

    @property
    def receptive_field(self) -> int:
        return 2 * self.depth + 1

    def macs_per_pixel(self) -> int:
        """Multiply-accumulates per output pixel (convolutions only)."""
        c = self.channels
        return 9 * c + (self.depth - 2) * 9 * c * c + 9 * c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


@register_model
def dncnn(*, depth: int = 17, channels: int = 64, in_chans: int = 1) -> DnCNN:
    """The reference paper's DnCNN: 17 layers × 64 channels (≈ 0.56 M parameters)."""
    return DnCNN(depth=depth, channels=channels, in_chans=in_chans)


@register_model
def dncnn_s(*, depth: int = 8, channels: int = 32, in_chans: int = 1) -> DnCNN:
    """CPU configuration: 8 layers × 32 channels (≈ 1/11 of ``dncnn``'s compute per pixel)."""
    return DnCNN(depth=depth, channels=channels, in_chans=in_chans)
