#!/usr/bin/env python
"""Train the input router (``photorad.route``): is this a breast-ultrasound image at all?

    python train/train_router.py -c train/configs/router_cpu.yaml [--out DIR]

Positives: the BUS-BRA images prepared by ``train/train_lesion.py`` (``runs/lesion_data``,
``train.npz`` / ``val.npz``): every patient except the shipped classifier's test patients, each
image as the original, a simulated phone photo rectified with (jittered) true corners, and that
photo restored. The validation patients (``val.npz``) choose the checkpoint and set the
threshold (:data:`photorad.route.MIN_SCORE`): the lowest per-domain 1st percentile of their
scores, floored to 0.01.

Negatives: the ``split="train"`` sources of :mod:`photorad.data.negatives` (scikit-image sample
images, pydicom's non-ultrasound test images, rendered text, the simulator's viewer with a blank
image, synthetic textures), each also as a simulated phone photo, rectified and restored by the
shipped restorer. The held-out sources (``split="eval"``) are never read here.

A share of the negatives (``--p-scrambled``) are training ultrasound images with their layout
destroyed (tiles shuffled, or one patch repeated): ultrasound texture alone is not enough.
Both classes get the same augmentations (crops, flips, gain, gamma, blur, noise, JPEG);
negatives may also be inverted. Batches are half positives, half negatives (negative sources
drawn uniformly, then an image of the source).

Writes to ``--out``: ``best.safetensors`` (+ JSON sidecar: input spec, threshold, validation
figures), ``history.csv``, ``metrics.json`` and ``run_info.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from photorad.config import parse_with_yaml
from photorad.errors import ConfigError, PhotoradError
from photorad.models import create_model
from photorad.models.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from photorad.provenance import hash_files, sha256_file, write_run_info
from photorad.route import RouteSpec, network_input

DOMAINS = ("original", "rectified", "restored")
PREPARE_HINT = ("python train/train_lesion.py -c train/configs/lesion_cpu.yaml --prepare-only")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", help="YAML config (its keys become the defaults)")
    p.add_argument("--out", default="runs/router")
    p.add_argument("--pos-cache", default="runs/lesion_data",
                   help="train.npz / val.npz prepared by train/train_lesion.py")
    p.add_argument("--cache", default="runs/router_data", help="cache of prepared negatives")
    p.add_argument("--arch", default="sepnet")
    p.add_argument("--widths", nargs="+", type=int, default=[16, 32, 64, 96, 128])
    p.add_argument("--drop-rate", type=float, default=0.2)
    p.add_argument("--side", type=int, default=128, help="network input side, px")
    p.add_argument("--max-side", type=int, default=256, help="images kept in memory at most, px")
    p.add_argument("--n-procedural", type=int, default=200,
                   help="images per procedural source (text, viewer, texture)")
    p.add_argument("--n-val-procedural", type=int, default=40)
    p.add_argument("--photo-every", type=int, default=5,
                   help="put every N-th procedural negative through the phone simulator")
    p.add_argument("--photo-size", default="1024x768", help="simulated photo WxH")
    p.add_argument("--p-scrambled", type=float, default=0.1,
                   help="share of negatives that are training ultrasound images scrambled")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--max-minutes", type=float, default=20.0)
    p.add_argument("--batch-size", type=int, default=64, help="half positives, half negatives")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prepare-only", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_with_yaml(build_parser(), argv)


def held_out_patients() -> list[str]:
    """The shipped classifier's test patients (never seen here)."""
    from photorad.models.weights import shipped_path

    held = read_meta(shipped_path("classifier")).extra.get("test_patients") or []
    if not held:
        raise ConfigError("the shipped classifier's sidecar lists no test patients")
    return sorted({str(g) for g in held}, key=int)


# --------------------------------------------------------------------------------------------
# data


def _small(img: np.ndarray, cap: int) -> np.ndarray:
    """uint8 copy with the long side at most ``cap`` px."""
    from photorad.data.negatives import shrink

    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    return np.round(shrink(img, cap) * 255).astype(np.uint8)


def load_positives(path: Path, cap: int) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Per domain, the prepared ultrasound images of ``path`` (uint8, long side ≤ ``cap``)."""
    if not path.is_file():
        raise ConfigError(f"prepared ultrasound images not found: {path}; make them with "
                          f"`{PREPARE_HINT}`")
    out: dict[str, list[np.ndarray]] = {d: [] for d in DOMAINS}
    with np.load(path) as z:
        ids = [str(s) for s in z["ids"]]
        for i in range(len(ids)):
            for d in DOMAINS:
                out[d].append(_small(z[f"{d}_{i}"], cap))
    if not ids:
        raise ConfigError(f"{path} holds no images; remake it with `{PREPARE_HINT}`")
    _check_patients(ids)
    return out, ids


def _check_patients(ids: list[str]) -> None:
    """No image of the classifier's test patients may be a training or validation positive."""
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import find_shared_data

    root = find_shared_data("bus-bra")
    if root is None:
        return
    group = {r.id: r.group for r in load_records(root)}
    leak = sorted(i for i in ids if group.get(i) in set(held_out_patients()))
    if leak:
        raise ConfigError(f"prepared images include the classifier's test patients: {leak[:5]}")


