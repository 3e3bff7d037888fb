"""The ``photorad`` command line.

Each subcommand is one small module in this package that defines:

* ``NAME`` — the subcommand name (``"doctor"``),
* ``HELP`` — a one-line description,
* ``add_arguments(parser)`` — declares its options,
* ``run(args) -> int`` — does the work and returns the exit status.

Modules are discovered automatically, so adding a subcommand is adding one file. Keep the module
top light (import heavy libraries inside ``run``) so that ``photorad --help`` stays fast.

Errors: a :class:`~photorad.errors.PhotoradError` becomes one line on stderr and its
``exit_code``; anything else is a bug and is reported as such (with the traceback only when
``PHOTORAD_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from photorad import DISCLAIMER, __version__
from photorad.errors import PhotoradError

log = logging.getLogger("photorad")


def _commands() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photorad",
        description="Smartphone-photo teleradiology toolkit. " + DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"photorad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args) or 0)
    except PhotoradError as exc:
        print(f"photorad {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("photorad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so plainly
        if os.environ.get("PHOTORAD_DEBUG"):
            raise
        print(
            f"photorad {args.command}: internal error ({type(exc).__name__}: {exc}). "
            "This is a bug; rerun with PHOTORAD_DEBUG=1 for details and report it.",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
