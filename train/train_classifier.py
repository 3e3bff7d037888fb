#!/usr/bin/env python
"""Train a benign/malignant classifier on BUS-BRA originals (patient-grouped split).

    python train/train_classifier.py -c train/configs/cls_cpu.yaml [--epochs 5] [--out DIR]
    torchrun --nproc_per_node 4 train/train_classifier.py -c train/configs/cls_xception.yaml

The YAML file supplies the argparse defaults; command-line options override it. Writes to
``--out``: ``best.safetensors`` / ``last.safetensors`` (+ JSON sidecars), ``history.csv``,
``split.json`` (train/val/test image IDs and the test patients), ``metrics.json`` (held-out
test AUROC with a bootstrap CI) and ``run_info.json`` (resolved config, versions, git SHA, data
hash). Patients of the embedded 20-image sample are always kept out of training and validation
(they are added to the test set), so tests on the sample stay honest.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from photorad import DISCLAIMER
from photorad.classify import PreprocessSpec, TrainConfig, fit, predict_proba
from photorad.data.bus_bra import load_records, train_val_test_split
from photorad.data.cls_dataset import load_cls_images
from photorad.data.paths import find_shared_data, sample_dir
from photorad.errors import ConfigError, PhotoradError
from photorad.metrics import auroc, bootstrap_ci
from photorad.models.checkpoint import CheckpointMeta, save_checkpoint, sidecar_path
from photorad.provenance import hash_files, sha256_file, write_run_info

TRAIN_KEYS = ("arch", "model_kwargs", "epochs", "batch_size", "lr", "weight_decay",
              "warmup_epochs", "patience", "balance", "num_workers", "device", "augment")
PREP_KEYS = ("size", "roi", "margin", "mean", "std")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " " + DISCLAIMER)
    p.add_argument("-c", "--config", help="YAML config (its keys become the defaults)")
    p.add_argument("--name", default="classifier", help="model name stored in the sidecar")
    p.add_argument("--data-root", default=None, help="BUS-BRA folder (default: ../shared/data)")
    p.add_argument("--out", default="runs/classifier", help="output folder")
    p.add_argument("--arch", default="sepnet", help="registry name: sepnet or xception")
    p.add_argument("--size", type=int, default=128, help="model input side, px")
    p.add_argument("--roi", action=argparse.BooleanOptionalAction, default=True,
                   help="crop the lesion ROI (BBOX + margin); --no-roi: full image")
    p.add_argument("--margin", type=float, default=0.25, help="ROI margin, fraction of box side")
    p.add_argument("--boxes", choices=("dataset", "localizer"), default="dataset",
                   help="ROI boxes: the dataset's BBOX, or the shipped lesion localizer's box on "
                        "each original (so that training crops match what the pipeline crops)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience, epochs")
    p.add_argument("--balance", choices=("loss", "sampler", "none"), default="loss")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--limit", type=int, default=0, help="use only N images (smoke tests)")
    p.add_argument("--pretrained", default=None, help="local weights to start from (no download)")
    p.add_argument("--pretrained-sha256", default=None, help="required SHA-256 of --pretrained")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    pre, _ = p.parse_known_args(argv)
    extra: dict[str, Any] = {}
    if pre.config:
        try:
            cfg = yaml.safe_load(Path(pre.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {pre.config}: {exc}") from None
        known = {a.dest for a in p._actions}
        defaults = {k.replace("-", "_"): v for k, v in cfg.items()}
        for k in list(defaults):
            if k not in known:
                extra[k] = defaults.pop(k)
        p.set_defaults(**defaults)
    args = p.parse_args(argv)
    args.model_kwargs = extra.pop("model_kwargs", {}) or {}
    args.augment = extra.pop("augment", {}) or {}
    args.warmup_epochs = extra.pop("warmup_epochs", 1)
    args.num_workers = extra.pop("num_workers", 0)
    if extra:
        raise ConfigError(f"unknown config key(s): {', '.join(sorted(extra))}")
    return args


def sample_patients() -> set[str]:
    return {r.group for r in load_records(sample_dir())}


def split_records(records, *, val_fraction: float, test_fraction: float, seed: int):
    """Patient-grouped split; patients of the embedded sample always go to the test set."""
    held = sample_patients()
    keep = [i for i, r in enumerate(records) if r.group not in held]
    forced = [i for i, r in enumerate(records) if r.group in held]
    sub = [records[i] for i in keep]
    tr, va, te = train_val_test_split(sub, val_fraction=val_fraction,
                                      test_fraction=test_fraction, seed=seed)
    keep_a = np.asarray(keep)
    return keep_a[tr], keep_a[va], np.concatenate([keep_a[te], np.asarray(forced, dtype=int)])


def localizer_boxes(records, *, progress: bool):
    """The records with ``bbox`` replaced by the shipped localizer's most probable lesion box
    (whatever its confidence; the dataset's box where it finds no area at all)."""
    import dataclasses

    from photorad.io import load_original
    from photorad.lesion import default_localizer, lesion_from_prob

    loc = default_localizer()
    out, missing = [], 0
    for i, r in enumerate(records):
        best = lesion_from_prob(loc.prob(load_original(r.path)), min_confidence=0.0,
                                min_area_fraction=0.0)
        if best.lesion is None:
            missing += 1
            out.append(r)
        else:
            out.append(dataclasses.replace(r, bbox=best.lesion.box))
        if progress and (i + 1) % 300 == 0:
            print(f"localizer boxes {i + 1}/{len(records)}", flush=True)
    print(f"localizer boxes: {len(records) - missing} found, {missing} kept the dataset's box",
          flush=True)
    return out


def _setup_distributed():
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    ddp_device = _setup_distributed()
    rank = torch.distributed.get_rank() if ddp_device else 0
    torch.set_num_threads(max(1, args.threads))
    root = Path(args.data_root) if args.data_root else find_shared_data("bus-bra")
    if root is None:
        raise ConfigError("BUS-BRA not found: pass --data-root or set PHOTORAD_DATA")
    records = load_records(root)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        records = [records[i] for i in sorted(rng.choice(len(records), args.limit, replace=False))]
    spec = PreprocessSpec.from_dict({k: getattr(args, k) for k in PREP_KEYS if hasattr(args, k)})
    tcfg = TrainConfig.from_dict({k: getattr(args, k) for k in TRAIN_KEYS})
    if ddp_device:
        tcfg.device = ddp_device
    tr, va, te = split_records(records, val_fraction=args.val_fraction,
                               test_fraction=args.test_fraction, seed=args.seed)
    if args.boxes == "localizer" and spec.roi:
        records = localizer_boxes(records, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = load_cls_images(records, spec=spec, progress=not args.no_progress)
    labels = np.array([r.label for r in records])
    init = None
    if args.pretrained:
        from photorad.models import create_model
        from photorad.models.classifier import load_pretrained

        if not args.pretrained_sha256:
            raise ConfigError("--pretrained needs --pretrained-sha256 (weights are hash-checked)")
        net = create_model(tcfg.arch, **tcfg.model_kwargs)
        report = load_pretrained(net, args.pretrained, sha256=args.pretrained_sha256)
        print(f"pretrained: {len(report['loaded'])} loaded, {len(report['adapted'])} adapted, "
              f"{len(report['skipped'])} skipped", file=sys.stderr)
        init = net.state_dict()

    hist_rows: list[dict] = []

    def on_epoch(row: dict) -> None:
        hist_rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    res = fit(images[tr], labels[tr], images[va], labels[va], cfg=tcfg, spec=spec,
              seed=args.seed, init_state=init, progress=not args.no_progress,
              on_epoch=on_epoch)
    if rank != 0:
        torch.distributed.destroy_process_group()
        return 0
    p_test = predict_proba(res.model, images[te], spec=spec)
    est, lo, hi = bootstrap_ci(auroc, labels[te], p_test, stratify=labels[te], seed=args.seed)
    sample_ids = {r.id for r in load_records(sample_dir())}
    is_sample = np.array([records[i].id in sample_ids for i in te])
    metrics = {
        "test_auroc": est, "test_auroc_ci95": [lo, hi], "n_test": int(len(te)),
        "test_auroc_without_sample_patients": auroc(labels[te][~is_sample], p_test[~is_sample]),
        "best_epoch": res.best_epoch, "best_val_auroc": res.best_val_auroc,
        "epochs_run": len(res.history),
    }
    split = {
        "train": [records[i].id for i in tr], "val": [records[i].id for i in va],
        "test": [records[i].id for i in te],
        "test_patients": sorted({records[i].group for i in te}, key=lambda s: int(s) if s.isdigit() else s),
        "sample_patients_held_out": sorted(sample_patients()),
    }
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out / "history.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(hist_rows[0]))
        w.writeheader()
        w.writerows(hist_rows)
    data_hash = hash_files([r.path for r in records], root=root)
    config = {**{k: v for k, v in vars(args).items()}, "data_root": str(root),
              "preprocess": spec.to_dict(), "train": tcfg.__dict__}

    def save(name: str, state: dict) -> Path:
        from photorad.models import create_model

        net = create_model(tcfg.arch, **tcfg.model_kwargs)
        net.load_state_dict(state)
        meta = CheckpointMeta(
            architecture=tcfg.arch, model_kwargs=tcfg.model_kwargs, task="classify",
            config=config, metrics=metrics, data_hash=data_hash,
            extra={"name": args.name, "preprocess": spec.to_dict(),
                   "test_patients": split["test_patients"],
                   "sample_patients_held_out": split["sample_patients_held_out"],
                   "output": "logit of malignant; score = sigmoid(logit)",
                   "disclaimer": DISCLAIMER},
        )
        path = save_checkpoint(out / f"{name}.safetensors", net, meta)
        # The sidecar carries the weights' own hash so loaders can check the pair belongs together.
        side = sidecar_path(path)
        doc = json.loads(side.read_text())
        doc["extra"]["weights_sha256"] = sha256_file(path)
        tmp = side.with_name(f".{side.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, side)
        return path

    best = save("best", {k: v for k, v in res.model.state_dict().items()})
    save("last", res.last_state)
    write_run_info(out, config, data_hashes={"bus-bra": data_hash})
    print(json.dumps({"best": str(best), **metrics}, indent=2))
    if ddp_device:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PhotoradError as exc:
        print(f"train_classifier: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
