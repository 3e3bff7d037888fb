"""Benign/malignant classifiers for grey-scale breast ultrasound (input B×1×H×W, output B×1 logits).

* ``xception`` — timm ``legacy_xception`` (Chollet's original Xception, as in the reference paper)
  with a 1-channel stem and one output logit. Always built with ``pretrained=False``: timm never
  downloads anything here. Local ImageNet (or other) weights can be loaded with
  :func:`load_pretrained`, which checks the file's SHA-256 and folds an RGB stem into 1 channel.
* ``sepnet`` — a small depthwise-separable CNN (≈ 0.3 M parameters, ~1 MB) that trains on two CPU
  cores in minutes at 128–224 px; used for CI, the demo and the shipped CPU weights.

Both return the *logit* of "malignant"; :class:`photorad.classify.Classifier` applies the sigmoid.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from photorad.errors import ModelError
from photorad.models._registry import register_model

__all__ = ["SepNet", "load_pretrained", "sepnet", "xception"]


@register_model
def xception(*, in_chans: int = 1, num_classes: int = 1, drop_rate: float = 0.0) -> nn.Module:
    """timm ``legacy_xception`` with ``in_chans`` input channels and ``num_classes`` logits."""
    import timm

    return timm.create_model(
        "legacy_xception",
        pretrained=False,
        in_chans=in_chans,
        num_classes=num_classes,
        drop_rate=drop_rate,
    )


class _SepConv(nn.Module):
    """Depthwise 3×3 (optionally strided) → pointwise 1×1, each followed by BN; ReLU at the end."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.dw(x)))
        return self.act(self.bn2(self.pw(x)))


class _Block(nn.Module):
    """Two separable convs with a residual 1×1 shortcut (an Xception-style entry-flow block)."""

    def __init__(self, cin: int, cout: int, *, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_SepConv(cin, cout, stride=stride), _SepConv(cout, cout))
        self.skip = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                               nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class SepNet(nn.Module):
    """Small depthwise-separable residual CNN: stem (stride 2) + 4 stride-2 blocks + GAP + linear."""

    def __init__(
        self,
        *,
        in_chans: int = 1,
        num_classes: int = 1,
        widths: tuple[int, ...] = (32, 64, 128, 192, 256),
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, w0, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        )
        blocks = [_Block(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


@register_model
def sepnet(
    *,
    in_chans: int = 1,
    num_classes: int = 1,
    widths: tuple[int, ...] | list[int] = (32, 64, 128, 192, 256),
    drop_rate: float = 0.2,
) -> nn.Module:
    """CPU-friendly depthwise-separable classifier (see :class:`SepNet`)."""
    return SepNet(in_chans=in_chans, num_classes=num_classes, widths=tuple(widths),
                  drop_rate=drop_rate)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelError(f"{path.name}: expected a state dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, *, sha256: str | None
) -> dict[str, list[str]]:
    """Load local pretrained weights into ``model`` (never downloads).

    The file's SHA-256 must equal ``sha256`` (pass ``None`` only for files you made yourself).
    A 3-channel first convolution is summed over its input channels to fit a 1-channel stem
    (timm's own rule for ``in_chans=1``); classifier-head tensors whose shape differs (e.g. 1000
    ImageNet classes vs 1 logit) are skipped.

    Returns
    -------
    dict
        ``{"loaded": [...], "adapted": [...], "skipped": [...]}`` tensor names.
    """
    from photorad.provenance import sha256_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained weights not found: {path}")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        raise ModelError(
            f"{path.name}: SHA-256 mismatch (expected {sha256[:12]}…, got {digest[:12]}…); "
            "refusing to load unverified weights"
        )
    try:
        state = _read_state(path)
    except ModelError:
        raise
    except Exception as exc:  # pickle/safetensors errors: unreadable, not a bug of ours
        raise ModelError(f"{path.name}: cannot read weights ({type(exc).__name__}: {exc})") from None
    own = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "adapted": [], "skipped": []}
    new_state = {}
    for k, v in state.items():
        if k not in own:
            report["skipped"].append(k)
            continue
        target = own[k]
        if v.shape == target.shape:
            new_state[k] = v
            report["loaded"].append(k)
        elif v.ndim == 4 and target.ndim == 4 and v.shape[1] == 3 and target.shape[1] == 1 \
                and v.shape[0] == target.shape[0] and v.shape[2:] == target.shape[2:]:
            new_state[k] = v.sum(dim=1, keepdim=True)
            report["adapted"].append(k)
        else:
            report["skipped"].append(k)
    if not report["loaded"] and not report["adapted"]:
        raise ModelError(f"{path.name}: no tensor matches {type(model).__name__}; wrong file?")
    model.load_state_dict(new_state, strict=False)
    return report
