"""Run provenance: resolved config, package versions, git SHA and data hashes next to outputs.

Every training, evaluation and simulation run calls :func:`write_run_info` so that a table or a
checkpoint can always be traced back to the code, the packages and the exact data that made it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGES = (
    "photorad",
    "numpy",
    "scipy",
    "torch",
    "torchvision",
    "timm",
    "opencv-python-headless",
    "scikit-image",
    "scikit-learn",
    "pillow",
    "pillow-heif",
    "pydicom",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "safetensors",
    "onnxruntime",
    "fastapi",
    "highdicom",
    "dicognito",
    "pynetdicom",
)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_files(paths: Iterable[str | os.PathLike], *, root: str | os.PathLike | None = None) -> str:
    """One SHA-256 over many files: sorted (relative path, file hash) pairs.

    Renaming, adding, removing or changing any file changes the digest; the order the paths
    are given in does not.
    """
    items = []
    for p in paths:
        p = Path(p)
        rel = str(p.relative_to(root)) if root is not None else p.name
        items.append((rel, sha256_file(p)))
    h = hashlib.sha256()
    for rel, digest in sorted(items):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


def hash_folder(folder: str | os.PathLike, *, pattern: str = "**/*") -> str:
    folder = Path(folder)
    return hash_files((p for p in folder.glob(pattern) if p.is_file()), root=folder)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def git_sha(cwd: str | os.PathLike | None = None) -> str | None:
    """Commit SHA of the working tree (``+dirty`` when there are uncommitted changes)."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def run_info(config: Mapping[str, Any], *, data_hashes: Mapping[str, str] | None = None) -> dict:
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": _jsonable(config),
        "git_sha": git_sha(),
        "packages": package_versions(),
        "machine": machine_info(),
        "data_hashes": dict(data_hashes or {}),
    }


def write_run_info(
    out_dir: str | os.PathLike,
    config: Mapping[str, Any],
    *,
    data_hashes: Mapping[str, str] | None = None,
    name: str = "run_info.json",
) -> Path:
    """Write resolved config + environment + data hashes as JSON (and the config as YAML)."""
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = run_info(config, data_hashes=data_hashes)
    path = out / name
    path.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(info["config"], sort_keys=False))
    return path
