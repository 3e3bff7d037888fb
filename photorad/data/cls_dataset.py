"""Torch dataset of BUS-BRA images for benign/malignant classification.

Images are decoded once with :func:`photorad.io.load_original`, cut to the lesion ROI (``BBOX`` +
margin) or kept whole, and resized to the model input size by the *same* functions the inference
path uses (:func:`photorad.classify.prepare_image`), then cached in memory. Augmentation (seeded per
``(seed, epoch, index)``) runs on the cached size×size image and is followed by normalisation, so
training sees exactly what :class:`photorad.classify.Classifier` feeds the network at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from photorad.classify import PreprocessSpec, normalise, prepare_image
from photorad.data.augment import AugmentConfig, augment
from photorad.data.bus_bra import Record

__all__ = ["ClsDataset", "load_cls_images"]


def load_cls_images(
    records: Sequence[Record], *, spec: PreprocessSpec, progress: bool = False
) -> np.ndarray:
    """Decode, crop (when ``spec.roi``) and resize every record: float32 (N, size, size) in [0, 1]."""
    from tqdm import tqdm

    from photorad.io import load_original

    out = np.empty((len(records), spec.size, spec.size), dtype=np.float32)
    for i, r in enumerate(tqdm(records, desc="load images", disable=not progress, leave=False)):
        img = load_original(r.path)
        out[i] = prepare_image(img, spec=spec, bbox=r.bbox if spec.roi else None)
    return out


class ClsDataset(Dataset):
    """``(image 1×S×S normalised float32 tensor, label float tensor)`` pairs.

    Parameters
    ----------
    images:
        float32 (N, S, S) in [0, 1], already prepared (see :func:`load_cls_images`).
    labels:
        0/1 per image (1 = malignant).
    spec:
        Preprocessing of the model the images are for (normalisation constants).
    augment_cfg:
        Augmentations, or ``None`` for evaluation.
    seed:
        Base seed; item ``i`` in epoch ``e`` uses ``default_rng([seed, e, i])``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        spec: PreprocessSpec,
        augment_cfg: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.float32)
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise ValueError("images must be (N, S, S) with one label each")
        self.spec = spec
        self.augment_cfg = augment_cfg
        self.seed = int(seed)
        self.epoch = 0

    @classmethod
    def from_records(
        cls,
        records: Sequence[Record],
        *,
        spec: PreprocessSpec,
        augment_cfg: AugmentConfig | None = None,
        seed: int = 0,
    ) -> ClsDataset:
        return cls(load_cls_images(records, spec=spec), [r.label for r in records], spec=spec,
                   augment_cfg=augment_cfg, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i]
        if self.augment_cfg is not None:
            x = augment(x, np.random.default_rng([self.seed, self.epoch, int(i)]), self.augment_cfg)
        x = normalise(x, spec=self.spec)
        return torch.from_numpy(x[None].copy()), torch.tensor(self.labels[i])
