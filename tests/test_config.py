"""YAML configs as argparse defaults (photorad.config.parse_with_yaml)."""

from __future__ import annotations

import argparse

import pytest

from photorad.config import parse_with_yaml
from photorad.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("-c", "--config")
    p.add_argument("--max-minutes", type=float, default=1.0)
    p.add_argument("--out", default="a")
    return p


def test_yaml_keys_are_defaults_and_the_command_line_wins(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max-minutes: 7\nout: b\n")
    a = parse_with_yaml(_parser(), ["-c", str(cfg)])
    assert (a.max_minutes, a.out) == (7, "b")
    assert parse_with_yaml(_parser(), ["-c", str(cfg), "--out", "z"]).out == "z"


def test_unknown_key_and_unreadable_file_are_errors(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("outt: b\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        parse_with_yaml(_parser(), ["-c", str(cfg)])
    with pytest.raises(ConfigError, match="cannot read config"):
        parse_with_yaml(_parser(), ["-c", str(tmp_path / "missing.yaml")])
