"""Bounded load test of ``photorad serve`` on loopback: latency, throughput, errors, peak RSS.

Usage::

    python eval/bench_serve.py --out results/serve                      # 200 requests at 1, 4, 8
    python eval/bench_serve.py --requests 40 --concurrency 1,4,8,16 --size 4032x3024
    python eval/bench_serve.py -c eval/configs/bench_serve.yaml         # YAML → the same options

Starts ``photorad serve`` as a child process (random API key, free loopback port), builds
simulated phone photos of the embedded sample images (``photorad.simulate``, JPEG q92), and
sends ``--requests`` ``POST /v1/analyze`` requests at each concurrency level, each with its own
``X-Request-ID``. For every response it checks that the id in the header and in the JSON is the
one sent (no lost or mixed-up responses). Prints p50/p95/p99 latency of the 200s, throughput,
counts by status, client-side failures, and the server's peak RSS (``VmHWM`` of the child).
Overload shows up as 503s only when concurrency exceeds ``--max-active`` + ``--max-waiting``.
Nothing is asserted; figures are printed and written as JSON + Markdown with run_info.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config", type=Path, default=None)
    known, _ = pre.parse_known_args(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[pre])
    p.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    p.add_argument("--concurrency", default="1,4,8", help="comma-separated levels (default 1,4,8)")
    p.add_argument("--size", default="4032x3024", help="photo WxH (default 4032x3024 = 12 MP)")
    p.add_argument("--preset", default="typical", help="simulate preset (default typical)")
    p.add_argument("--photos", type=int, default=4, help="distinct photos, sent round-robin")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corners", action="store_true",
                   help="send the true corners (skips detection) instead of letting it detect")
    p.add_argument("--max-active", type=int, default=1)
    p.add_argument("--max-waiting", type=int, default=8)
    p.add_argument("--server-timeout", type=float, default=60.0, help="server per-request limit")
    p.add_argument("--client-timeout", type=float, default=300.0, help="client timeout (s)")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--restorer", type=Path, default=None, help="restorer checkpoint")
    p.add_argument("--classifier", type=Path, default=None, help="classifier checkpoint")
    p.add_argument("--random-restorer", default=None, metavar="ARCH",
                   help="stand-in restorer: architecture ARCH with seeded random weights (speed "
                        "does not depend on the weights; for when no trained restorer ships)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured requests first")
    p.add_argument("--out", type=Path, default=None, help="write bench.json/bench.md here")
    if known.config is not None:
        import yaml

        cfg = yaml.safe_load(known.config.read_text()) or {}
        p.set_defaults(**{k.replace("-", "_"): v for k, v in cfg.items()})
    args = p.parse_args(argv)
    args.levels = [int(v) for v in str(args.concurrency).split(",") if v.strip()]
    w, h = (int(v) for v in str(args.size).lower().split("x"))
    args.wh = (w, h)
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_photos(n: int, *, size: tuple[int, int], preset: str, seed: int
                ) -> list[tuple[bytes, list[list[float]]]]:
    """``n`` simulated phone photos (JPEG bytes, true corners) of the embedded sample images."""
    from photorad.data.bus_bra import load_records
    from photorad.data.paths import sample_dir
    from photorad.io import encode_jpeg, load_original
    from photorad.simulate import simulate_photo

    recs = load_records(sample_dir())
    out = []
    for i in range(n):
        res = simulate_photo(load_original(recs[i % len(recs)].path), preset=preset,
                             seed=seed + i, size=size)
        out.append((encode_jpeg(res.photo, quality=92), np.asarray(res.corners).tolist()))
    return out


def random_checkpoint(arch: str, folder: Path, *, seed: int) -> Path:
    """Seeded random-init restorer checkpoint of architecture ``arch`` (a timing stand-in)."""
    import torch

    from photorad.models import create_model
    from photorad.models.checkpoint import CheckpointMeta, save_checkpoint

    torch.manual_seed(seed)
    meta = CheckpointMeta(arch, {}, "restore", extra={"name": f"{arch}-random-init-seed{seed}"})
    return save_checkpoint(folder / f"{arch}_random.safetensors", create_model(arch), meta)


def peak_rss_mb(pid: int) -> dict[str, float | None]:
    """Current and peak resident memory of a process in MB (Linux /proc)."""
    out: dict[str, float | None] = {"rss_mb": None, "peak_rss_mb": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


class Server:
    """``photorad serve`` in a child process on a free loopback port."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.key = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "photorad", "serve", "--port", str(self.port),
               "--max-active", str(args.max_active), "--max-waiting", str(args.max_waiting),
               "--timeout", str(args.server_timeout), "--log-level", "warning"]
        if args.torch_threads:
            cmd += ["--torch-threads", str(args.torch_threads)]
        if args.restorer:
            cmd += ["--restorer", str(args.restorer)]
        if args.classifier:
            cmd += ["--classifier", str(args.classifier)]
        env = dict(os.environ, PHOTORAD_API_KEY=self.key)
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_serve_{self.port}.log",
                        "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 300.0) -> float:
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"server not ready after {timeout_s} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def one_request(client, url: str, key: str, photo: bytes, corners: list | None) -> dict[str, Any]:
    import httpx

    rid = uuid.uuid4().hex
    data = {"corners": json.dumps(corners)} if corners is not None else None
    t0 = time.perf_counter()
    try:
        r = client.post(url + "/v1/analyze", files={"photo": ("p.jpg", photo, "image/jpeg")},
                        data=data, headers={"X-API-Key": key, "X-Request-ID": rid})
    except httpx.HTTPError as exc:
        return {"status": f"client-{type(exc).__name__}", "ms": (time.perf_counter() - t0) * 1e3,
                "id_ok": False}
    ms = (time.perf_counter() - t0) * 1e3
    id_ok = r.headers.get("x-request-id") == rid
    try:
        body = r.json()
        id_ok = id_ok and body.get("request_id") == rid
    except ValueError:
        id_ok = False
    out: dict[str, Any] = {"status": r.status_code, "ms": ms, "id_ok": id_ok}
    if r.status_code == 200:
        out["server_ms"] = body.get("timings_ms", {})
    return out


