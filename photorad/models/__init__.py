"""Model families (one file each) behind a timm-style registry.

``create_model(name, **kwargs)`` builds any registered architecture; families register
themselves when their module is imported, and :func:`_import_families` imports them all.
Checkpoints are safetensors + a JSON sidecar (:mod:`photorad.models.checkpoint`).
"""

from __future__ import annotations

from photorad.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
