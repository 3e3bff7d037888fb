"""`photorad simulate`: paired (phone photo, original, corners) data from original images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from photorad.cli._util import parse_size

NAME = "simulate"
HELP = "simulate phone photos of images shown on a monitor (paired training/test data)"
DESCRIPTION = """\
Simulate phone photos of original images displayed in a PACS-like viewer on an LCD.

SRC may be image files (PNG/JPEG/TIFF/DICOM), folders (searched recursively) or CSV files with
columns path,label,group (and optionally id). For BUS-BRA, make that CSV with --bus-bra-csv so
that label = Pathology and group = Case (patient) and splits stay patient-grouped.

Writes DIR/<id>_photo.jpg, DIR/<id>_original.png, DIR/<id>.json (corners TL,TR,BR,BL in photo
pixels, params, source, label, group, seed), DIR/manifest.csv, DIR/failures.csv and
DIR/run_info.json. Unreadable sources are skipped with a logged reason.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SRC", help="image files, folders or CSV files")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--preset", default="typical", help="ideal | typical | hard (default typical)")
    p.add_argument("--per-image", type=int, default=1, help="photos per source image")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--size", type=parse_size, default=(4032, 3024),
                   help="photo size WxH in pixels (default 4032x3024)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--params", type=Path,
                   help="JSON or YAML file of SimParams fields overriding the preset's draws")
    p.add_argument("--limit", type=int, help="use only the first N source images")
    p.add_argument("--contact-sheet", type=Path, metavar="PNG",
                   help="also write a contact sheet of the first 12 photos")
    p.add_argument("--bus-bra-csv", type=Path, metavar="CSV",
                   help="write the BUS-BRA source CSV (full dataset if found, else the sample) "
                        "to CSV; with no SRC, stop there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load_params(path: Path | None) -> dict | None:
    from photorad.errors import ConfigError

    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read --params file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"--params file {path} is not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--params file {path} must hold a mapping of parameter names")
    from photorad.simulate.presets import SimParams

    SimParams.from_dict(data)  # unknown names fail here, before any work
    return data


def run(args: argparse.Namespace) -> int:
    from photorad.errors import ConfigError
    from photorad.provenance import hash_files, write_run_info
    from photorad.simulate.dataset import (
        bus_bra_csv,
        contact_sheet,
        discover_sources,
        simulate_dataset,
    )

    if args.bus_bra_csv:
        path = bus_bra_csv(args.bus_bra_csv)
        print(f"wrote {path}")
        if not args.sources:
            return 0
    if not args.sources:
        raise ConfigError("give at least one SRC (image file, folder or CSV)")
    if args.out is None:
        raise ConfigError("give an output folder with --out DIR")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    params = _load_params(args.params)
    items = discover_sources(args.sources)
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise ConfigError("no source images found in the given SRC")
    summary = simulate_dataset(
        items, args.out, preset=args.preset, per_image=args.per_image, seed=args.seed,
        size=args.size, workers=args.workers, params=params, progress=not args.no_progress,
    )
    readable = [it.path for it in items if it.path.is_file()]
    config = {
        "command": "photorad simulate", "sources": [str(s) for s in args.sources],
        "n_sources": len(items), "preset": args.preset, "per_image": args.per_image,
        "seed": args.seed, "size": list(args.size), "workers": args.workers, "params": params,
    }
    write_run_info(args.out, config, data_hashes={"sources": hash_files(readable)})
    if args.contact_sheet and summary.n_photos:
        contact_sheet(args.out, args.contact_sheet)
        print(f"contact sheet: {args.contact_sheet}")
    print(summary.line())
    for src, reason in summary.failures[:10]:
        print(f"  skipped {src}: {reason}")
    if summary.n_failed > 10:
        print(f"  … and {summary.n_failed - 10} more (see {args.out / 'failures.csv'})")
    return 0 if summary.n_photos else 1
