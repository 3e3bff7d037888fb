"""Checkpoints: weights as safetensors plus a JSON sidecar; loading never runs pickled code.

``model.safetensors`` holds the tensors; ``model.json`` beside it holds:

* ``architecture`` — registry name given to :func:`photorad.models.create_model`;
* ``model_kwargs`` — the options it was built with;
* ``task`` — ``"restore"`` or ``"classify"``;
* ``config``, ``metrics``, ``data_hash``, ``git_sha``, ``created`` — provenance;
* ``extra`` — task-specific settings (e.g. the classifier's input size and normalisation).

The SHA-256 of the ``.safetensors`` file identifies a model everywhere (API responses, audit
log, reports). :func:`load_checkpoint` can check it against an expected value.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photorad.errors import ModelError
from photorad.provenance import git_sha, sha256_file


@dataclass
class CheckpointMeta:
    architecture: str
    model_kwargs: dict[str, Any]
    task: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_hash: str | None = None
    git_sha: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None  # of the weights file; filled in on load, not stored

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("sha256", None)
        return d


def sidecar_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, model, meta: CheckpointMeta) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically; return the weights path."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(f"checkpoint must end in .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta.git_sha = meta.git_sha or git_sha()
    meta.created = meta.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"architecture": meta.architecture, "task": meta.task})
    os.replace(tmp, path)
    os.chmod(path, 0o644)  # mkstemp-style private modes would make shipped weights unreadable
    side = sidecar_path(path)
    side_tmp = side.with_name(f".{side.name}.tmp")
    side_tmp.write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(side_tmp, side)
    return path


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    path = Path(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise ModelError(f"{path.name}: JSON sidecar {side.name} not found beside the weights")
    try:
        raw = json.loads(side.read_text())
        return CheckpointMeta(**{k: v for k, v in raw.items() if k in CheckpointMeta.__dataclass_fields__})
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{side.name}: invalid checkpoint sidecar ({exc})") from None


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    task: str | None = None,
):
    """Build the model described by the sidecar and load the safetensors weights into it.

    Returns
    -------
    (model, meta)
        The model in eval mode on the CPU and its :class:`CheckpointMeta` (``sha256`` set).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from photorad.models import create_model

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise ModelError(
            f"{path.name}: SHA-256 mismatch (expected {expected_sha256[:12]}…, got {digest[:12]}…)"
        )
    meta = read_meta(path)
    meta.sha256 = digest
    if task and meta.task != task:
        raise ModelError(f"{path.name}: is a {meta.task!r} model, expected {task!r}")
    model = create_model(meta.architecture, **meta.model_kwargs)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path.name}: unreadable safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path.name}: weights do not match {meta.architecture} ({exc})") from None
    model.eval()
    return model, meta
