#!/usr/bin/env python
"""Train the lesion localizer (``photorad.lesion``) on BUS-BRA lesion masks.

    python train/train_lesion.py -c train/configs/lesion_cpu.yaml [--out DIR]

Patients: every BUS-BRA patient except the shipped classifier's test patients (its sidecar's
``extra.test_patients``, which also hold the embedded sample), so the localizer never sees a
patient on which the classifier, the lesion evaluation or the AUROC hold-out arms are measured.
A patient-grouped 10 % of them is the validation set.

Each image enters in three domains, so that the localizer works on what the pipeline hands it:
the original; a simulated phone photo of it (presets and weights in the config) rectified with
the ground-truth corners jittered by about a detector's error; and that rectified photo restored
by the shipped restorer. The target is the original's mask (the rectified photo is registered to
the original). Batches are random zooms: the whole frame, a crop of it, or a square around the
lesion as a viewer zoomed onto it would show (the paper's workflow).

Writes to ``--out``: ``best.safetensors`` (+ JSON sidecar: preprocessing, validation Dice, the
held-out patients), ``history.csv``, ``metrics.json`` and ``run_info.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from photorad.config import parse_with_yaml
from photorad.data.bus_bra import load_records
from photorad.data.lesion_masks import load_mask
from photorad.data.paths import find_shared_data
from photorad.errors import ConfigError, PhotoradError
from photorad.io import load_original
from photorad.lesion import LesionSpec, network_input
from photorad.models import create_model
from photorad.models.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from photorad.provenance import hash_files, sha256_file, write_run_info

DOMAINS = ("original", "rectified", "restored")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", help="YAML config (its keys become the defaults)")
    p.add_argument("--data-root", default=None, help="BUS-BRA folder (default: ../shared/data)")
    p.add_argument("--out", default="runs/lesion")
    p.add_argument("--cache", default="runs/lesion_data", help="cache of prepared images")
    p.add_argument("--arch", default="lesionseg_s")
    p.add_argument("--init", default="classifier", choices=["classifier", "none"],
                   help="encoder start: the shipped classifier's weights, or random")
    p.add_argument("--side", type=int, default=160, help="network input side, px")
    p.add_argument("--presets", nargs="+", default=["typical", "hard", "ideal"])
    p.add_argument("--preset-weights", nargs="+", type=float, default=[0.6, 0.2, 0.2])
    p.add_argument("--photo-size", default="1024x768", help="simulated photo WxH")
    p.add_argument("--corner-jitter", type=float, default=0.003,
                   help="sd of the corner error, fraction of the photo diagonal")
    p.add_argument("--seed-base", type=int, default=20_000_000)
    p.add_argument("--max-long-side", type=int, default=512, help="cached image size cap, px")
    p.add_argument("--iters", type=int, default=2400)
    p.add_argument("--max-minutes", type=float, default=26.0, help="wall-time cap of the training")
    p.add_argument("--max-cpu-minutes", type=float, default=0.0,
                   help="process CPU-time cap of the training (all threads; 0 = off): the fair "
                        "budget on a shared machine")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--p-roi", type=float, default=0.3, help="share of zoomed-on-lesion crops")
    p.add_argument("--p-crop", type=float, default=0.3, help="share of random frame crops")
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--limit", type=int, default=0, help="use N records (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes preparing the data")
    p.add_argument("--device", default="cpu")
    p.add_argument("--prepare-only", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_with_yaml(build_parser(), argv)


def held_out_patients() -> set[str]:
    """The shipped classifier's test patients (the embedded sample's included)."""
    from photorad.models.weights import shipped_path

    held = read_meta(shipped_path("classifier")).extra.get("test_patients") or []
    if not held:
        raise ConfigError("the shipped classifier's sidecar lists no test patients")
    return {str(g) for g in held}


# --------------------------------------------------------------------------------------------
# data


def _shrink(img: np.ndarray, cap: int, *, interp: int) -> np.ndarray:
    import cv2

    h, w = img.shape
    f = cap / max(h, w)
    if f >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)


_RESTORER = None


def _prepare_one(job: tuple[str, str, str, int, tuple[int, int], float, int]
                 ) -> dict[str, np.ndarray]:
    """Original, rectified and restored versions of one record, and its mask (uint8)."""
    import cv2
    import torch

    from photorad.rectify import warp
    from photorad.simulate import simulate_photo

    global _RESTORER
    path, mask_path, preset, seed, size, jitter, cap = job
    torch.set_num_threads(1)
    if _RESTORER is None:
        from photorad.restore import default_restorer

        _RESTORER = default_restorer()
    orig = load_original(path)
    mask = load_mask(mask_path, shape=orig.shape)
    h, w = orig.shape
    sim = simulate_photo(orig, preset=preset, seed=seed, size=size)
    rng = np.random.default_rng(seed)
    diag = float(np.hypot(*size))
    corners = sim.corners + rng.normal(0.0, jitter * diag, size=(4, 2))
    rect = warp(sim.photo, corners, size=(w, h))
    restored = np.clip(_RESTORER.restore(rect), 0.0, 1.0)
    out = {"mask": _shrink(mask, cap, interp=cv2.INTER_NEAREST)}
    for name, img in (("original", orig), ("rectified", rect), ("restored", restored)):
        small = _shrink(img.astype(np.float32), cap, interp=cv2.INTER_AREA)
        out[name] = np.round(np.clip(small, 0, 1) * 255).astype(np.uint8)
    return out


def prepare(records: list[Any], root: Path, *, split: str, args: argparse.Namespace) -> Path:
    """Prepare (or reuse the cached) images of ``records``; returns the ``.npz`` file."""
    size = tuple(int(v) for v in args.photo_size.lower().split("x"))
    out = Path(args.cache) / f"{split}.npz"
    rng = np.random.default_rng([args.seed, {"train": 0, "val": 1}[split]])
    w = np.asarray(args.preset_weights, dtype=np.float64)
    jobs = []
    for i, r in enumerate(records):
        preset = args.presets[int(rng.choice(len(w), p=w / w.sum()))]
        mask_path = root / "Masks" / f"{r.id.replace('bus_', 'mask_')}.png"
        jobs.append((str(r.path), str(mask_path), preset,
                     args.seed_base + (1_000_000 if split == "val" else 0) + i, size,
                     float(args.corner_jitter), int(args.max_long_side)))
    key = json.dumps([[Path(j[0]).name, j[2], j[3]] for j in jobs]
                     + [list(size), args.corner_jitter, args.max_long_side])
    if out.is_file():
        with np.load(out) as z:
            if str(z["key"]) == key:
                return out
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        items = list(ex.map(_prepare_one, jobs, chunksize=8))
    arrays: dict[str, np.ndarray] = {"key": np.array(key),
                                     "ids": np.array([r.id for r in records]),
                                     "presets": np.array([j[2] for j in jobs])}
    for i, it in enumerate(items):
        for k, v in it.items():
            arrays[f"{k}_{i}"] = v
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    print(f"{split}: {len(records)} images in {time.time() - t0:.0f} s -> {out}", flush=True)
    return out


def load_prepared(path: Path) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    with np.load(path) as z:
        ids = [str(s) for s in z["ids"]]
        items = [{k: z[f"{k}_{i}"] for k in ("mask", *DOMAINS)} for i in range(len(ids))]
    return items, ids


# --------------------------------------------------------------------------------------------
# batches


def _crop_box(mask: np.ndarray, rng: np.random.Generator, args: argparse.Namespace
              ) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the view: whole frame, a random crop, or a square around the lesion."""
    h, w = mask.shape
    u = rng.random()
    ys, xs = np.nonzero(mask)
    if u < args.p_roi and len(xs):
        from photorad.classify import roi_box

        bbox = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        return roi_box((h, w), bbox, margin=float(rng.uniform(0.1, 0.6)))
    if u < args.p_roi + args.p_crop:
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return x0, y0, x0 + cw, y0 + ch
    return 0, 0, w, h


