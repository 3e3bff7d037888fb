"""`photorad export-onnx`: write a restorer checkpoint as an ONNX graph (dynamic B, H, W)."""

from __future__ import annotations

import argparse
import json

NAME = "export-onnx"
HELP = "export a restorer checkpoint to ONNX and check ONNX Runtime against PyTorch"
DESCRIPTION = """\
Export a restoration model to ONNX (input "image" B×1×H×W float32 in [0, 1], output "restored",
dynamic batch/height/width; Conv+BN folded). The export is verified with ONNX Runtime on a random
image: the command fails if the largest difference from PyTorch exceeds --tol.

  photorad export-onnx -o restorer.onnx                 # the shipped CPU restorer
  photorad export-onnx --model best.safetensors -o best.onnx"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", required=True, help="output .onnx path")
    p.add_argument("--model", metavar="CKPT", help="restorer .safetensors (default: shipped CPU)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tol", type=float, default=1e-4, help="max |ORT − PyTorch| accepted")
    p.add_argument("--check-size", default="160x120", help="WxH of the verification image")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from photorad.cli._util import parse_size
    from photorad.errors import ModelError
    from photorad.models.checkpoint import load_checkpoint
    from photorad.models.weights import shipped_path
    from photorad.provenance import sha256_file
    from photorad.restore import export_onnx, fuse_conv_bn

    path = args.model or shipped_path("restorer")
    model, meta = load_checkpoint(path, task="restore")
    model = fuse_conv_bn(model)
    export_onnx(model, args.out, opset=args.opset)
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("onnxruntime is not installed; cannot verify the export") from None
    w, h = parse_size(args.check_size)
    x = np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x})[0]
    err = float(np.abs(got - ref).max())
    summary = {
        "onnx": str(args.out),
        "onnx_sha256": sha256_file(args.out),
        "source": str(path),
        "source_sha256": meta.sha256,
        "architecture": meta.architecture,
        "max_abs_diff": err,
        "tolerance": args.tol,
    }
    print(json.dumps(summary, indent=2))
    if err > args.tol:
        raise ModelError(f"ONNX Runtime differs from PyTorch by {err:.3g} > {args.tol:g}")
    return 0
