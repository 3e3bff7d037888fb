"""Datasets, paths to them and patient-grouped splits."""

from __future__ import annotations

from photorad.data.paths import find_shared_data, sample_dir

__all__ = ["find_shared_data", "sample_dir"]