def make_batch(items: list[dict[str, np.ndarray]], idx: np.ndarray, rng: np.random.Generator,
               args: argparse.Namespace, *, augment: bool, domain: str | None = None):
    import cv2
    import torch

    spec = LesionSpec(side=args.side)
    xs, ys = [], []
    for i in idx:
        it = items[int(i)]
        dom = domain or DOMAINS[int(rng.integers(len(DOMAINS)))]
        img = it[dom].astype(np.float32) / 255.0
        m = it["mask"].astype(np.float32) / 255.0
        if augment:
            x0, y0, x1, y1 = _crop_box(it["mask"], rng, args)
            img, m = img[y0:y1, x0:x1], m[y0:y1, x0:x1]
            if rng.random() < 0.5:
                img, m = img[:, ::-1], m[:, ::-1]
            img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-0.05, 0.05), 0, 1)
            img = img ** rng.uniform(0.75, 1.35)
        xs.append(network_input(np.ascontiguousarray(img), spec=spec))
        mt = cv2.resize(np.ascontiguousarray(m), (spec.side, spec.side),
                        interpolation=cv2.INTER_AREA)
        ys.append(mt[None])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.float32))


def _loss(logits, target):
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


def evaluate(model, items, args: argparse.Namespace, device: Any = "cpu") -> dict[str, float]:
    """Mean Dice at the network's resolution per domain (whole frames, no augmentation)."""
    import torch

    out = {}
    with torch.inference_mode():
        for dom in DOMAINS:
            d = []
            for s in range(0, len(items), 32):
                x, y = make_batch(items, np.arange(s, min(s + 32, len(items))), None, args,
                                  augment=False, domain=dom)
                p = (torch.sigmoid(model(x.to(device))) > 0.5).float().cpu()
                t = (y > 0.5).float()
                inter = (p * t).sum(dim=(1, 2, 3))
                d += ((2 * inter) / (p.sum(dim=(1, 2, 3)) + t.sum(dim=(1, 2, 3))).clamp(min=1)
                      ).tolist()
            out[f"val_dice_{dom}"] = float(np.mean(d))
    out["val_dice_mean"] = float(np.mean([out[f"val_dice_{d}"] for d in DOMAINS]))
    return out


