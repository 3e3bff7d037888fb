from __future__ import annotations

import json
import subprocess
import sys

import pytest

from photorad.cli import _commands, build_parser, main


def test_every_subcommand_has_help(capsys) -> None:
    names = [m.NAME for m in _commands()]
    assert "doctor" in names and "demo" in names
    for name in names:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"photorad {name}" in out


def test_top_level_help_lists_commands() -> None:
    text = build_parser().format_help()
    for m in _commands():
        assert m.NAME in text


def test_doctor_lists_decoders(capsys) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "DICOM decoders" in out and "JPEG 2000" in out and "RLE Lossless" in out
    assert main(["doctor", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dicom_decoders"]["RLE Lossless"], "RLE must be decodable"
    assert info["data"]["sample_images"] == 20


def test_console_script_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "photorad", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "photorad" in res.stdout


def test_demo_runs_on_sample(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--limit", "4", "--size", "1024x768", "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["cases"]) == 4
    assert "not a diagnosis" in report["disclaimer"]
    for case in report["cases"]:
        # a score exactly when a lesion was found (else the refusal says why)
        if case["lesion"] is None:
            assert case["score"] is None and case["refusal"]
        else:
            assert 0.0 <= case["score"] <= 1.0 and case["lesion"]["source"] == "auto"
        # the shipped restorer must improve on the raw rectified photo
        assert case["psnr_restored_db"] > case["psnr_photo_db"]
    assert report["summary"]["scored"] == sum(c["score"] is not None for c in report["cases"])
    assert "lesion" in report["stages_run"]
    assert (tmp_path / "report.png").exists()
    assert (tmp_path / "run_info.json").exists()
