from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

from photorad.data.paths import find_shared_data, sample_dir  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def sample_root() -> Path:
    return sample_dir()


@pytest.fixture(scope="session")
def bus_bra_root() -> Path:
    root = find_shared_data("bus-bra")
    if root is None:
        pytest.skip("full BUS-BRA dataset not found (set PHOTORAD_DATA or place ../shared/data)")
    return root


@pytest.fixture(scope="session")
def screen_photos_root() -> Path:
    root = find_shared_data("screen-photos")
    if root is None:
        pytest.skip("real screen photos not found (set PHOTORAD_DATA or place ../shared/data)")
    return root


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
