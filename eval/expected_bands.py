#!/usr/bin/env python
"""Make ``results/expected-ci.json``: CI bands from the same profile run with several seeds.

    for s in 0 1 2; do photorad reproduce --profile ci --seed $s --out runs/bands/s$s; done
    python eval/expected_bands.py runs/bands/s0/ci runs/bands/s1/ci runs/bands/s2/ci \\
        --out results/expected-ci.json

The first folder is the reference (seed 0: what CI runs); each band is
``max(3 × sd over seeds, floor)`` (``photorad.reproduce.bands_from_runs``). Each folder's
``metrics.json`` is copied to ``results/ci-spread/seed<N>.json`` so the spread stays checkable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from photorad.reproduce import TOLERANCE_FLOORS, bands_from_runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="reproduce output folders (…/ci), seed 0 first")
    p.add_argument("--out", type=Path, default=Path("results/expected-ci.json"))
    p.add_argument("--k", type=float, default=3.0, help="band = max(k × sd, floor) (default 3)")
    p.add_argument("--spread-dir", type=Path, default=Path("results/ci-spread"))
    args = p.parse_args(argv)
    docs = [json.loads((r / "metrics.json").read_text()) for r in args.runs]
    profiles = {d["profile"] for d in docs}
    seeds = [d["seed"] for d in docs]
    if len(profiles) != 1 or len(set(seeds)) != len(seeds):
        print(f"expected one profile and distinct seeds, got {profiles} / {seeds}", file=sys.stderr)
        return 2
    bands = bands_from_runs([d["figures"] for d in docs], k=args.k)
    args.spread_dir.mkdir(parents=True, exist_ok=True)
    for d in docs:
        (args.spread_dir / f"seed{d['seed']}.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    doc = {
        "profile": profiles.pop(), "seeds": seeds, "reference_seed": seeds[0],
        "rule": f"value = seed-{seeds[0]} figure (what CI runs); tolerance = max({args.k:g} × sd "
                "over the seeds, floor). A seed changes every random choice (simulated photos, "
                "patient split, initialisation, folds), so this is wider than the noise of a "
                "same-seed re-run on another CPU; the floors cover that noise when the seeds agree.",
        "floors": TOLERANCE_FLOORS,
        "command": "python eval/expected_bands.py " + " ".join(str(r) for r in args.runs),
        "figures": bands,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    width = max(len(k) for k in bands)
    for k, b in bands.items():
        print(f"{k:<{width}}  {b['value']:10.4f} ± {b['tolerance']:.4f}   (sd {b['sd_over_seeds']:.4f}; "
              f"{', '.join(f'{v:.4f}' for v in b['values'])})")
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
