"""photorad — smartphone-photo teleradiology toolkit (research use, not a diagnosis)."""

from __future__ import annotations

__version__ = "0.1.0"

DISCLAIMER = "Research use only — not a diagnosis."

__all__ = ["DISCLAIMER", "__version__"]
