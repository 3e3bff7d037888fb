#!/usr/bin/env python
"""Train the image-area segmenter that gives ``photorad.rectify.detect`` a second opinion.

    python train/train_segmenter.py -c train/configs/seg_cpu.yaml [--out DIR]

Training data are simulated phone photos (``photorad.simulate``) of BUS-BRA originals; the
target is the displayed image's quad, filled. Patients whose images the rectification
evaluation draws (``eval/eval_rectify.py``, seeds and presets listed in the config,
``exclude_eval``) and the patients of the embedded sample are kept out, so the published
rectification figures are on unseen patients. Simulator seeds start at ``seed_base`` (above the
evaluation's seeds). The reduced photos and targets are cached in ``--cache``.

Writes to ``--out``: ``best.safetensors`` (+ JSON sidecar), ``history.csv``,
``metrics.json`` (validation IoU) and ``run_info.json`` (resolved config, versions, git SHA,
data hash).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "eval"))

from eval_rectify import pick_records  # noqa: E402

from photorad.config import parse_with_yaml  # noqa: E402
from photorad.data.bus_bra import load_records  # noqa: E402
from photorad.data.paths import find_shared_data, sample_dir  # noqa: E402
from photorad.errors import ConfigError, PhotoradError  # noqa: E402
from photorad.io import load_original  # noqa: E402
from photorad.models import create_model  # noqa: E402
from photorad.models.checkpoint import CheckpointMeta, save_checkpoint  # noqa: E402
from photorad.provenance import hash_files, sha256_file, write_run_info  # noqa: E402
from photorad.rectify.segment import SEG_SIDE, network_input, reduce_photo, target_mask  # noqa: E402
from photorad.simulate import simulate_photo  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", help="YAML config (its keys become the defaults)")
    p.add_argument("--data-root", default=None, help="BUS-BRA folder (default: ../shared/data)")
    p.add_argument("--out", default="runs/segmenter", help="output folder")
    p.add_argument("--cache", default="runs/seg_data", help="cache of simulated samples")
    p.add_argument("--arch", default="quadseg_s")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--presets", nargs="+", default=["typical", "hard", "ideal"])
    p.add_argument("--preset-weights", nargs="+", type=float, default=[0.6, 0.3, 0.1])
    p.add_argument("--photo-size", default="1344x1008", help="simulated photo WxH")
    p.add_argument("--seed-base", type=int, default=10_000_000)
    p.add_argument("--exclude-eval-seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--exclude-eval-n", type=int, default=200)
    p.add_argument("--exclude-eval-presets", type=int, default=2,
                   help="number of presets of an eval run (typical, hard)")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=45.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes simulating the data")
    p.add_argument("--prepare-only", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_with_yaml(build_parser(), argv)


def training_pool(records: list[Any], args: argparse.Namespace) -> list[Any]:
    """Records whose patients neither the rectification evaluation nor the sample uses."""
    held = {r.group for r in load_records(sample_dir())}
    for s in args.exclude_eval_seeds:
        rng = np.random.default_rng(s)
        for _ in range(args.exclude_eval_presets):
            held.update(r.group for r in pick_records(records, rng, args.exclude_eval_n))
    return [r for r in records if r.group not in held]


def _simulate(job: tuple[str, str, int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    path, preset, seed, size = job
    res = simulate_photo(load_original(path), preset=preset, seed=seed, size=size)
    red = reduce_photo(res.photo, side=SEG_SIDE)
    grey = np.round(red.grey * 255.0).astype(np.uint8)
    mask = np.round(target_mask(res.corners, red) * 255.0).astype(np.uint8)
    return grey, mask


def prepare(pool: list[Any], n: int, *, split: str, args: argparse.Namespace) -> Path:
    """Simulate ``n`` samples (cached in ``args.cache``/``split``.npz) and return the file."""
    size = tuple(int(v) for v in args.photo_size.lower().split("x"))
    out = Path(args.cache) / f"{split}.npz"
    # a different stream of seeds per split so validation photos are new scenes
    offset = {"train": 0, "val": 5_000_000}[split]
    rng = np.random.default_rng([args.seed, offset])
    w = np.asarray(args.preset_weights, dtype=np.float64)
    jobs = []
    for i in range(n):
        rec = pool[int(rng.integers(len(pool)))]
        preset = args.presets[int(rng.choice(len(w), p=w / w.sum()))]
        jobs.append((str(rec.path), preset, args.seed_base + offset + i, size))
    key = json.dumps([j[:3] for j in jobs] + [list(size), SEG_SIDE])
    if out.is_file():
        with np.load(out) as z:
            if str(z["key"]) == key:
                return out
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        pairs = list(ex.map(_simulate, jobs, chunksize=8))
    shapes = {g.shape for g, _ in pairs}
    if len(shapes) != 1:
        raise ConfigError(f"simulated photos reduce to different shapes: {shapes}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, grey=np.stack([g for g, _ in pairs]),
                        mask=np.stack([m for _, m in pairs]), key=np.array(key),
                        ids=np.array([Path(j[0]).stem for j in jobs]),
                        presets=np.array([j[1] for j in jobs]))
    print(f"{split}: {n} samples in {time.time() - t0:.0f} s -> {out}", flush=True)
    return out


def _batch(grey: np.ndarray, mask: np.ndarray, idx: np.ndarray, rng: np.random.Generator, *,
           augment: bool):
    import torch

    xs, ys = [], []
    for i in idx:
        g = grey[i].astype(np.float32) / 255.0
        m = mask[i].astype(np.float32) / 255.0
        if augment:
            if rng.random() < 0.5:
                g, m = g[:, ::-1], m[:, ::-1]
            # exposure and gamma jitter beyond the simulator's own (other phones, other screens)
            g = np.clip(g * rng.uniform(0.8, 1.25), 0, 1) ** rng.uniform(0.8, 1.25)
        xs.append(network_input(np.ascontiguousarray(g)))
        ys.append(np.ascontiguousarray(m)[None])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _loss(logits, target):
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


def evaluate(model, grey: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    import torch

    ious = []
    with torch.inference_mode():
        for s in range(0, len(grey), 32):
            x, y = _batch(grey, mask, np.arange(s, min(s + 32, len(grey))), None, augment=False)
            p = torch.sigmoid(model(x)) > 0.5
            t = y > 0.5
            inter = (p & t).sum(dim=(1, 2, 3)).float()
            union = (p | t).sum(dim=(1, 2, 3)).float().clamp(min=1)
            ious += (inter / union).tolist()
    a = np.asarray(ious)
    return {"val_iou_mean": float(a.mean()), "val_iou_p10": float(np.percentile(a, 10)),
            "val_share_iou_ge_0.95": float((a >= 0.95).mean())}


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    root = Path(args.data_root) if args.data_root else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or put it in ../shared/data")
    records = load_records(root)
    pool = training_pool(records, args)
    # patient-grouped train/val split of the pool
    groups = sorted({r.group for r in pool})
    rng = np.random.default_rng(args.seed)
    val_groups = set(rng.choice(groups, size=max(1, len(groups) // 10), replace=False).tolist())
    train_pool = [r for r in pool if r.group not in val_groups]
    val_pool = [r for r in pool if r.group in val_groups]
    print(f"pool: {len(pool)} images of {len(groups)} patients "
          f"({len(train_pool)} train, {len(val_pool)} val) of {len(records)}", flush=True)
    f_train = prepare(train_pool, args.n_train, split="train", args=args)
    f_val = prepare(val_pool, args.n_val, split="val", args=args)
    if args.prepare_only:
        return 0
    with np.load(f_train) as z:
        tg, tm = z["grey"], z["mask"]
    with np.load(f_val) as z:
        vg, vm = z["grey"], z["mask"]
    model = create_model(args.arch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iters,
                                                pct_start=0.05)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hist = []
    best = -1.0
    t0 = time.time()
    brng = np.random.default_rng([args.seed, 1])
    running = 0.0
    it = 0
    for it in range(1, args.iters + 1):
        model.train()
        x, y = _batch(tg, tm, brng.integers(0, len(tg), args.batch_size), brng, augment=True)
        loss = _loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        over = (time.time() - t0) / 60 > args.max_minutes
        if it % args.val_every == 0 or it == args.iters or over:
            model.eval()
            m = evaluate(model, vg, vm)
            row = {"iter": it, "loss": running / args.val_every, **m,
                   "minutes": round((time.time() - t0) / 60, 2)}
            running = 0.0
            hist.append(row)
            print(json.dumps(row), flush=True)
            if m["val_iou_mean"] > best:
                best = m["val_iou_mean"]
                meta = CheckpointMeta(
                    architecture=args.arch, model_kwargs={}, task="segment",
                    config=vars(args), metrics={**m, "iter": it},
                    data_hash=hash_files([f_train, f_val]),
                    extra={"side": SEG_SIDE, "input": "grey, sqrt(grey); (v - 0.5) / 0.25"})
                save_checkpoint(out / "best.safetensors", model, meta)
        if over:
            break
    with open(out / "history.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(hist[0]))
        wr.writeheader()
        wr.writerows(hist)
    (out / "metrics.json").write_text(json.dumps({"best_val_iou_mean": best, "iters": it},
                                                 indent=2) + "\n")
    write_run_info(out, vars(args), data_hashes={"train": sha256_file(f_train),
                                                  "val": sha256_file(f_val)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