# --------------------------------------------------------------------------------------------
# main


def _init_model(args: argparse.Namespace):
    from photorad.classify import default_classifier

    model = create_model(args.arch)
    if args.init == "classifier":
        clf = default_classifier(device="cpu")  # SHA-256 checked on load
        state = {k: v for k, v in clf.model.state_dict().items() if not k.startswith("fc.")}
        bad = model.load_state_dict(state, strict=False).unexpected_keys
        if bad:
            raise ConfigError(f"{args.arch} cannot start from the classifier: {bad[:3]}")
        return model, clf.sha256
    return model, None


def split_pool(records: list[Any], seed: int) -> tuple[list[Any], list[Any]]:
    held = held_out_patients()
    pool = [r for r in records if r.group not in held]
    groups = sorted({r.group for r in pool})
    rng = np.random.default_rng(seed)
    val_groups = set(rng.choice(groups, size=max(1, len(groups) // 10), replace=False).tolist())
    return ([r for r in pool if r.group not in val_groups],
            [r for r in pool if r.group in val_groups])


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    root = Path(args.data_root) if args.data_root else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or put it in ../shared/data")
    records = load_records(root)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        records = [records[i] for i in sorted(rng.choice(len(records), args.limit, replace=False))]
    train_recs, val_recs = split_pool(records, args.seed)
    print(f"{len(train_recs)} train and {len(val_recs)} validation images "
          f"(classifier test patients held out)", flush=True)
    f_train = prepare(train_recs, root, split="train", args=args)
    f_val = prepare(val_recs, root, split="val", args=args)
    if args.prepare_only:
        return 0
    train_items, _ = load_prepared(f_train)
    val_items, _ = load_prepared(f_val)
    model, init_sha = _init_model(args)
    dev = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available()
                       else "cpu")
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iters,
                                                pct_start=0.05)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hist: list[dict[str, Any]] = []
    best, it, running = -1.0, 0, 0.0
    t0, c0 = time.time(), time.process_time()
    brng = np.random.default_rng([args.seed, 1])
    spec = LesionSpec(side=args.side)
    for it in range(1, args.iters + 1):
        model.train()
        x, y = make_batch(train_items, brng.integers(0, len(train_items), args.batch_size),
                          brng, args, augment=True)
        loss = _loss(model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        cpu_min = (time.process_time() - c0) / 60
        over = (time.time() - t0) / 60 > args.max_minutes or (
            args.max_cpu_minutes > 0 and cpu_min > args.max_cpu_minutes)
        if it % args.val_every == 0 or it == args.iters or over:
            model.eval()
            m = evaluate(model, val_items, args, dev)
            row = {"iter": it, "loss": running / args.val_every, **m,
                   "minutes": round((time.time() - t0) / 60, 2), "cpu_minutes": round(cpu_min, 2)}
            running = 0.0
            hist.append(row)
            print(json.dumps(row), flush=True)
            if m["val_dice_mean"] > best:
                best = m["val_dice_mean"]
                meta = CheckpointMeta(
                    architecture=args.arch, model_kwargs={}, task="lesion",
                    config=vars(args), metrics={**m, "iter": it},
                    data_hash=hash_files([f_train, f_val]),
                    extra={"name": Path(args.out).name, "spec": spec.to_dict(),
                           "init_classifier_sha256": init_sha,
                           "held_out_patients": sorted(held_out_patients(), key=int)})
                save_checkpoint(out / "best.safetensors", model, meta)
        if over:
            break
    with open(out / "history.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(hist[0]))
        wr.writeheader()
        wr.writerows(hist)
    (out / "metrics.json").write_text(json.dumps(
        {"best_val_dice_mean": best, "iters": it,
         "train_minutes": round((time.time() - t0) / 60, 2),
         "train_cpu_minutes": round((time.process_time() - c0) / 60, 2)}, indent=2) + "\n")
    write_run_info(out, vars(args), data_hashes={"train": sha256_file(f_train),
                                                  "val": sha256_file(f_val)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
