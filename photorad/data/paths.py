"""Where data lives: the embedded sample and the optional full datasets.

The full data (``shared/data`` beside the checkout) is found through, in order: the
``PHOTORAD_DATA`` environment variable, ``../shared/data`` from the current folder, and
``../shared/data`` from the repository root. A clone without it still runs the demo and the tests
on the embedded sample.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent


def sample_dir() -> Path:
    """Folder of the embedded BUS-BRA sample shipped inside the package."""
    return PACKAGE_DIR / "sample_data" / "bus-bra"


def find_shared_data(name: str | None = None) -> Path | None:
    """Return the shared data folder (or its sub-folder ``name``) if present, else ``None``."""
    candidates = []
    env = os.environ.get("PHOTORAD_DATA")
    if env:
        candidates.append(Path(env))
    candidates += [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
    for c in candidates:
        target = c / name if name else c
        if target.is_dir():
            return target.resolve()
    return None
