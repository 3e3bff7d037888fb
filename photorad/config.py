"""YAML configs as argparse defaults: the config style of the trainers (timm's ``train.py`` way).

``parse_with_yaml(parser, argv)`` reads ``-c/--config`` first; every key of that YAML file
becomes a default of the option of the same name (``-`` or ``_``), and the command line
overrides it. A key no option knows is an error, so a typo never passes silently.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from photorad.errors import ConfigError

__all__ = ["parse_with_yaml"]


def parse_with_yaml(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
                    ) -> argparse.Namespace:
    """Parse ``argv`` with the YAML file of ``--config`` (dest ``config``) as the defaults.

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or it has a key that no option knows.
    """
    import yaml

    pre, _ = parser.parse_known_args(argv)
    if getattr(pre, "config", None):
        try:
            cfg = yaml.safe_load(Path(pre.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {pre.config}: {exc}") from None
        known = {a.dest for a in parser._actions}
        defaults = {k.replace("-", "_"): v for k, v in cfg.items()}
        bad = sorted(set(defaults) - known)
        if bad:
            raise ConfigError(f"unknown config key(s): {', '.join(bad)}")
        parser.set_defaults(**defaults)
    return parser.parse_args(argv)
