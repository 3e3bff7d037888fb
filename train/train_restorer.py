"""Train a restorer (rectified phone photo → original) on simulated, patient-split BUS-BRA pairs.

Usage::

    python train/train_restorer.py -c train/configs/restore_msunet_s.yaml          # CPU
    torchrun --nproc_per_node=4 train/train_restorer.py -c train/configs/restore_dncnn.yaml

Steps: (1) make the paired folder if needed (simulate each image with the configured preset, warp
with the ground-truth corners to the original size; patient-grouped train/val/test split of
BUS-BRA via ``train_val_test_split`` so test patients are never trained on); (2) train on random
patches with flips/rotations, L1 or L2 (+ optional SSIM) loss, Adam with warm-up and a cosine
schedule (over steps, the wall-clock budget ``max_minutes`` or the process-CPU budget
``max_cpu_minutes``, whichever runs out first), AMP on GPU, DistributedDataParallel
under ``torchrun``. A model with a whole-image context (``model.context``, e.g. ``gtunet_s``) gets
the context of each patch's WHOLE training image, as at inference; (3) validate on whole val images (PSNR), keep ``best.safetensors`` and
``last.safetensors`` (+ JSON sidecars) and ``resume.pt`` (optimizer state, weights-only
loadable), a CSV log and ``run_info.json`` with the resolved config and data hashes.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml

from photorad.data.bus_bra import load_records, train_val_test_split
from photorad.data.paired import PatchSampler, load_pairs, make_pairs, read_pairs_csv
from photorad.data.paths import find_shared_data
from photorad.metrics import psnr
from photorad.models import create_model
from photorad.models.checkpoint import CheckpointMeta, save_checkpoint
from photorad.provenance import hash_folder, write_run_info

DEFAULTS: dict[str, Any] = {
    "model": "msunet_s",
    "model_kwargs": {},
    "out": "runs/restore_msunet_s",
    "pairs": "runs/pairs_typical",
    "data_root": None,
    "preset": "typical",
    "photo_size": [1600, 1200],
    "n_train": 240,
    "n_val": 24,
    "n_test": 60,
    "split_seed": 0,
    "patch": 128,
    "batch_size": 8,
    "steps": 3000,
    "max_minutes": 13.0,
    "max_cpu_minutes": 0.0,
    "warmup": 0.02,
    "lr": 1e-3,
    "min_lr": 1e-5,
    "weight_decay": 0.0,
    "grad_clip": 0.5,
    "loss": "l1",  # "l1", "l2" or "log_l2" (mean over patches of log(MSE_patch + LOG_EPS))
    "ssim_weight": 0.0,
    "val_every": 250,
    "n_val_eval": 24,
    "seed": 0,
    "threads": 0,
    "amp": True,
    "resume": False,
    # Tone-only stage (context models with ``tone_curve``, e.g. gtunet): before the patch training,
    # ``tone_steps`` steps train the global branch alone on pixels sampled from WHOLE training
    # images (MSE of ``tone_curve`` vs the original); the best state on val is kept. Its CPU time
    # counts against ``max_cpu_minutes``. 0 = off (the default; earlier configs are unchanged).
    "tone_steps": 0,
    "tone_lr": 3e-3,
    "tone_batch": 16,
    "tone_pixels": 4096,
    "tone_weight_decay": 0.0,
    "tone_val_every": 100,
    # "mse" (pooled over the batch's pixels) or "log_mse": the mean over images of
    # log(MSE_i + LOG_EPS), i.e. −mean PSNR up to a constant — the tables' metric. Pooled MSE weighs
    # each image by its error, so a few badly exposed photos dominate the fit. Default unchanged.
    "tone_loss": "mse",
    # Joint stage: an auxiliary loss on the tone branch alone (weight × MSE(curve(x), y) on the
    # patch) and a learning-rate multiplier for the global branch (``model.glob``).
    "tone_aux_weight": 0.0,
    "global_lr_mult": 1.0,
    "make_pairs": True,
    "prepare_only": False,
    "progress": True,
}


# Floor of the per-image / per-patch MSE inside the log losses: 40 dB. Without it, near-perfect
# patches (flat black borders) would get an unbounded weight (the gradient of log MSE is ∇MSE / MSE).
LOG_EPS = 1e-4


def log_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``log(MSE_i + LOG_EPS)`` (MSE of each sample over its other dims)."""
    err = (pred - target).square().flatten(1).mean(dim=1)
    return torch.log(err + LOG_EPS).mean()


