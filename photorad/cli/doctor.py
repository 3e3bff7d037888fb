"""`photorad doctor`: what is installed, which decoders work, which data and weights are found."""

from __future__ import annotations

import argparse
import json

NAME = "doctor"
HELP = "show versions, torch device/threads, DICOM decoders, data folders and weights"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def dicom_decoders() -> dict[str, list[str]]:
    """Transfer syntax name → available decoding plugins (empty list: cannot decode)."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    out = {}
    for uid, (decoder, *_rest) in sorted(_PIXEL_DATA_DECODERS.items(), key=lambda kv: kv[0].name):
        try:
            plugins = sorted(decoder.available_plugins)
            if not plugins and decoder.is_available and not uid.is_compressed:
                plugins = ["native"]  # uncompressed: pydicom decodes these itself
        except Exception:
            plugins = []
        out[uid.name] = plugins
    return out


def collect() -> dict:
    from photorad.data.paths import find_shared_data, sample_dir
    from photorad.provenance import git_sha, machine_info, package_versions

    info: dict = {"packages": package_versions(), "machine": machine_info(), "git_sha": git_sha()}
    try:
        import torch

        info["torch"] = {
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
        }
    except ImportError as exc:
        info["torch"] = {"error": str(exc)}
    try:
        info["dicom_decoders"] = dicom_decoders()
    except Exception as exc:  # pydicom internals moved: still report the rest
        info["dicom_decoders"] = {"error": repr(exc)}
    from photorad.io._common import register_heif

    info["heif"] = register_heif()
    shared = find_shared_data()
    sample = sample_dir()
    info["data"] = {
        "shared": str(shared) if shared else None,
        "bus-bra": str(find_shared_data("bus-bra") or "") or None,
        "screen-photos": str(find_shared_data("screen-photos") or "") or None,
        "sample": str(sample) if sample.is_dir() else None,
        "sample_images": len(list(sample.glob("Images/*.png"))) if sample.is_dir() else 0,
    }
    try:
        from photorad.models.weights import shipped_weights

        info["weights"] = {k: str(v) for k, v in shipped_weights().items()}
    except ImportError:
        info["weights"] = {}
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("photorad doctor")
    print(f"  git: {info['git_sha'] or 'not a git checkout'}")
    m = info["machine"]
    print(f"  python {m['python']} on {m['platform']} ({m['cpu_count']} CPUs)")
    print("packages:")
    for k, v in info["packages"].items():
        print(f"  {k:24s} {v or '— not installed'}")
    t = info["torch"]
    if "error" in t:
        print(f"torch: NOT AVAILABLE ({t['error']})")
    else:
        print(f"torch: device={t['device']} threads={t['threads']} "
              f"interop={t['interop_threads']} mkldnn={t['mkldnn']}")
    print(f"HEIC/HEIF photos: {'yes' if info['heif'] else 'no (install pillow-heif)'}")
    print("DICOM decoders (transfer syntax: plugins):")
    dec = info["dicom_decoders"]
    if "error" in dec:
        print(f"  could not list decoders: {dec['error']}")
    else:
        for name, plugins in dec.items():
            print(f"  {name:70s} {', '.join(plugins) if plugins else 'MISSING'}")
    print("data:")
    for k, v in info["data"].items():
        print(f"  {k:14s} {v if v not in (None, '') else 'not found'}")
    print("shipped weights:")
    if not info["weights"]:
        print("  none found")
    for k, v in info["weights"].items():
        print(f"  {k:14s} {v}")
    return 0
