"""A minimal timm-style model registry.

>>> from photorad.models import create_model
>>> net = create_model("dncnn", depth=17, channels=64)   # doctest: +SKIP

A family module decorates its constructor functions with :func:`register_model`; the registry
imports the family modules lazily the first time a name is looked up, so importing
``photorad.models`` stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from photorad.errors import ModelError

_MODELS: dict[str, Callable[..., Any]] = {}
_FAMILIES_IMPORTED = False


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``fn`` under its own name; it must accept keyword options and return a module."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} registered twice")
    _MODELS[name] = fn
    return fn


def _import_families() -> None:
    global _FAMILIES_IMPORTED
    if _FAMILIES_IMPORTED:
        return
    import photorad.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name not in {"checkpoint", "weights"}:
            importlib.import_module(f"photorad.models.{info.name}")
    _FAMILIES_IMPORTED = True


def list_models() -> list[str]:
    _import_families()
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any):
    """Build the architecture registered as ``name`` with the given options."""
    _import_families()
    try:
        fn = _MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}") from None
    return fn(**kwargs)