# The values of the ``loss`` (patch stage) and ``tone_loss`` (tone stage) config keys.
LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "log_l2": log_mse}
TONE_LOSSES = {"mse": F.mse_loss, "log_mse": log_mse}


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config")
    known, _ = pre.parse_known_args(argv)
    cfg = dict(DEFAULTS)
    if known.config:
        with open(known.config) as fh:
            loaded = yaml.safe_load(fh) or {}
        unknown = set(loaded) - set(DEFAULTS)
        if unknown:
            raise SystemExit(f"unknown config keys: {sorted(unknown)}")
        cfg.update(loaded)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config (its values become the defaults)")
    for k, v in cfg.items():
        if isinstance(v, bool):
            p.add_argument(f"--{k.replace('_', '-')}", dest=k, default=v,
                           action=argparse.BooleanOptionalAction)
        elif isinstance(v, (dict, list)):
            p.add_argument(f"--{k.replace('_', '-')}", dest=k, default=v, type=yaml.safe_load)
        else:
            p.add_argument(f"--{k.replace('_', '-')}", dest=k, default=v,
                           type=type(v) if v is not None else str)
    args = vars(p.parse_args(argv))
    args.pop("config", None)
    # Checked here: the loss branches below would otherwise fall back to MSE on a typo.
    for key, allowed in (("loss", LOSSES), ("tone_loss", TONE_LOSSES)):
        if args[key] not in allowed:
            *head, last = allowed
            raise SystemExit(f"{key} must be {', '.join(head)} or {last}, not {args[key]!r}")
    args["config_file"] = known.config
    return args


