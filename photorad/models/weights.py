"""Weights shipped inside the package (small CPU models for the demo and CI)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: name → file inside photorad/weights/ (each with a .json sidecar and a model card .md)
SHIPPED = {
    "restorer": "restorer_cpu.safetensors",
    # Optional: the stronger CPU successor (gtunet_s2); pass its path with --model to use it.
    "restorer_successor": "restorer_successor_cpu.safetensors",
    "classifier": "classifier_cpu.safetensors",
    # The image-area segmenter that photorad.rectify.detect consults (photorad.rectify.segment).
    "segmenter": "segmenter_cpu.safetensors",
    # The lesion localizer between restoration and the classifier (photorad.lesion).
    "lesion": "lesion_cpu.safetensors",
    # The input router: is it breast ultrasound at all? (photorad.route).
    "router": "router_cpu.safetensors",
}


def shipped_weights() -> dict[str, Path]:
    """Shipped weight files that are present in this installation."""
    return {k: WEIGHTS_DIR / v for k, v in SHIPPED.items() if (WEIGHTS_DIR / v).is_file()}


def shipped_path(name: str) -> Path:
    from photorad.errors import ModelError

    path = WEIGHTS_DIR / SHIPPED[name]
    if not path.is_file():
        raise ModelError(f"shipped {name} weights not found at {path}; pass --model PATH")
    return path
