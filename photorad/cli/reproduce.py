"""`photorad reproduce`: regenerate the study's tables from scratch (simulate → train → evaluate).

Runs the committed scripts of the source checkout (``train/``, ``eval/``) as separate processes,
logs each under ``--work``, writes ``<out>/<profile>/README.md`` (tables, figures, environment, wall
time per step) and ``<out>/<profile>/metrics.json``. ``--check FILE`` compares the figures with an
expectation file (``results/expected-ci.json``) and exits with status 1 naming every figure that
left its band.

Profiles: ``smoke`` (embedded sample, ~2 min, plumbing only), ``ci`` (full BUS-BRA, ≤ 30 min on
2 CPU cores; what CI runs), ``full`` (paper-scale, GPU).
"""

from __future__ import annotations

import argparse

NAME = "reproduce"
HELP = "rerun the whole study (simulate, train, quality table, AUROC) and check the figures"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("smoke", "ci", "full"), default="ci",
                   help="smoke | ci (default) | full")
    p.add_argument("--out", default="results", help="tables go to OUT/PROFILE (default results)")
    p.add_argument("--work", default="runs/reproduce",
                   help="bulky intermediates: pairs, checkpoints, caches, logs (default runs/reproduce)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--data-root", default=None,
                   help="BUS-BRA folder (default: $PHOTORAD_DATA, then ../shared/data)")
    p.add_argument("--steps", default=None,
                   help="comma list of steps to (re)run: pairs,train,quality,rectify,auroc "
                        "(default all; finished steps are not skipped)")
    p.add_argument("--check", default=None, metavar="EXPECTED.json",
                   help="fail (exit 1) when a figure leaves its band in this file")


def run(args: argparse.Namespace) -> int:
    from photorad.reproduce import run as run_study

    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    run_study(args.profile, out=args.out, work=args.work, seed=args.seed,
              data_root=args.data_root, steps=steps, check=args.check)
    return 0