# ----------------------------------------------------------------------------------- data
def split_records(cfg: dict[str, Any]) -> dict[str, list]:
    """Patient-grouped split of BUS-BRA, then the first n of each split (seeded order)."""
    root = cfg["data_root"] or find_shared_data("bus-bra")
    if root is None:
        raise SystemExit("BUS-BRA not found: set data_root or PHOTORAD_DATA")
    records = load_records(root)
    tr, va, te = train_val_test_split(records, seed=cfg["split_seed"])
    rng = np.random.default_rng(cfg["split_seed"])
    out = {}
    for name, idx, n in (("train", tr, cfg["n_train"]), ("val", va, cfg["n_val"]),
                         ("test", te, cfg["n_test"])):
        idx = rng.permutation(idx)[:n]
        out[name] = [records[i] for i in sorted(idx)]
    groups = {k: {r.group for r in v} for k, v in out.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    return out


def prepare_pairs(cfg: dict[str, Any]) -> Path:
    folder = Path(cfg["pairs"])
    have = {r["id"] for r in read_pairs_csv(folder)} if (folder / "pairs.csv").is_file() else set()
    splits = split_records(cfg)
    seeds = {"train": 100_000, "val": 200_000, "test": 300_000}
    for name, recs in splits.items():
        todo = [r for r in recs if r.id not in have]
        if todo:
            print(f"simulating {len(todo)} {name} pairs ({cfg['preset']}) → {folder}", flush=True)
        make_pairs(recs, folder, split=name, preset=cfg["preset"],
                   seed=cfg["seed"] + seeds[name], photo_size=tuple(cfg["photo_size"]))
    return folder


# ----------------------------------------------------------------------------------- training
def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 − mean SSIM with an 11×11 Gaussian window (σ 1.5), data range 1."""
    g = torch.exp(-((torch.arange(11, dtype=x.dtype, device=x.device) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = torch.outer(g, g).reshape(1, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return 1.0 - s.mean()


def lr_at(progress: float, cfg: dict[str, Any]) -> float:
    warm = float(cfg.get("warmup", 0.02))
    if progress < warm:
        return cfg["lr"] * max(progress / warm, 0.05)
    t = min(1.0, (progress - warm) / (1 - warm))
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model: torch.nn.Module, pairs: list, device: torch.device) -> float:
    model.eval()
    vals = []
    for p in pairs:
        x = torch.from_numpy(p.rect)[None, None].to(device)
        y = model(x).clamp(0, 1)[0, 0].float().cpu().numpy()
        vals.append(psnr(p.orig, y, data_range=1.0))
    model.train()
    return float(np.mean(vals))


def whole_image_contexts(model: torch.nn.Module, pairs: list) -> list[np.ndarray] | None:
    """Each pair's whole-image context (``model.context``), or ``None`` for plain models.

    Computed once: the context depends only on the input image, not on the weights.
    """
    fn = getattr(model, "context", None)
    if not callable(fn):
        return None
    with torch.no_grad():
        return [fn(torch.from_numpy(p.rect)[None, None])[0].cpu().numpy() for p in pairs]


def _global_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    glob = getattr(model, "glob", None)
    return list(glob.parameters()) if isinstance(glob, torch.nn.Module) else []


@torch.no_grad()
def evaluate_tone(model: torch.nn.Module, pairs: list, contexts: list[np.ndarray]) -> float:
    """Mean PSNR of the tone branch alone (``model.tone_curve``) on whole images."""
    vals = []
    for p, c in zip(pairs, contexts, strict=True):
        x = torch.from_numpy(p.rect)[None, None]
        y = model.tone_curve(x, torch.from_numpy(c)[None]).clamp(0, 1)[0, 0].numpy()
        vals.append(psnr(p.orig, y, data_range=1.0))
    return float(np.mean(vals))


def train_tone(model: torch.nn.Module, pairs: list, contexts: list[np.ndarray], val_pairs: list,
               cfg: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """Tone-only stage: fit the global branch's curve on pixels of whole training images.

    Each step takes ``tone_batch`` images, their whole-image contexts (with a random one of the
    8 flips/rotations — the curve must not depend on orientation) and ``tone_pixels`` random
    pixels of each, and minimises MSE(tone_curve(pixels), original pixels): the global tone fit
    is a conditional mean, so MSE (not L1) is the loss that matches PSNR. Returns a summary; the
    model is left with the global-branch state that scored best on val.
    """
    rng = np.random.default_rng(seed)
    val_ctx = whole_image_contexts(model, val_pairs)
    params = _global_params(model)
    opt = torch.optim.Adam(params, lr=cfg["tone_lr"], weight_decay=cfg["tone_weight_decay"])
    n, npx, steps = cfg["tone_batch"], cfg["tone_pixels"], int(cfg["tone_steps"])
    best, best_state, best_step = evaluate_tone(model, val_pairs, val_ctx), None, 0
    start = best
    for step in range(1, steps + 1):
        lr = cfg["tone_lr"] * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(len(pairs), size=n)
        xs = np.empty((n, 1, 1, npx), np.float32)
        ys = np.empty((n, 1, 1, npx), np.float32)
        cs = np.empty((n, *contexts[0].shape), np.float32)
        for k, i in enumerate(idx):
            pix = rng.integers(pairs[i].rect.size, size=npx)
            xs[k, 0, 0], ys[k, 0, 0] = pairs[i].rect.ravel()[pix], pairs[i].orig.ravel()[pix]
            c = np.rot90(contexts[i], int(rng.integers(4)), axes=(-2, -1))
            cs[k] = c[..., ::-1] if rng.integers(2) else c
        pred = model.tone_curve(torch.from_numpy(xs), torch.from_numpy(cs))
        yt = torch.from_numpy(ys)
        loss = TONE_LOSSES[cfg["tone_loss"]](pred, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg["tone_val_every"] == 0 or step == steps:
            vp = evaluate_tone(model, val_pairs, val_ctx)
            if vp > best:
                best, best_step = vp, step
                best_state = {k: v.detach().clone() for k, v in model.glob.state_dict().items()}
    if best_state is not None:
        model.glob.load_state_dict(best_state)
    return {"tone_val_psnr_start": round(start, 3), "tone_val_psnr": round(best, 3),
            "tone_best_step": best_step, "tone_steps": steps}


def save(model: torch.nn.Module, path: Path, cfg: dict[str, Any], metrics: dict[str, Any],
         data_hash: str) -> None:
    net = model.module if hasattr(model, "module") else model
    meta = CheckpointMeta(
        architecture=cfg["model"], model_kwargs=dict(cfg["model_kwargs"]), task="restore",
        config=cfg, metrics=metrics, data_hash=data_hash,
        extra={"name": f"{cfg['model']}-{cfg['preset']}", "input": "rectified grey [0,1]"},
    )
    save_checkpoint(path, net, meta)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    distributed = "LOCAL_RANK" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        local = int(os.environ["LOCAL_RANK"])
    else:
        rank, local = 0, 0
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    out = Path(cfg["out"])

    if rank == 0 and cfg["make_pairs"]:
        prepare_pairs(cfg)
    if distributed:
        dist.barrier()
    if cfg["prepare_only"]:
        return 0
    data_hash = hash_folder(cfg["pairs"], pattern="*/*.png")
    if rank == 0:
        write_run_info(out, cfg, data_hashes={"pairs": data_hash})

    torch.manual_seed(cfg["seed"] + rank)
    train_pairs = load_pairs(cfg["pairs"], split="train")
    val_pairs = load_pairs(cfg["pairs"], split="val", limit=cfg["n_val_eval"])
    model = create_model(cfg["model"], **cfg["model_kwargs"]).to(device)
    contexts = whole_image_contexts(model, train_pairs)
    sampler = PatchSampler(train_pairs, patch=cfg["patch"], seed=cfg["seed"] * 1000 + rank,
                           contexts=contexts)
    model.train()
    glob_params = _global_params(model) if float(cfg["global_lr_mult"]) != 1.0 else []
    if glob_params:
        gids = {id(p) for p in glob_params}
        groups = [{"params": [p for p in model.parameters() if id(p) not in gids], "mult": 1.0},
                  {"params": glob_params, "mult": float(cfg["global_lr_mult"])}]
        opt = torch.optim.Adam(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    tone_aux = float(cfg["tone_aux_weight"]) > 0 and callable(getattr(model, "tone_curve", None))
    use_amp = bool(cfg["amp"]) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, best, elapsed_before, cpu_before = 0, -math.inf, 0.0, 0.0
    resume_path = out / "resume.pt"
    if cfg["resume"] and resume_path.is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, best = int(state["step"]), float(state["best"])
        elapsed_before = float(state["elapsed"])
        cpu_before = float(state.get("cpu", 0.0))
        sampler.rng = np.random.default_rng(cfg["seed"] * 1000 + rank + step)
        if rank == 0:
            print(f"resumed from step {step} (best val PSNR {best:.2f} dB)")
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local] if device.type == "cuda" else None
        )

    log_path = out / "log.csv"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        new_log = not (cfg["resume"] and log_path.is_file())
        log_fh = log_path.open("w" if new_log else "a", newline="")
        log = csv.writer(log_fh)
        if new_log:
            log.writerow(["step", "seconds", "lr", "loss", "val_psnr"])
    budget = float(cfg["max_minutes"]) * 60.0
    cpu_budget = float(cfg["max_cpu_minutes"]) * 60.0
    t0 = time.perf_counter() - elapsed_before
    c0 = time.process_time() - cpu_before
    bar = None
    if rank == 0 and cfg["progress"]:
        from tqdm import tqdm

        bar = tqdm(total=cfg["steps"], initial=step, desc=cfg["model"], file=sys.stdout,
                   mininterval=10.0)
    running = 0.0
    tone_summary: dict[str, Any] = {}
    if int(cfg["tone_steps"]) > 0 and step == 0:
        if contexts is None or not callable(getattr(model, "tone_curve", None)):
            raise SystemExit(f"tone_steps needs a context model with tone_curve, not {cfg['model']}")
        tone_summary = train_tone(model, train_pairs, contexts, val_pairs, cfg,
                                  seed=cfg["seed"] * 1000 + rank + 7)
        if rank == 0:
            print(f"tone stage: val PSNR of the tone branch {tone_summary['tone_val_psnr_start']:.2f}"
                  f" → {tone_summary['tone_val_psnr']:.2f} dB (best step"
                  f" {tone_summary['tone_best_step']}), {time.process_time() - c0:.0f} s CPU",
                  flush=True)
    while True:
        elapsed = time.perf_counter() - t0
        cpu_used = time.process_time() - c0
        progress = max(step / cfg["steps"], elapsed / budget if budget > 0 else 0.0,
                       cpu_used / cpu_budget if cpu_budget > 0 else 0.0)
        done = progress >= 1.0
        # After a tone stage, step 0 is validated too: if the joint stage never beats the tone
        # branch alone on val, the tone-stage model is the one kept (selection on val only).
        if (step > 0 or tone_summary) and (step % cfg["val_every"] == 0 or done):
            if rank == 0:
                net = model.module if distributed else model
                vp = evaluate(net, val_pairs, device)
                lr = opt.param_groups[0]["lr"]
                log.writerow([step, round(elapsed, 1), f"{lr:.3g}",
                              f"{running / max(1, cfg['val_every']):.5f}", f"{vp:.3f}"])
                log_fh.flush()
                running = 0.0
                cpu = time.process_time() - c0
                metrics = {"val_psnr": vp, "step": step, "train_seconds": round(elapsed, 1),
                           "train_cpu_seconds": round(cpu, 1),
                           "steps_per_second": round(step / max(elapsed, 1e-9), 3),
                           "steps_per_cpu_second": round(step / max(cpu, 1e-9), 4),
                           "threads": torch.get_num_threads(), **tone_summary,
                           "budget": {"steps": cfg["steps"], "max_minutes": cfg["max_minutes"],
                                      "max_cpu_minutes": cfg["max_cpu_minutes"]}}
                if vp > best:
                    best = vp
                    save(net, out / "best.safetensors", cfg, metrics, data_hash)
                save(net, out / "last.safetensors", cfg, metrics, data_hash)
                torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "step": step,
                            "best": best, "elapsed": elapsed, "cpu": cpu}, resume_path)
                print(f"step {step}: val PSNR {vp:.2f} dB (best {best:.2f}), {elapsed:.0f} s wall,"
                      f" {cpu:.0f} s CPU", flush=True)
        if done:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, cfg) * g.get("mult", 1.0)
        xb, yb, *cb = sampler.batch(cfg["batch_size"])
        x = torch.from_numpy(xb).to(device, non_blocking=True)
        y = torch.from_numpy(yb).to(device, non_blocking=True)
        extra = [torch.from_numpy(cb[0]).to(device, non_blocking=True)] if cb else []
        with torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu"
                            else torch.float16, enabled=use_amp):
            pred = model(x, *extra)
        pred = pred.float()
        loss = LOSSES[cfg["loss"]](pred, y)
        if cfg["ssim_weight"] > 0:
            loss = loss + cfg["ssim_weight"] * ssim_loss(pred, y)
        if tone_aux:
            net = model.module if distributed else model
            loss = loss + cfg["tone_aux_weight"] * F.mse_loss(net.tone_curve(x, *extra), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg["grad_clip"] > 0:
            # Unnormalised residual U-Nets can blow up early at high learning rates.
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        scaler.step(opt)
        scaler.update()
        running += float(loss.detach())
        step += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if rank == 0:
        log_fh.close()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"done: {step} steps in {wall:.0f} s wall / {cpu:.0f} s CPU"
              f" ({step / max(wall, 1e-9):.2f} steps/s, {torch.get_num_threads()} threads);"
              f" best val PSNR {best:.2f} dB → {out / 'best.safetensors'}")
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