def prepare_negatives(split: str, args: argparse.Namespace) -> Path:
    """The training (``split="train"``) or validation negatives, cached as uint8 ``.npz``."""
    from photorad.data.negatives import negative_set

    size = tuple(int(v) for v in args.photo_size.lower().split("x"))
    if split == "train":
        n, photo_every, seed = args.n_procedural, args.photo_every, args.seed
    else:  # validation: the training sources' generators with another seed, no photos
        n, photo_every, seed = args.n_val_procedural, 0, args.seed + 1
    key = json.dumps([split, n, photo_every, seed, list(size), args.max_side, 4])
    out = Path(args.cache) / f"neg_{split}.npz"
    if out.is_file():
        with np.load(out) as z:
            if str(z["key"]) == key:
                return out
    t0 = time.time()
    items = negative_set("train", n_procedural=n, photo_every=photo_every, seed=seed,
                         photo_size=size)  # type: ignore[arg-type]
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key), "sources": np.array([neg.source for neg, _ in items]),
        "names": np.array([neg.name for neg, _ in items]),
        "domains": np.array([d for _, d in items])}
    for i, (neg, _) in enumerate(items):
        arrays[f"img_{i}"] = _small(neg.img, args.max_side)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    print(f"negatives ({split}): {len(items)} images in {time.time() - t0:.0f} s -> {out}",
          flush=True)
    return out


def load_negatives(path: Path) -> dict[str, list[np.ndarray]]:
    """Images by sampling group: the source; ``photo`` for the rectified and restored simulated
    photos, ``raw_photo`` for the whole simulated photos."""
    out: dict[str, list[np.ndarray]] = {}
    with np.load(path) as z:
        for i, (src, dom) in enumerate(zip(z["sources"], z["domains"], strict=True)):
            group = {"image": str(src), "photo": "raw_photo"}.get(str(dom), "photo")
            out.setdefault(group, []).append(z[f"img_{i}"])
    return out


# --------------------------------------------------------------------------------------------
# batches


