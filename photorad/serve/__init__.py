"""Inference service and phone web page (``photorad serve``); see :mod:`photorad.serve.app`.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, fastapi-offline). Nothing in the
package imports this module; it only calls :class:`photorad.pipeline.Pipeline`.
"""

from __future__ import annotations

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> object:  # lazy: importing photorad.serve must not pull in FastAPI
    if name in __all__:
        from photorad.serve import app

        return getattr(app, name)
    raise AttributeError(name)
