"""Smoke test of eval/transmission_table.py on one small case (keeps the script runnable)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from tests._orthanc import dicomweb_plugin, orthanc_binary

SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "transmission_table.py"


@pytest.mark.slow
def test_transmission_table_runs(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("transmission_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["--out", str(tmp_path), "--cases", "1", "--sample", "--photo-size", "1008",
                   "756", "--images", "200", "1000", "--uplinks-mbps", "0.5", "10"])
    assert rc == 0
    md = (tmp_path / "transmission.md").read_text()
    assert "| (b) phone photo JPEG upload | 1 |" in md
    rows = list(csv.DictReader(open(tmp_path / "transmission.csv")))
    summary = {r["method"]: r for r in csv.DictReader(open(tmp_path / "summary.csv"))}
    assert {r["uplink_mbps"] for r in rows} == {"0.5", "10"}
    # minutes = N × mean bytes × 8 / rate
    for r in rows:
        mean = float(summary[r["method"]]["mean_bytes"])
        expect = int(r["n_images"]) * mean * 8 / (float(r["uplink_mbps"]) * 1e6) / 60
        assert float(r["minutes"]) == pytest.approx(expect, rel=1e-3)
    if orthanc_binary() and dicomweb_plugin():
        assert "stored" in md and summary["dicom_cstore"]["loopback_ms_per_image"] != "nan"
    assert (tmp_path / "run_info.json").exists()
    assert not (tmp_path / "_work").exists()