def augment(img: np.ndarray, rng: np.random.Generator, *, negative: bool) -> np.ndarray:
    """One random view of a uint8 image as float32 [0, 1] (the same recipe for both classes)."""
    x = img.astype(np.float32) / 255.0
    h, w = x.shape
    if rng.random() < 0.5:
        cw, ch = max(16, int(w * rng.uniform(0.6, 1.0))), max(16, int(h * rng.uniform(0.6, 1.0)))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        x = x[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if negative and rng.random() < 0.15:
        x = 1.0 - x
    if negative and rng.random() < 0.1:
        x = np.rot90(x, int(rng.integers(1, 4)))
    x = np.clip(x * rng.uniform(0.8, 1.2) + rng.uniform(-0.05, 0.05), 0, 1)
    x = np.ascontiguousarray(x ** rng.uniform(0.7, 1.4), dtype=np.float32)
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.2:
        x = np.clip(x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape), 0, 1)
    if rng.random() < 0.2:
        ok, buf = cv2.imencode(".jpg", np.round(x * 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
        x = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return np.ascontiguousarray(x, dtype=np.float32)


def scramble(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An ultrasound image with its layout destroyed (a negative with ultrasound's texture): its
    tiles shuffled and flipped, or one small patch of it repeated."""
    h, w = img.shape
    if rng.random() < 0.5:
        k = int(rng.integers(4, 9))
        th, tw = h // k, w // k
        tiles = [img[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(k) for j in range(k)]
        order = rng.permutation(len(tiles))
        tiles = [tiles[o][::-1] if rng.random() < 0.5 else tiles[o] for o in order]
        return np.vstack([np.hstack(tiles[i * k:(i + 1) * k]) for i in range(k)])
    ph, pw = int(h * rng.uniform(0.1, 0.3)), int(w * rng.uniform(0.1, 0.3))
    y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    reps = (int(np.ceil(h / ph)), int(np.ceil(w / pw)))
    return np.tile(img[y0:y0 + ph, x0:x0 + pw], reps)[:h, :w]


def make_batch(pos: dict[str, list[np.ndarray]], neg: dict[str, list[np.ndarray]],
               rng: np.random.Generator, n: int, spec: RouteSpec, *, p_scrambled: float = 0.0):
    import torch

    xs, ys = [], []
    groups = sorted(neg)
    for k in range(n):
        if k % 2 == 0:
            dom = DOMAINS[int(rng.integers(len(DOMAINS)))]
            img, y = pos[dom][int(rng.integers(len(pos[dom])))], 1.0
        elif rng.random() < p_scrambled:
            dom = DOMAINS[int(rng.integers(len(DOMAINS)))]
            img, y = scramble(pos[dom][int(rng.integers(len(pos[dom])))], rng), 0.0
        else:
            g = groups[int(rng.integers(len(groups)))]
            img, y = neg[g][int(rng.integers(len(neg[g])))], 0.0
        xs.append(network_input(augment(img, rng, negative=y == 0.0), spec=spec))
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.float32)[:, None]


def _predict(model, imgs: list[np.ndarray], spec: RouteSpec) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(imgs), 64):
            x = np.stack([network_input(im.astype(np.float32) / 255.0, spec=spec)
                          for im in imgs[s:s + 64]])
            out.append(torch.sigmoid(model(torch.from_numpy(x)))[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def threshold_rule(pos_scores: dict[str, np.ndarray]) -> float:
    """Lowest per-domain 1st percentile of the validation positives' scores, floored to 0.01."""
    q = min(float(np.percentile(s, 1, method="lower")) for s in pos_scores.values())
    return float(np.floor(q * 100) / 100)


def evaluate(model, pos_val: dict[str, list[np.ndarray]], neg_val: dict[str, list[np.ndarray]],
             spec: RouteSpec) -> dict[str, Any]:
    ps = {d: _predict(model, pos_val[d], spec) for d in DOMAINS}
    ns = {g: _predict(model, v, spec) for g, v in sorted(neg_val.items())}
    thr = threshold_rule(ps)
    all_neg = np.concatenate(list(ns.values()))
    m: dict[str, Any] = {"threshold": thr,
                         "val_neg_refused": float(np.mean(all_neg < thr))}
    for d, s in ps.items():
        m[f"val_pos_pass_{d}"] = float(np.mean(s >= thr))
    for g, s in ns.items():
        m[f"val_neg_refused_{g}"] = float(np.mean(s < thr))
    eps = 1e-6
    ll = [-np.log(np.clip(s, eps, 1)).mean() for s in ps.values()]
    ll.append(-np.log(np.clip(1 - all_neg, eps, 1)).mean())
    m["val_loss"] = float(np.mean(ll))
    return m


# --------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.nn.functional as F

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cache = Path(args.pos_cache)
    f_pos = [cache / "train.npz", cache / "val.npz"]
    for f in f_pos:
        if not f.is_file():
            raise ConfigError(f"prepared ultrasound images not found: {f}; make them with "
                              f"`{PREPARE_HINT}`")
    f_neg_train = prepare_negatives("train", args)
    f_neg_val = prepare_negatives("val", args)
    if args.prepare_only:
        return 0
    pos_train, train_ids = load_positives(f_pos[0], args.max_side)
    pos_val, val_ids = load_positives(f_pos[1], args.max_side)
    neg_train = load_negatives(f_neg_train)
    neg_val = load_negatives(f_neg_val)
    print(f"positives: {len(train_ids)} train / {len(val_ids)} val images (×3 domains); "
          f"negatives: " + ", ".join(f"{g} {len(v)}" for g, v in sorted(neg_train.items())),
          flush=True)
    spec = RouteSpec(side=args.side)
    kwargs = {"widths": list(args.widths), "drop_rate": args.drop_rate}
    model = create_model(args.arch, **kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iters,
                                                pct_start=0.05)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hist: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    best_m: dict[str, Any] = {}
    it, running, n_run = 0, 0.0, 0
    t0 = time.time()
    brng = np.random.default_rng([args.seed, 1])
    data_hash = hash_files([*f_pos, f_neg_train, f_neg_val])
    for it in range(1, args.iters + 1):
        model.train()
        x, y = make_batch(pos_train, neg_train, brng, args.batch_size, spec,
                          p_scrambled=args.p_scrambled)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        n_run += 1
        over = (time.time() - t0) / 60 > args.max_minutes
        if it % args.val_every == 0 or it == args.iters or over:
            model.eval()
            m = evaluate(model, pos_val, neg_val, spec)
            row = {"iter": it, "loss": running / max(1, n_run), **m,
                   "minutes": round((time.time() - t0) / 60, 2)}
            running, n_run = 0.0, 0
            hist.append(row)
            print(json.dumps(row), flush=True)
            rank = (m["val_neg_refused"], -m["val_loss"])
            if best is None or rank > best:
                best, best_m = rank, {**m, "iter": it}
                meta = CheckpointMeta(
                    architecture=args.arch, model_kwargs=kwargs, task="route",
                    config=vars(args), metrics=best_m, data_hash=data_hash,
                    extra={"name": Path(args.out).name, "spec": spec.to_dict(),
                           "threshold": m["threshold"],
                           "held_out_patients": held_out_patients(),
                           "negative_sources": "photorad.data.negatives split='train'"})
                save_checkpoint(out / "best.safetensors", model, meta)
        if over:
            break
    with open(out / "history.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(hist[0]))
        wr.writeheader()
        wr.writerows(hist)
    (out / "metrics.json").write_text(json.dumps(
        {**best_m, "iters": it, "train_minutes": round((time.time() - t0) / 60, 2),
         "weights_sha256": sha256_file(out / "best.safetensors")}, indent=2) + "\n")
    write_run_info(out, vars(args), data_hashes={
        "pos_train": sha256_file(f_pos[0]), "pos_val": sha256_file(f_pos[1]),
        "neg_train": sha256_file(f_neg_train), "neg_val": sha256_file(f_neg_val)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
