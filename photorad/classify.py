"""Benign/malignant scoring of breast-ultrasound images: preprocessing, model, score — and training.

Preprocessing lives here, once, and is used by training (:mod:`photorad.data.cls_dataset`), the
AUROC study, the CLI and the service, so a model always sees images prepared exactly as in
training:

1. optional lesion ROI: a square around the ``BBOX`` (x, y, w, h in image pixels) enlarged by
   ``margin`` × the longer box side on each side, shifted to stay inside the image;
2. resize to ``size`` × ``size`` px (area interpolation when shrinking, bilinear when enlarging;
   the aspect ratio is not kept — square ROIs make that moot, full images are squashed);
3. normalise ``(x − mean) / std``.

A model trained in ROI mode expects a lesion ROI at inference: give ``bbox`` or pass an image that
already is the ROI (what a clinician photographs when the ROI is displayed, as in the paper).

Scores are probabilities of *malignant*. Research use only — not a diagnosis.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from photorad.errors import (
    ConfigError,
    CorruptImageError,
    ImageTooSmallError,
    ModelError,
    UnsupportedImageError,
)

__all__ = [
    "Classifier",
    "FitResult",
    "PreprocessSpec",
    "TrainConfig",
    "default_classifier",
    "fit",
    "normalise",
    "predict_proba",
    "prepare_image",
    "roi_box",
]

log = logging.getLogger(__name__)

#: Smallest accepted side (px) of an image given to the classifier.
MIN_SIDE = 16


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes a network input; stored in the checkpoint sidecar (``extra``)."""

    size: int = 128  #: model input side, px
    roi: bool = True  #: crop the lesion ROI from the BBOX when one is given
    margin: float = 0.25  #: ROI margin per side, as a fraction of the longer BBOX side
    mean: float = 0.5
    std: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PreprocessSpec:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown preprocessing option(s): {', '.join(sorted(unknown))}")
        spec = cls(**d)
        if spec.size < MIN_SIDE or spec.std <= 0 or spec.margin < 0:
            raise ConfigError(f"invalid preprocessing {spec}")
        return spec


def _check_image(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise UnsupportedImageError(f"expected a numpy array, got {type(img).__name__}")
    if img.ndim != 2:
        raise UnsupportedImageError(
            f"the classifier takes a grey-scale H×W image, got shape {img.shape} "
            "(load originals with photorad.io.load_original, rectify photos first)"
        )
    if not np.issubdtype(img.dtype, np.floating):
        raise UnsupportedImageError(
            f"the classifier takes float images in [0, 1], got dtype {img.dtype}"
        )
    if min(img.shape) < MIN_SIDE:
        raise ImageTooSmallError(f"image {img.shape[1]}×{img.shape[0]} px is too small "
                                 f"(each side must be ≥ {MIN_SIDE} px)")
    if not np.isfinite(img).all():
        raise CorruptImageError("image contains NaN or infinite values")
    return img.astype(np.float32, copy=False)


def roi_box(
    shape: tuple[int, int], bbox: Sequence[float], *, margin: float
) -> tuple[int, int, int, int]:
    """Square ROI around ``bbox`` = (x, y, w, h): returns (x0, y0, x1, y1), end-exclusive, px.

    The square side is ``max(w, h) · (1 + 2·margin)``, capped per axis by the image size, and
    the window is shifted (not shrunk) to stay inside the image.
    """
    h_img, w_img = int(shape[0]), int(shape[1])
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ConfigError(f"bbox must be 4 numbers x, y, w, h; got {bbox!r}") from None
    if not (w > 0 and h > 0 and 0 <= x < w_img and 0 <= y < h_img):
        raise ConfigError(f"bbox {tuple(bbox)} is empty or outside the {w_img}×{h_img} image")
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0

    def span(c: float, limit: int) -> tuple[int, int]:
        s = min(side, float(limit))
        a = min(max(c - s / 2.0, 0.0), limit - s)
        a0 = int(math.floor(a))
        return a0, min(limit, a0 + max(1, int(round(s))))

    x0, x1 = span(cx, w_img)
    y0, y1 = span(cy, h_img)
    return x0, y0, x1, y1


def prepare_image(
    img: np.ndarray, *, spec: PreprocessSpec, bbox: Sequence[float] | None = None
) -> np.ndarray:
    """Crop (when ``bbox`` is given and ``spec.roi``) and resize: float32 (size, size) in [0, 1]."""
    x = _check_image(img)
    if bbox is not None and spec.roi:
        x0, y0, x1, y1 = roi_box(x.shape, bbox, margin=spec.margin)
        x = x[y0:y1, x0:x1]
    s = spec.size
    interp = cv2.INTER_AREA if min(x.shape) >= s else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(x), (s, s), interpolation=interp)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def normalise(x: np.ndarray, *, spec: PreprocessSpec) -> np.ndarray:
    """``(x − mean) / std`` as float32."""
    return ((np.asarray(x, dtype=np.float32) - spec.mean) / spec.std).astype(np.float32)


