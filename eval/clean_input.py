"""What a restorer does to an image that needs no restoring (the original, or a mild tone change).

The restorers learned to undo a phone photo of a screen. A clinician may still feed them a clean
image (a screenshot, an exported DICOM frame), so the model cards quote how much worse such an
image gets. For every original in ``--images`` (default: the embedded 20-image BUS-BRA sample),
this scores against the original, PSNR in dB with ``data_range=1``:

* ``input``: the input itself (∞ for the unchanged original, so only reported for the tone case);
* each ``--model``: the restorer's output for that input.

Inputs: ``original`` (the image itself) and ``tone`` (``a·x + b``, a mild linear contrast change,
``--tone 0.6 0.1`` by default). Writes ``clean_input.md``, ``clean_input.json``,
``per_image.csv`` and ``run_info.json`` to ``--out``.

Usage::

    python eval/clean_input.py --out results/quality/clean_input
    python eval/clean_input.py --model mine=runs/x/best.safetensors --out /tmp/clean
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from photorad.data.paths import sample_dir
from photorad.io import load_original
from photorad.metrics import psnr
from photorad.provenance import hash_files, sha256_file, write_run_info
from photorad.restore import Restorer

WEIGHTS = Path(__file__).resolve().parents[1] / "photorad" / "weights"
DEFAULT_MODELS = (f"restorer_cpu={WEIGHTS / 'restorer_cpu.safetensors'}",
                  f"restorer_successor_cpu={WEIGHTS / 'restorer_successor_cpu.safetensors'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", metavar="NAME=CKPT",
                   help="restorer checkpoint (repeatable; default: both shipped CPU restorers)")
    p.add_argument("--images", type=Path, default=None,
                   help="folder of originals (default: the embedded BUS-BRA sample)")
    p.add_argument("--tone", type=float, nargs=2, default=(0.6, 0.1), metavar=("A", "B"),
                   help="the mild tone change a·x + b (default 0.6 0.1)")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def summarise(values: list[float]) -> dict[str, float]:
    """Mean, sample sd, min and max of finite values (``nan`` when there are none)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images_dir = args.images or sample_dir() / "Images"
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not paths:
        raise SystemExit(f"no PNG/JPEG images in {images_dir}")
    ckpts = dict(spec.partition("=")[::2] for spec in args.model or DEFAULT_MODELS)
    models = {name: Restorer.from_checkpoint(ckpt) for name, ckpt in ckpts.items()}
    a, b = args.tone
    rows: list[dict[str, object]] = []
    for path in paths:
        orig = load_original(path)
        inputs = {"original": orig, "tone": np.clip(a * orig + b, 0.0, 1.0).astype(np.float32)}
        for kind, x in inputs.items():
            row: dict[str, object] = {"image": path.name, "input": kind,
                                      "input_psnr_db": psnr(orig, x, data_range=1.0)}
            for name, restorer in models.items():
                row[f"{name}_psnr_db"] = psnr(orig, restorer.restore(x), data_range=1.0)
            rows.append(row)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for kind in ("original", "tone"):
        sel = [r for r in rows if r["input"] == kind]
        cols = ["input"] + list(models)
        summary[kind] = {c: summarise([float(r[f"{c}_psnr_db"]) for r in sel]) for c in cols}
    cmd = "python eval/clean_input.py " + " ".join(
        [f"--model {m}" for m in (args.model or [])] + [f"--out {args.out}"])
    doc = {"command": cmd, "n_images": len(paths), "tone": [a, b],
           "models": {n: r.sha256 for n, r in models.items()}, "summary": summary}
    (args.out / "clean_input.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["# Restorers on clean inputs (images that need no restoring)", "",
             f"Command: `{cmd}`", "",
             f"{len(paths)} originals from `{images_dir.name}`; PSNR (dB) against the original, "
             "mean ± sd (min … max). Research use only — not a diagnosis.", "",
             "| input | input itself | " + " | ".join(f"`{m}`" for m in models) + " |",
             "|---|---:|" + "---:|" * len(models)]
    labels = {"original": "the original", "tone": f"{a:g}·x + {b:g} (mild tone change)"}
    for kind, cols in summary.items():
        cells = []
        for c in ["input"] + list(models):
            s = cols[c]
            cells.append("∞ (unchanged)" if kind == "original" and c == "input" else
                         f"{s['mean']:.2f} ± {s['sd']:.2f} ({s['min']:.1f} … {s['max']:.1f})")
        lines.append(f"| {labels[kind]} | " + " | ".join(cells) + " |")
    lines += ["", "Models (sha256): " + ", ".join(f"`{n}` `{r.sha256[:12]}…`"
                                                  for n, r in models.items()), ""]
    (args.out / "clean_input.md").write_text("\n".join(lines))
    write_run_info(args.out, {"command": cmd, "images": str(images_dir), "tone": [a, b],
                              "models": ckpts},
                   data_hashes={"images": hash_files(paths),
                                **{n: sha256_file(c) for n, c in ckpts.items()}})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
