"""Stage 2: restore a rectified photo (``float32`` H×W in [0, 1]) towards the original image.

:class:`Restorer` wraps any registered restoration network (``dncnn``, ``dncnn_s``, ``msunet``,
``msunet_s`` …) and runs it on images of any size:

* images up to ``tile`` pixels a side go through the network in one pass (so that a model with
  global context sees the whole image);
* larger images are cut into overlapping ``tile × tile`` tiles, run ``batch_size`` tiles at a
  time, and blended back with linear ramps over the overlap — memory is bounded by the tile
  batch, not by the image;
* a model with a whole-image context (``model.context(x)``, e.g. ``gtunet``'s thumbnail) gets
  the context of the WHOLE image with every tile, and a model that declares ``receptive_radius``
  and ``factor`` gets tiles aligned to ``factor`` with an overlap of at least 3 × the radius, so
  its tiled output equals its whole-image output;
* the execution path (``eager``, ``channels_last`` or ONNX Runtime ``onnx``) is chosen by
  measurement on a probe image, and a path is only eligible when its output matches eager
  PyTorch within :data:`MATCH_TOL` (so the choice never changes the result beyond float noise).
  Conv+BatchNorm pairs are folded before anything runs.

``photorad restore IN -o OUT`` is the command-line entry point; ``photorad export-onnx`` writes the
ONNX graph (see :func:`export_onnx`).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from photorad.errors import ImageTooSmallError, ModelError, UnsupportedImageError

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "MATCH_TOL",
    "Restorer",
    "blend_ramp",
    "blend_window",
    "conv_macs",
    "default_restorer",
    "export_onnx",
    "fuse_conv_bn",
    "has_context",
    "tile_starts",
]

#: Execution paths a :class:`Restorer` can take.
BACKENDS = ("eager", "channels_last", "onnx")
#: Largest accepted |path output − eager output| on the probe image (intensity units, [0, 1]).
MATCH_TOL = 1e-4
#: Smallest image side accepted, in pixels.
MIN_SIDE = 8
#: ONNX opset used by :func:`export_onnx`.
ONNX_OPSET = 17

# (model sha256 or id, threads, probe shape) → chosen backend; measuring once per process suffices.
_BACKEND_CACHE: dict[tuple[Any, ...], str] = {}


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d → BatchNorm2d`` pair inside ``nn.Sequential`` containers (eval mode).

    The model is modified in place and returned. Folding is exact up to float rounding and removes
    one full pass over the feature map per BN layer.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules.keys())
        for a, b in zip(names[:-1], names[1:], strict=True):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def conv_macs(model: nn.Module, *, height: int = 256, width: int = 256) -> int:
    """Multiply-accumulates of all (transposed) convolutions for one 1×1×``height``×``width`` input.

    Counted with forward hooks, so it follows whatever the model really runs (padding included).
    FLOPs = 2 × MACs.
    """
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += inp[0].numel() * (mod.out_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 1, height, width))
    finally:
        for h in handles:
            h.remove()
    return total


def has_context(model: nn.Module) -> bool:
    """Whether ``model`` takes a whole-image context (``model.context(x)``, ``model(x, ctx)``)."""
    return callable(getattr(model, "context", None))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    opset: int = ONNX_OPSET,
    probe_size: tuple[int, int] = (64, 96),
    with_context: bool = False,
) -> bytes:
    """Export a restorer to ONNX with dynamic batch, height and width; return the bytes.

    The graph takes ``image`` (B×1×H×W float32) and returns ``restored`` (same shape, unclamped,
    exactly what the PyTorch module returns). A context model (see :func:`has_context`) computes
    its context from ``image`` inside the graph, unless ``with_context`` is set: then the graph
    takes a second input ``context`` (the output of ``model.context`` on the whole image), which
    is what tiled inference needs. When ``path`` is given the file is written atomically too.
    """
    import warnings

    model = model.eval()
    x = torch.rand(1, 1, probe_size[1], probe_size[0])
    buf = io.BytesIO()
    dyn = {0: "batch", 2: "height", 3: "width"}
    args: tuple[torch.Tensor, ...] = (x,)
    names = ["image"]
    axes: dict[str, dict[int, str]] = {"image": dyn, "restored": dyn}
    if with_context and has_context(model):
        with torch.no_grad():
            args = (x, model.context(x))
        names.append("context")
        axes["context"] = {0: "batch"}
    with warnings.catch_warnings():
        # The tracer warns about shape arithmetic it records as graph ops; that is intended here.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                args,
                buf,
                input_names=names,
                output_names=["restored"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        except Exception as exc:  # exporter internals vary by torch version
            raise ModelError(f"ONNX export failed: {type(exc).__name__}: {exc}") from None
    data = buf.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return data


def tile_starts(length: int, *, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` pixels with ≥ ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_ramp(n: int, *, overlap: int, start_inner: bool, end_inner: bool) -> np.ndarray:
    """1-D tile weights: 0 over a margin at inner edges, then a linear ramp up to 1.

    The first ``overlap // 3`` pixels at an edge shared with a neighbouring tile get weight 0
    (there the network saw zero padding instead of the real neighbourhood), the next
    ``overlap − 2·margin`` pixels ramp linearly; the two ramps of neighbours sum to 1. Edges on the
    image border keep weight 1.
    """
    r = np.ones(n, dtype=np.float32)
    margin = overlap // 3
    span = max(1, overlap - 2 * margin)
    d = np.arange(n, dtype=np.float32)
    ramp = np.clip((d - margin + 0.5) / span, 0.0, 1.0)
    if start_inner:
        r = np.minimum(r, ramp)
    if end_inner:
        r = np.minimum(r, ramp[::-1])
    return r


def blend_window(
    height: int, width: int, *, overlap: int, inner: tuple[bool, bool, bool, bool] = (True,) * 4
) -> np.ndarray:
    """2-D tile weights (outer product of :func:`blend_ramp`); ``inner`` = (top, bottom, left,
    right) edges that are shared with a neighbouring tile."""
    top, bottom, left, right = inner
    return np.outer(
        blend_ramp(height, overlap=overlap, start_inner=top, end_inner=bottom),
        blend_ramp(width, overlap=overlap, start_inner=left, end_inner=right),
    )


def _check_image(img: Any) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise UnsupportedImageError(
            f"restore expects a grey H×W image (a rectified photo), got shape {a.shape}; "
            "rectify the photo first (photorad.rectify.warp)"
        )
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif not np.issubdtype(a.dtype, np.floating):
        raise UnsupportedImageError(f"restore expects float32 in [0, 1], got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if min(a.shape) < MIN_SIDE:
        raise ImageTooSmallError(
            f"image is {a.shape[1]}×{a.shape[0]} px; restore needs at least {MIN_SIDE} px a side"
        )
    if not np.isfinite(a).all():
        raise UnsupportedImageError("image contains NaN or infinite values")
    return np.clip(a, 0.0, 1.0)


class Restorer:
    """Tiled, backend-selecting inference for a restoration network.

    Parameters
    ----------
    model:
        A module mapping B×1×H×W → B×1×H×W (float32, [0, 1] in, unclamped out).
    name:
        Human-readable model name (reported by the pipeline/API).
    sha256:
        SHA-256 of the weights file (identifies the model in reports and the audit log).
    meta:
        The checkpoint's :class:`~photorad.models.checkpoint.CheckpointMeta`, if any.
    tile:
        Tile side in pixels; images with both sides ≤ ``tile`` run in one pass.
    overlap:
        Overlap between neighbouring tiles in pixels. The outer third next to a shared edge is
        discarded and the middle third blended linearly, so a network whose receptive-field
        radius is ≤ ``overlap // 3`` (``dncnn``: 17 px) gives the same result tiled as whole;
        models with a larger field (``msunet``) are approximated near tile seams. A model that
        declares ``receptive_radius`` gets at least ``3 × receptive_radius`` (within tile / 2).
    batch_size:
        Tiles per forward pass (bounds memory: ≈ batch × tile² × widest layer × 4 bytes × 3).
    backend:
        ``"auto"`` (measure, pick the fastest matching path), or one of :data:`BACKENDS`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str = "restorer",
        sha256: str | None = None,
        meta: Any = None,
        tile: int = 1024,
        overlap: int = 96,
        batch_size: int = 1,
        backend: str = "auto",
    ) -> None:
        if backend != "auto" and backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; use auto or one of {BACKENDS}")
        if tile < 2 * MIN_SIDE or overlap < 0 or overlap >= tile // 2:
            raise ModelError(f"bad tiling: tile={tile}, overlap={overlap} (need overlap < tile/2)")
        self.model = fuse_conv_bn(model.float().eval())
        self.name = name
        self.sha256 = sha256
        self.meta = meta
        # Tiles must start on multiples of the model's stride factor (else a strided network
        # sees a shifted pixel grid) and overlap by ≥ 3 × its receptive-field radius.
        self.factor = max(1, int(getattr(self.model, "factor", 1)))
        self.tile = int(tile) // self.factor * self.factor
        radius = int(getattr(self.model, "receptive_radius", 0))
        ov = min(max(int(overlap), 3 * radius), self.tile // 2 - 1)
        self.overlap = ov + (-ov) % self.factor
        self.uses_context = has_context(self.model)
        self.batch_size = max(1, int(batch_size))
        self.requested_backend = os.environ.get("PHOTORAD_RESTORE_BACKEND", backend)
        self._backend: str | None = None
        self._runners: dict[str, Callable[[np.ndarray, np.ndarray | None], np.ndarray]] = {}
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, *, expected_sha256: str | None = None, **kwargs: Any
    ) -> Restorer:
        """Load a safetensors checkpoint + JSON sidecar (never executes pickled code)."""
        from photorad.models.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, expected_sha256=expected_sha256, task="restore")
        kwargs.setdefault("name", meta.extra.get("name", meta.architecture))
        return cls(model, sha256=meta.sha256, meta=meta, **kwargs)

    # ----------------------------------------------------------------------------- backends
    def _runner(self, backend: str) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
        if backend in self._runners:
            return self._runners[backend]
        if backend == "eager":
            model = self.model

            def run(x: np.ndarray, ctx: np.ndarray | None) -> np.ndarray:
                with torch.inference_mode():
                    if ctx is None:
                        return model(torch.from_numpy(x)).numpy()
                    return model(torch.from_numpy(x), torch.from_numpy(ctx)).numpy()

        elif backend == "channels_last":
            import copy

            model_cl = copy.deepcopy(self.model).to(memory_format=torch.channels_last)

            def run(x: np.ndarray, ctx: np.ndarray | None) -> np.ndarray:
                with torch.inference_mode():
                    t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
                    if ctx is None:
                        return model_cl(t).contiguous().numpy()
                    return model_cl(t, torch.from_numpy(ctx)).contiguous().numpy()

        elif backend == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise ModelError("onnxruntime is not installed (pip install photorad[onnx])") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            sess = ort.InferenceSession(
                export_onnx(self.model, with_context=self.uses_context), opts,
                providers=["CPUExecutionProvider"],
            )

            def run(x: np.ndarray, ctx: np.ndarray | None) -> np.ndarray:
                feeds = {"image": np.ascontiguousarray(x)}
                if ctx is not None:
                    feeds["context"] = np.ascontiguousarray(ctx)
                return sess.run(None, feeds)[0]

        else:
            raise ModelError(f"unknown backend {backend!r}")
        self._runners[backend] = run
        return run

    def candidates(self) -> list[str]:
        """Backends usable on this machine (ONNX only when onnxruntime imports; CPU only)."""
        out = ["eager", "channels_last"]
        try:
            import onnxruntime  # noqa: F401

            out.append("onnx")
        except ImportError:
            pass
        return out

    def select_backend(self, *, probe: int = 192, repeats: int = 2) -> str:
        """Time each candidate on a ``probe``² image and keep the fastest that matches eager.

        The result is cached per model and thread count for the life of the process;
        ``self.timings`` holds the measured seconds per probe (``inf`` = rejected).
        """
        key = (self.sha256 or id(self.model), torch.get_num_threads(), probe)
        if key in _BACKEND_CACHE:
            self._backend = _BACKEND_CACHE[key]
            return self._backend
        rng = np.random.default_rng(0)
        x = rng.random((1, 1, probe, probe), dtype=np.float32)
        ctx = self.context(x)
        ref = self._runner("eager")(x, ctx)
        best, best_t = "eager", float("inf")
        for name in self.candidates():
            try:
                run = self._runner(name)
                y = run(x, ctx)  # warm-up (also allocates and, for ONNX, optimises the graph)
                err = float(np.abs(y - ref).max())
                if err > MATCH_TOL:
                    log.warning("restore backend %s rejected: differs from eager by %.2g", name, err)
                    self.timings[name] = float("inf")
                    continue
                t0 = time.perf_counter()
                for _ in range(repeats):
                    run(x, ctx)
                t = (time.perf_counter() - t0) / repeats
            except ModelError as exc:
                log.warning("restore backend %s unavailable: %s", name, exc)
                self.timings[name] = float("inf")
                continue
            self.timings[name] = t
            if t < best_t:
                best, best_t = name, t
        log.info("restore backend: %s (%s)", best,
                 ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in self.timings.items()))
        _BACKEND_CACHE[key] = best
        self._backend = best
        return best

    @property
    def backend(self) -> str:
        """The execution path in use (measured on first use when ``backend="auto"``)."""
        if self._backend is None:
            if self.requested_backend == "auto":
                self.select_backend()
            else:
                if self.requested_backend not in BACKENDS:
                    raise ModelError(f"unknown backend {self.requested_backend!r}")
                self._backend = self.requested_backend
        assert self._backend is not None
        return self._backend

    # ----------------------------------------------------------------------------- inference
    def context(self, x: np.ndarray) -> np.ndarray | None:
        """The model's whole-image context for a B×1×H×W batch (``None`` for plain models)."""
        if not self.uses_context:
            return None
        with torch.inference_mode():
            return self.model.context(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def run_batch(self, x: np.ndarray, ctx: np.ndarray | None = None) -> np.ndarray:
        """Run the network on a float32 B×1×H×W batch with the selected backend (unclamped).

        ``ctx`` is a context model's whole-image context (one row per batch item); it is
        computed from ``x`` itself when omitted.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.uses_context and ctx is None:
            ctx = self.context(x)
        return self._runner(self.backend)(x, ctx)

    def restore(self, image: np.ndarray) -> np.ndarray:
        """Restore one rectified grey image: ``float32`` H×W in [0, 1] → same shape and range."""
        img = _check_image(image)
        h, w = img.shape
        if h <= self.tile and w <= self.tile:
            out = self.run_batch(img[None, None])[0, 0]
            return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
        # The context (e.g. a thumbnail) always comes from the whole image, never from a tile.
        ctx = self.context(img[None, None])
        f = self.factor
        ph, pw = (-h) % f, (-w) % f
        # Replicate-pad to a multiple of the stride factor, as the model does on a whole image.
        padded = np.pad(img, ((0, ph), (0, pw)), mode="edge") if ph or pw else img
        out = self._restore_tiled(padded, ctx)[:h, :w]
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def _restore_tiled(self, img: np.ndarray, ctx: np.ndarray | None = None) -> np.ndarray:
        h, w = img.shape
        th, tw = min(self.tile, h), min(self.tile, w)
        acc = np.zeros((h, w), dtype=np.float32)
        wsum = np.zeros((h, w), dtype=np.float32)
        boxes = [
            (y, x)
            for y in tile_starts(h, tile=th, overlap=self.overlap)
            for x in tile_starts(w, tile=tw, overlap=self.overlap)
        ]
        for i in range(0, len(boxes), self.batch_size):
            chunk = boxes[i:i + self.batch_size]
            batch = np.stack([img[y:y + th, x:x + tw] for y, x in chunk])[:, None]
            bctx = None if ctx is None else np.repeat(ctx, len(chunk), axis=0)
            out = self.run_batch(batch, bctx)[:, 0]
            for (y, x), o in zip(chunk, out, strict=True):
                inner = (y > 0, y + th < h, x > 0, x + tw < w)
                window = blend_window(th, tw, overlap=self.overlap, inner=inner)
                acc[y:y + th, x:x + tw] += o * window
                wsum[y:y + th, x:x + tw] += window
        return acc / wsum

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.restore(image)

    def info(self) -> dict[str, Any]:
        """JSON-able description (name, SHA-256, architecture, backend, tiling)."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "architecture": getattr(self.meta, "architecture", type(self.model).__name__),
            "backend": self._backend or self.requested_backend,
            "tile": self.tile,
            "overlap": self.overlap,
        }


@functools.lru_cache(maxsize=1)
def default_restorer() -> Restorer:
    """The shipped CPU restorer (``photorad/weights/restorer_cpu.safetensors``), loaded once."""
    from photorad.models.weights import shipped_path

    return Restorer.from_checkpoint(shipped_path("restorer"))
