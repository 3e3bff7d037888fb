"""eval/clean_input.py: the figures the model cards quote for clean inputs are the restorer's."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from photorad.io import load_original
from photorad.metrics import psnr
from photorad.restore import Restorer

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "eval" / "clean_input.py"
CKPT = REPO / "photorad" / "weights" / "restorer_cpu.safetensors"


def test_clean_input_scores_the_restorer_output(tmp_path: Path, sample_root: Path) -> None:
    spec = importlib.util.spec_from_file_location("clean_input", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((sample_root / "Images").glob("*.png"))[:2]:
        shutil.copy(p, images / p.name)
    out = tmp_path / "out"
    assert mod.main(["--model", f"cpu={CKPT}", "--images", str(images), "--tone", "0.5", "0.2",
                     "--out", str(out)]) == 0

    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert [(r["image"], r["input"]) for r in rows][:2] == [(rows[0]["image"], "original"),
                                                            (rows[0]["image"], "tone")]
    restorer = Restorer.from_checkpoint(CKPT)
    orig = load_original(images / rows[0]["image"])
    tone = np.clip(0.5 * orig + 0.2, 0.0, 1.0).astype(np.float32)
    assert float(rows[1]["input_psnr_db"]) == pytest.approx(psnr(orig, tone, data_range=1.0))
    assert float(rows[0]["cpu_psnr_db"]) == pytest.approx(
        psnr(orig, restorer.restore(orig), data_range=1.0), abs=1e-4)
    assert float(rows[1]["cpu_psnr_db"]) == pytest.approx(
        psnr(orig, restorer.restore(tone), data_range=1.0), abs=1e-4)

    doc = json.loads((out / "clean_input.json").read_text())
    assert doc["n_images"] == 2 and doc["models"]["cpu"] == restorer.sha256
    means = doc["summary"]["original"]["cpu"]["mean"]
    assert means == pytest.approx(np.mean([float(r["cpu_psnr_db"]) for r in rows
                                           if r["input"] == "original"]))
    assert "not a diagnosis" in (out / "clean_input.md").read_text()
    assert (out / "run_info.json").exists()
