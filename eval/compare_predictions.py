#!/usr/bin/env python
"""Paired comparison of two models' AUROC on the same images (DeLong), arm by arm.

    python eval/compare_predictions.py results/auroc/holdout_autobox results/auroc/holdout_lesion \
        --arms original auto_original auto_photo auto_restored --out results/auroc/compare.md

Reads ``predictions.csv`` of two ``eval/auroc_cv.py`` runs (hold-out mode, same test images),
and for each arm present in both prints AUROC of A and B, A − B with the DeLong 95 % CI and p
(``photorad.metrics.delong_test``). ``x:y`` compares A's arm ``x`` with B's arm ``y``.
Research use only — not a diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from photorad import DISCLAIMER
from photorad.errors import ConfigError, PhotoradError
from photorad.metrics import auroc, delong_test


def _read(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "predictions.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found (run eval/auroc_cv.py first)")
    with path.open(newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def compare(a: Path, b: Path, arms: list[str]) -> list[dict[str, float | str]]:
    pa, pb = _read(a), _read(b)
    ids = sorted(set(pa) & set(pb))
    if len(ids) != len(pa) or len(ids) != len(pb):
        raise ConfigError("the two runs scored different images; compare runs on the same ones")
    y = np.array([int(pa[i]["label"]) for i in ids])
    rows = []
    for spec in arms:
        arm_a, _, arm_b = spec.partition(":")
        arm_b = arm_b or arm_a
        if arm_a not in pa[ids[0]] or arm_b not in pb[ids[0]]:
            continue
        sa = np.array([float(pa[i][arm_a]) for i in ids])
        sb = np.array([float(pb[i][arm_b]) for i in ids])
        arm = spec
        ok = np.isfinite(sa) & np.isfinite(sb)
        c = delong_test(y[ok], sa[ok], sb[ok])
        rows.append({"arm": arm, "n": int(ok.sum()), "auroc_a": auroc(y[ok], sa[ok]),
                     "auroc_b": auroc(y[ok], sb[ok]), "diff": c.diff, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "p": c.p_value})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="auroc_cv output folder of model A")
    p.add_argument("b", type=Path, help="auroc_cv output folder of model B")
    p.add_argument("--arms", nargs="+", default=["original", "auto_original", "auto_photo",
                                                  "auto_restored", "whole_original",
                                                  "whole_restored"])
    p.add_argument("--out", type=Path, default=None, help="also write a Markdown table here")
    args = p.parse_args(argv)
    rows = compare(args.a, args.b, args.arms)
    lines = [f"A = `{args.a}`, B = `{args.b}`; {DISCLAIMER}", "",
             f"Command: `python eval/compare_predictions.py {' '.join(argv or sys.argv[1:])}`", "",
             "| arm | n | AUROC A | AUROC B | A − B | DeLong 95 % CI | p |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['n']} | {r['auroc_a']:.4f} | {r['auroc_b']:.4f} | "
                     f"{r['diff']:+.4f} | [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | "
                     f"{r['p']:.2g} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"compare_predictions: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