def _device(name: str | None):
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def predict_proba(
    model, images: np.ndarray, *, spec: PreprocessSpec, batch_size: int = 64, device=None
) -> np.ndarray:
    """Probabilities of malignant for prepared images float32 (N, size, size) in [0, 1]."""
    import torch

    dev = _device(device) if not isinstance(device, torch.device) else device
    model = model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            xb = torch.from_numpy(normalise(images[i:i + batch_size], spec=spec)[:, None]).to(dev)
            out.append(torch.sigmoid(model(xb).float()).reshape(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class Classifier:
    """A loaded classifier: preprocessing + network + sigmoid.

    Build with :meth:`from_checkpoint` or :func:`default_classifier`. ``name`` and ``sha256``
    identify the model in every output.
    """

    def __init__(self, model, *, spec: PreprocessSpec, name: str, sha256: str | None,
                 device: str | None = None, meta=None) -> None:
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.sha256 = sha256
        self.meta = meta
        self.device = _device(device)
        self.model.to(self.device)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, *, expected_sha256: str | None = None,
        device: str | None = None,
    ) -> Classifier:
        from photorad.models.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, expected_sha256=expected_sha256, task="classify")
        spec = PreprocessSpec.from_dict(meta.extra.get("preprocess"))
        name = meta.extra.get("name") or Path(path).stem
        return cls(model, spec=spec, name=name, sha256=meta.sha256, device=device, meta=meta)

    def model_info(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "input_size": self.spec.size,
                "roi": self.spec.roi}

    def score(self, img: np.ndarray, *, bbox: Sequence[float] | None = None) -> float:
        """Probability of malignant for one grey image (float32 H×W in [0, 1])."""
        return float(self.score_batch([img], bboxes=[bbox])[0])

    def score_batch(
        self, imgs: Sequence[np.ndarray], *, bboxes: Sequence[Sequence[float] | None] | None = None,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Probabilities of malignant (float64 array) for several grey images."""
        if bboxes is None:
            bboxes = [None] * len(imgs)
        if len(bboxes) != len(imgs):
            raise ConfigError("give one bbox (or None) per image")
        if len(imgs) == 0:
            return np.zeros(0)
        prepared = np.stack([prepare_image(im, spec=self.spec, bbox=b)
                             for im, b in zip(imgs, bboxes, strict=True)])
        return predict_proba(self.model, prepared, spec=self.spec, batch_size=batch_size,
                             device=self.device).astype(np.float64)


def default_classifier(*, device: str | None = None) -> Classifier:
    """The shipped CPU classifier (``photorad/weights/classifier_cpu.safetensors``), hash-checked."""
    from photorad.models.checkpoint import read_meta
    from photorad.models.weights import shipped_path

    path = shipped_path("classifier")
    expected = read_meta(path).extra.get("weights_sha256")
    return Classifier.from_checkpoint(path, expected_sha256=expected, device=device)


# --------------------------------------------------------------------------------------------
# training


@dataclass
class TrainConfig:
    """Options of :func:`fit` (learning rate per optimiser step; epochs of the training set)."""

    arch: str = "sepnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    patience: int = 8  #: early stopping: epochs without a better validation AUROC
    balance: str = "loss"  #: "loss" (pos_weight), "sampler" (weighted sampling) or "none"
    num_workers: int = 0
    device: str = "auto"
    augment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainConfig:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        cfg = cls(**d)
        if cfg.balance not in ("loss", "sampler", "none"):
            raise ConfigError(f"balance must be loss, sampler or none; got {cfg.balance!r}")
        return cfg


@dataclass
class FitResult:
    model: Any  #: the best model (highest validation AUROC), eval mode, CPU
    best_epoch: int
    best_val_auroc: float
    history: list[dict[str, float]]
    last_state: dict[str, Any]


def _val_auroc(y: np.ndarray, p: np.ndarray) -> float:
    from photorad.metrics import auroc

    try:
        return auroc(y, p)
    except ValueError:
        return float("nan")


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    cfg: TrainConfig,
    spec: PreprocessSpec,
    seed: int = 0,
    init_state: dict[str, Any] | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train a classifier on prepared images (float32 (N, size, size) in [0, 1], labels 0/1).

    Class balance by ``pos_weight`` = n_benign / n_malignant in the BCE loss (or weighted
    sampling), AdamW with linear warm-up then cosine decay, early stopping on validation AUROC.
    Under ``torchrun`` (an initialised process group) the model is wrapped in DDP and the
    training set sharded with a ``DistributedSampler``.
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, WeightedRandomSampler
    from tqdm import tqdm

    from photorad.data.augment import AugmentConfig
    from photorad.data.cls_dataset import ClsDataset
    from photorad.models import create_model

    torch.manual_seed(seed)
    dev = _device(cfg.device)
    dist = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if dist else 0
    y_train = np.asarray(y_train, dtype=np.int64)
    y_val = np.asarray(y_val, dtype=np.int64)
    n_pos = int(y_train.sum())
    n_neg = len(y_train) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ConfigError("the training set needs both benign and malignant images")

    aug = AugmentConfig.from_dict(cfg.augment)
    ds = ClsDataset(x_train, y_train, spec=spec, augment_cfg=aug, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    sampler = None
    if dist:
        if cfg.balance == "sampler":
            raise ConfigError("balance='sampler' is not supported with DDP; use 'loss'")
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(ds, shuffle=True, seed=seed)
    elif cfg.balance == "sampler":
        w = np.where(y_train == 1, 0.5 / n_pos, 0.5 / n_neg)
        sampler = WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), len(w),
                                        replacement=True, generator=gen)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=cfg.num_workers, generator=gen, drop_last=len(ds) > cfg.batch_size,
                        persistent_workers=cfg.num_workers > 0)

    model = create_model(cfg.arch, **cfg.model_kwargs)
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(dev)
    net = model
    if dist:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    pos_weight = torch.tensor([n_neg / n_pos if cfg.balance == "loss" else 1.0], device=dev)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(loader))
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history: list[dict[str, float]] = []
    best_auc, best_epoch, best_state, stale = -1.0, -1, None, 0
    bar = tqdm(range(cfg.epochs), desc=f"train {cfg.arch}", disable=not progress or rank != 0)
    for epoch in bar:
        ds.set_epoch(epoch)
        if dist:
            sampler.set_epoch(epoch)  # type: ignore[union-attr]
        net.train()
        tot, n = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            loss = loss_fn(net(xb).reshape(-1), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(yb)
            n += len(yb)
        p_val = predict_proba(model, x_val, spec=spec, device=dev)
        auc = _val_auroc(y_val, p_val)
        row = {"epoch": epoch, "train_loss": tot / max(1, n), "val_auroc": auc,
               "lr": opt.param_groups[0]["lr"]}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_auc=f"{auc:.3f}")
        if on_epoch is not None and rank == 0:
            on_epoch(row)
        if math.isnan(auc) or auc > best_auc:
            best_auc, best_epoch, stale = (auc if not math.isnan(auc) else best_auc), epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    last_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if best_state is None:  # pragma: no cover - epochs=0
        raise ModelError("no epoch was trained (epochs must be ≥ 1)")
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    return FitResult(model=model, best_epoch=best_epoch, best_val_auroc=best_auc,
                     history=history, last_state=last_state)