def run_level(server: Server, photos, n: int, conc: int, *, corners: bool,
              timeout_s: float) -> dict[str, Any]:
    import httpx

    peak = {"rss": 0.0}
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], peak_rss_mb(server.proc.pid)["rss_mb"] or 0.0)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    t0 = time.perf_counter()
    with httpx.Client(timeout=timeout_s, limits=limits) as client, ThreadPoolExecutor(conc) as ex:
        futs = [ex.submit(one_request, client, server.url, server.key, photos[i % len(photos)][0],
                          photos[i % len(photos)][1] if corners else None) for i in range(n)]
        results = [f.result() for f in futs]
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    ok = [r for r in results if r["status"] == 200]
    lat = np.array([r["ms"] for r in ok]) if ok else np.zeros(0)
    stages: dict[str, float] = {}
    for key in ("decode", "detect", "validate", "quality", "warp", "restore", "classify", "total",
                "encode"):
        vals = [r["server_ms"][key] for r in ok if key in r["server_ms"]]
        if vals:
            stages[key] = round(float(np.median(vals)), 1)
    by_status = Counter(str(r["status"]) for r in results)
    return {
        "concurrency": conc,
        "requests": n,
        "ok": len(ok),
        "by_status": dict(sorted(by_status.items())),
        "other_5xx": sum(v for k, v in by_status.items() if k.startswith("5") and k != "503"),
        "id_mismatch": sum(1 for r in results if isinstance(r["status"], int) and not r["id_ok"]),
        "client_failures": sum(1 for r in results if not isinstance(r["status"], int)),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "throughput_rps": round(len(ok) / wall, 3),
        "wall_s": round(wall, 2),
        "server_stage_median_ms": stages,
        "server_rss_peak_sampled_mb": round(peak["rss"], 1),
    }


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# photorad serve load test ({meta['size']} photos, {meta['preset']} preset, "
        f"{'given corners' if meta['corners'] else 'detected corners'})",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu_count']} CPUs, load average before start {meta['loadavg_before']}; "
        f"server --max-active {meta['max_active']} --max-waiting {meta['max_waiting']}; "
        f"models {meta['models']}  ",
        f"Server peak RSS (VmHWM): {meta['server_peak_rss_mb']} MB; ready after "
        f"{meta['startup_s']} s.",
        "",
        "| conc | req | 200 | by status | other 5xx | id mismatch | client fail | p50 ms | p95 ms "
        "| p99 ms | req/s | server median stages ms |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['by_status']} | "
            f"{r['other_5xx']} | {r['id_mismatch']} | {r['client_failures']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['p99_ms']} | {r['throughput_rps']} | "
            f"{r['server_stage_median_ms']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import httpx

    args = parse_args(argv)
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"making {args.photos} simulated {args.size} photos …", flush=True)
    photos = make_photos(args.photos, size=args.wh, preset=args.preset, seed=args.seed)
    tmp = None
    if args.random_restorer:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
        args.restorer = random_checkpoint(args.random_restorer, tmp, seed=args.seed)
    print(f"photo JPEG sizes: {[round(len(p) / 1e6, 2) for p, _ in photos]} MB", flush=True)
    server = Server(args)
    rows = []
    try:
        startup = server.wait_ready()
        models = httpx.get(server.url + "/v1/models", headers={"X-API-Key": server.key}).json()
        print(f"server ready in {startup:.1f} s; models "
              f"{ {k: v['name'] for k, v in models['models'].items()} }", flush=True)
        with httpx.Client(timeout=args.client_timeout) as c:
            for i in range(args.warmup):
                r = one_request(c, server.url, server.key, photos[i % len(photos)][0],
                                photos[i % len(photos)][1] if args.corners else None)
                print(f"warm-up {i + 1}: {r['status']} {r['ms']:.0f} ms", flush=True)
        for conc in args.levels:
            row = run_level(server, photos, args.requests, conc, corners=args.corners,
                            timeout_s=args.client_timeout)
            rows.append(row)
            print(json.dumps(row), flush=True)
        rss = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "command": " ".join(["python", "eval/bench_serve.py", *(argv or sys.argv[1:])]),
        "size": args.size, "preset": args.preset, "corners": args.corners,
        "max_active": args.max_active, "max_waiting": args.max_waiting,
        "cpu_count": os.cpu_count(), "loadavg_before": loadavg,
        "server_peak_rss_mb": round(rss["peak_rss_mb"], 1) if rss["peak_rss_mb"] else None,
        "startup_s": round(startup, 1),
        "models": {k: {"name": v["name"], "sha256": v["sha256"]}
                   for k, v in models["models"].items()},
    }
    md = to_markdown(rows, meta)
    print(md)
    if args.out is not None:
        from photorad.provenance import write_run_info

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2)
                                             + "\n")
        (args.out / "bench.md").write_text(md)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        write_run_info(args.out, config,
                       data_hashes={"photos_jpeg": _hash_photos(photos)})
        print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


def _hash_photos(photos) -> str:
    import hashlib

    h = hashlib.sha256()
    for p, _ in photos:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
