"""`photorad serve`: the inference API and the phone web page (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
from pathlib import Path

from photorad.cli._util import add_model_arguments

NAME = "serve"
HELP = "run the inference API and phone web page (needs an API key; see docs/serve.md)"
DESCRIPTION = """\
Run the photorad inference service: POST /v1/analyze, POST /v1/rectify, GET /v1/models,
GET /healthz, GET /readyz, the phone web page at / and offline API docs at /docs.

Authentication: set PHOTORAD_API_KEY (one key or several, comma-separated) or pass
--api-keys-file FILE (one key per line); clients send the X-API-Key header. Without a key the
server refuses to start, unless --insecure-no-auth is given for a loopback host.

Example:
  PHOTORAD_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
    photorad serve --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem

Research use only — not a diagnosis."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-keys-file", type=Path, default=None,
                   help="file with one API key per line (in addition to $PHOTORAD_API_KEY)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="no API key (only allowed with a loopback --host; for local testing)")
    p.add_argument("--ssl-certfile", type=Path, default=None, help="TLS certificate (PEM)")
    p.add_argument("--ssl-keyfile", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument("--max-body-mb", type=float, default=30.0,
                   help="largest request body in MB (default 30; 413 above)")
    p.add_argument("--max-megapixels", type=float, default=50.0,
                   help="largest photo in megapixels (default 50; 413 above)")
    p.add_argument("--max-active", type=int, default=1,
                   help="analyses run at the same time (default 1: best on 2 CPU cores)")
    p.add_argument("--max-waiting", type=int, default=8,
                   help="requests allowed to queue for a slot (default 8; 503 beyond)")
    p.add_argument("--max-uploads", type=int, default=16,
                   help="uploads received at the same time (default 16; 503 beyond)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="per-request processing time limit in seconds (default 60; 504 above)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch threads per analysis (default: CPU count / --max-active)")
    add_model_arguments(p)
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow this browser origin (repeatable; default: CORS off)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default info)")


def build_config(args: argparse.Namespace):
    """Resolve and check the options into a :class:`~photorad.serve.app.ServeConfig`."""
    from photorad.errors import ConfigError
    from photorad.serve.app import ServeConfig
    from photorad.serve.security import check_startup, load_keys

    keys = load_keys(keys_file=args.api_keys_file)
    check_startup(host=args.host, keys=keys, insecure_no_auth=args.insecure_no_auth)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ConfigError("give both --ssl-certfile and --ssl-keyfile, or neither")
    for f in (args.ssl_certfile, args.ssl_keyfile):
        if f is not None and not f.is_file():
            raise ConfigError(f"TLS file not found: {f}")
    if args.max_active < 1 or args.max_waiting < 0 or args.max_uploads < 1 or args.timeout <= 0:
        raise ConfigError("--max-active and --max-uploads must be ≥ 1, --max-waiting ≥ 0 and "
                          "--timeout > 0")
    if args.max_body_mb <= 0 or args.max_megapixels <= 0:
        raise ConfigError("--max-body-mb and --max-megapixels must be positive")
    return ServeConfig(
        keys=[] if args.insecure_no_auth else keys,
        auth=not args.insecure_no_auth,
        max_body_bytes=int(args.max_body_mb * 1_000_000),
        max_pixels=int(args.max_megapixels * 1_000_000),
        max_active=args.max_active,
        max_waiting=args.max_waiting,
        max_uploads=args.max_uploads,
        timeout_s=args.timeout,
        torch_threads=args.torch_threads,
        cors_origins=list(args.cors_origin),
        max_side=args.max_side,
    )


def load_pipeline(args: argparse.Namespace, cfg):
    """Load the models (shipped CPU weights unless --restorer/--classifier are given).

    Done before the server binds its port, so that a missing or corrupt checkpoint is one clear
    error line and exit status rather than a failed ASGI start-up.
    """
    from photorad.pipeline import Pipeline

    if args.restorer is None and args.classifier is None:
        return Pipeline.from_defaults(max_side=cfg.max_side)
    from photorad.classify import Classifier
    from photorad.restore import Restorer

    restorer = Restorer.from_checkpoint(args.restorer) if args.restorer else None
    classifier = (Classifier.from_checkpoint(args.classifier, device="cpu")
                  if args.classifier else None)
    return Pipeline.from_defaults(max_side=cfg.max_side, restorer=restorer,
                                  classifier=classifier)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from photorad.errors import ConfigError

    # Before torch loads its OpenMP runtime: idle threads sleep instead of spinning. On a shared
    # or busy 2-core machine spinning threads starve each other (measured: the shipped classifier
    # took 40-1400 ms per image with 2 spinning threads under load, ~20 ms with PASSIVE).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    try:
        import uvicorn

        from photorad.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(f"the service needs the 'serve' extra: pip install 'photorad[serve]' "
                          f"({exc})") from None
    cfg = build_config(args)
    for f in (args.restorer, args.classifier):
        if f is not None and not f.is_file():
            raise ConfigError(f"checkpoint not found: {f}")
    logging.getLogger("photorad").setLevel(args.log_level.upper())
    pipeline = load_pipeline(args, cfg)
    app = create_app(cfg, pipeline_factory=lambda: pipeline)
    scheme = "https" if args.ssl_certfile else "http"
    print(f"photorad serve on {scheme}://{args.host}:{args.port}/ "
          f"(auth {'OFF' if not cfg.auth else 'on'}). Research use only — not a diagnosis.",
          flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=str(args.ssl_certfile) if args.ssl_certfile else None,
        ssl_keyfile=str(args.ssl_keyfile) if args.ssl_keyfile else None,
        log_level=args.log_level,
        access_log=False,  # our own request log has the id and no query strings
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
