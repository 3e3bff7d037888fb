"""The inference service: FastAPI app around :class:`photorad.pipeline.Pipeline`.

Endpoints (all ``/v1`` endpoints need the ``X-API-Key`` header unless auth is off):

* ``POST /v1/analyze`` — multipart ``photo`` (+ optional ``corners`` JSON, TL, TR, BR, BL photo
  pixels, and ``lesion_box`` [x, y, w, h] rectified-image pixels) → :meth:`Analysis.to_json` with
  the request id; rectified and restored images inline as base64 PNG (nothing is stored on the
  server, so there is no URL to expire or to leak). ``score`` is ``null`` with a ``refusal`` when
  no lesion was found and none was given.
* ``POST /v1/rectify`` — multipart ``photo`` → detected corners + capture-quality report.
* ``GET /v1/models`` — model names and SHA-256; ``GET /healthz`` (alive), ``GET /readyz`` (models
  loaded); ``GET /`` the phone web page; ``/docs`` and ``/redoc`` render offline.

Limits: body size (413, while streaming), pixel count (413, before decoding), concurrency gate
with a bounded queue (503 + ``Retry-After``), per-request time limit (504). Every error is JSON
``{"error": {"status", "type", "message"}, "request_id"}``.

Privacy: photos live only in memory during the request; logs carry the request id, byte sizes,
timings and the outcome — never pixels, file names or EXIF (which ``load_photo`` drops anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from photorad import DISCLAIMER, __version__
from photorad.errors import PhotoradError
from photorad.serve.limits import (
    BodyLimitMiddleware,
    ConcurrencyGate,
    Overloaded,
    error_body,
    run_gated,
)
from photorad.serve.security import HEADER, key_matches

log = logging.getLogger("photorad.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class ServeConfig:
    """Resolved service settings (see ``photorad serve --help``).

    Attributes
    ----------
    keys:
        Accepted API keys (UTF-8 bytes); empty only with ``auth=False``.
    auth:
        Require ``X-API-Key`` on ``/v1`` endpoints.
    max_body_bytes:
        Largest request body, bytes (413 above it).
    max_pixels:
        Largest photo, width × height pixels (413 above it, checked before decoding).
    max_active, max_waiting:
        Concurrent analyses and queued requests (503 beyond ``max_active + max_waiting``).
    max_uploads:
        Authenticated uploads being received at the same time (503 beyond). With the gate this
        bounds buffered request bodies to (max_uploads + max_waiting + max_active) × max_body.
    timeout_s:
        Per-request processing time limit in seconds (504 above it).
    retry_after_s:
        ``Retry-After`` seconds sent with 503.
    torch_threads:
        Threads per analysis for torch (``None``: CPU count // ``max_active``, at least 1).
    cors_origins:
        Allowed CORS origins (empty: CORS off, the default).
    max_side:
        Longest side of the rectified image in pixels (see :class:`Pipeline`).
    """

    keys: list[bytes] = field(default_factory=list)
    auth: bool = True
    max_body_bytes: int = 30_000_000
    max_pixels: int = 50_000_000
    max_active: int = 1
    max_waiting: int = 8
    max_uploads: int = 16
    timeout_s: float = 60.0
    retry_after_s: int = 2
    torch_threads: int | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_side: int | None = 576


class _InMemoryMultiPart(MultiPartParser):
    """Multipart parser that keeps uploaded files in memory (Starlette spools > 1 MB to disk).

    The body size limit (:class:`BodyLimitMiddleware`) bounds what this can hold.
    """

    spool_max_size = 1 << 40


_CSP = (
    b"default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
    b"script-src 'self'; frame-ancestors 'none'"
)


def _security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """Headers added to every response: no sniffing, no referrer, no caching of results."""
    out = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if path == "/" or path.startswith("/static/"):
        out.append((b"content-security-policy", _CSP))
    if path.startswith("/v1/"):
        out.append((b"cache-control", b"no-store"))
    return out


def _request_id(scope: dict[str, Any]) -> str | None:
    return scope.get("state", {}).get("request_id")


class RequestContextMiddleware:
    """Give each request an id (``X-Request-ID``: the client's if well-formed, else a new one),
    echo it in the response headers and log one line per request without any content."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if _REQUEST_ID.match(text):
                    rid = text
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})
        scope["state"] = {**scope["state"], "request_id": rid}
        t0 = time.perf_counter()
        info = {"status": 500, "in": 0, "out": 0}

        async def counting_receive() -> dict[str, Any]:
            msg = await receive()
            if msg["type"] == "http.request":
                info["in"] += len(msg.get("body", b""))
            return msg

        async def tagging_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                info["status"] = msg["status"]
                headers = list(msg.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers += _security_headers(scope.get("path", ""))
                msg = {**msg, "headers": headers}
            elif msg["type"] == "http.response.body":
                info["out"] += len(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            # Path only (no query string), sizes, timing and outcome: no content, no file names.
            log.info(
                "request id=%s method=%s path=%s status=%s in_bytes=%d out_bytes=%d ms=%.1f",
                rid, scope.get("method"), scope.get("path"), info["status"], info["in"],
                info["out"], (time.perf_counter() - t0) * 1000.0,
            )


def _json_error(status: int, kind: str, message: str, request: Request,
                headers: dict[str, str] | None = None) -> Response:
    return Response(
        error_body(status, kind, message, _request_id(request.scope)),
        status_code=status, media_type="application/json", headers=headers,
    )


def _set_torch_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(max(1, threads))
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)


def _parse_lesion_box(text: str | None) -> list[float] | None:
    """``lesion_box`` form field: ``[x, y, w, h]`` as JSON or ``x,y,w,h``; ``None`` when absent."""
    from photorad.errors import InvalidLesionBoxError

    if text is None or not text.strip():
        return None
    t = text.strip()
    try:
        value = json.loads(t) if t.startswith(("[", "{")) else [float(v) for v in t.split(",")]
    except (json.JSONDecodeError, ValueError):
        raise InvalidLesionBoxError("lesion_box must be [x, y, w, h] (JSON) or x,y,w,h") from None
    if isinstance(value, dict):
        value = value.get("box")
    if not (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InvalidLesionBoxError("lesion_box must be 4 numbers: x, y, w, h (rectified px)")
    return [float(v) for v in value]


def _parse_corners(text: str | None) -> Any:
    """``corners`` form field: JSON ``[[x, y], ×4]`` or 8 numbers, or ``{"corners": ...}``."""
    from photorad.errors import InvalidCornersError

    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidCornersError(
            'corners must be JSON: [[x, y], [x, y], [x, y], [x, y]] (TL, TR, BR, BL)'
        ) from None
    if isinstance(value, dict):
        value = value.get("corners")
    if not isinstance(value, list):
        raise InvalidCornersError("corners must be a JSON list of 4 [x, y] pairs")
    flat: list[Any] = []
    for v in value:
        flat.extend(v if isinstance(v, list) else [v])
    if len(flat) != 8 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in flat):
        raise InvalidCornersError("corners must be 4 [x, y] number pairs (TL, TR, BR, BL)")
    return [[float(flat[i]), float(flat[i + 1])] for i in range(0, 8, 2)]


_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo"],
                    "properties": {
                        "photo": {"type": "string", "format": "binary",
                                  "description": "JPEG, PNG, HEIC/HEIF or WebP phone photo"},
                        "corners": {
                            "type": "string",
                            "description": "optional JSON [[x,y]×4], TL, TR, BR, BL photo pixels",
                        },
                        "lesion_box": {
                            "type": "string",
                            "description": "optional lesion box [x, y, w, h] (JSON or x,y,w,h) "
                                           "in rectified-image pixels; replaces the localizer's "
                                           "(POST /v1/analyze only)",
                        },
                    },
                }
            }
        },
    }
}


def create_app(
    config: ServeConfig | None = None,
    *,
    pipeline_factory: Callable[[], Any] | None = None,
    audit_factory: Callable[[], Any] | None = None,
) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    config:
        Service settings (default :class:`ServeConfig` — which requires keys).
    pipeline_factory:
        Called once at start-up (in the lifespan) to build the pipeline; default
        :meth:`photorad.pipeline.Pipeline.from_defaults` (the shipped CPU weights).
    audit_factory:
        Called once at start-up; returns an ``AuditLog`` or ``None``. Default:
        ``photorad.audit.audit_from_env`` (``PHOTORAD_AUDIT_LOG``) when that module exists.
    """
    from fastapi_offline import FastAPIOffline

    cfg = config or ServeConfig()
    if cfg.auth and not cfg.keys:
        from photorad.errors import ConfigError

        raise ConfigError("auth is on but no API key is configured")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ready = False
        app.state.uploading = 0
        app.state.gate = ConcurrencyGate(max_active=cfg.max_active, max_waiting=cfg.max_waiting,
                                         retry_after_s=cfg.retry_after_s)
        threads = cfg.torch_threads or max(1, (os.cpu_count() or 1) // cfg.max_active)
        _set_torch_threads(threads)
        t0 = time.perf_counter()
        if pipeline_factory is not None:
            factory = pipeline_factory
        else:
            from photorad.pipeline import Pipeline

            def factory() -> Any:
                return Pipeline.from_defaults(max_side=cfg.max_side)

        # Off the event loop: loading and warming up are seconds of CPU work.
        app.state.pipeline = await asyncio.to_thread(factory)
        warmup = getattr(app.state.pipeline, "warmup", None)
        if warmup is not None:  # first-call costs are paid here, before /readyz says yes
            await asyncio.to_thread(warmup)
        if audit_factory is not None:
            app.state.audit = audit_factory()
        else:
            try:
                from photorad.audit import audit_from_env
            except ImportError:
                app.state.audit = None
            else:
                app.state.audit = audit_from_env()
        app.state.ready = True
        log.info("models loaded in %.1f s (torch threads %d, max_active %d, max_waiting %d)",
                 time.perf_counter() - t0, threads, cfg.max_active, cfg.max_waiting)
        yield
        app.state.ready = False

    app = FastAPIOffline(
        title="photorad",
        version=__version__,
        description=(
            "Smartphone-photo teleradiology: rectify, restore and classify a phone photo of a "
            "medical image on a monitor. **" + DISCLAIMER + "**\n\nAuthenticate with the "
            "`X-API-Key` header. Images come back inline as base64 PNG; nothing is stored."
        ),
        lifespan=lifespan,
    )
    app.state.config = cfg
    app.state.ready = False
    app.state.uploading = 0

    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    if cfg.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=[HEADER, "X-Request-ID"])
    app.add_middleware(RequestContextMiddleware)

    # ----- errors: one JSON shape for everything ---------------------------------------------
    @app.exception_handler(PhotoradError)
    async def _photorad_error(request: Request, exc: PhotoradError) -> Response:
        log.info("request id=%s rejected: %s", _request_id(request.scope), type(exc).__name__)
        return _json_error(exc.http_status, type(exc).__name__, str(exc), request)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> Response:
        return _json_error(503, "Overloaded",
                           f"server busy; retry in {exc.retry_after_s} s", request,
                           headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _json_error(exc.status_code, "HTTPError", str(exc.detail), request,
                           headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        msgs = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}"
                         for e in exc.errors())
        return _json_error(422, "ValidationError", msgs, request)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("request id=%s internal error", _request_id(request.scope))
        return _json_error(500, "InternalError",
                           "internal error; the request id identifies it in the server log",
                           request)

    # ----- dependencies ----------------------------------------------------------------------
    async def require_key(request: Request) -> None:
        if not cfg.auth:
            return
        if not key_matches(request.headers.get(HEADER), cfg.keys):
            raise StarletteHTTPException(
                401, f"missing or wrong API key (send it in the {HEADER} header)",
                headers={"WWW-Authenticate": "ApiKey"},
            )

    def require_ready(request: Request) -> Any:
        if not getattr(request.app.state, "ready", False):
            raise StarletteHTTPException(503, "models are still loading",
                                         headers={"Retry-After": "5"})
        return request.app.state.pipeline

    async def read_upload(request: Request) -> tuple[bytes, dict[str, str]]:
        """The ``photo`` bytes and the text fields of a multipart request (in memory)."""
        from photorad.errors import UnsupportedImageError

        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise UnsupportedImageError(
                "send the photo as multipart/form-data with a field named 'photo'"
            )
        state = request.app.state
        if state.uploading >= cfg.max_uploads:
            raise Overloaded(cfg.retry_after_s)
        state.uploading += 1
        parser = _InMemoryMultiPart(request.headers, request.stream(), max_files=1,
                                    max_fields=4, max_part_size=64 * 1024)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise StarletteHTTPException(400, f"malformed multipart body: {exc.message}") from None
        finally:
            state.uploading -= 1
        try:
            photo = form.get("photo")
            if not isinstance(photo, UploadFile):
                raise StarletteHTTPException(422, "the multipart field 'photo' (a file) is missing")
            data = await photo.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            return data, fields
        finally:
            await form.close()

    def decode(data: bytes) -> Any:
        from photorad.io import load_photo

        return load_photo(data, max_pixels=cfg.max_pixels)

    async def gated(request: Request, fn: Callable[[], Any]) -> Any:
        try:
            return await run_gated(request.app.state.gate, fn, timeout_s=cfg.timeout_s)
        except asyncio.TimeoutError:
            raise StarletteHTTPException(
                504, f"processing took longer than the {cfg.timeout_s:g} s limit; "
                "try a smaller photo or retry later",
            ) from None

    # ----- routes ----------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: models loaded")
    async def readyz(request: Request) -> JSONResponse:
        ready = bool(getattr(request.app.state, "ready", False))
        body: dict[str, Any] = {"ready": ready}
        gate = getattr(request.app.state, "gate", None)
        if gate is not None:
            body["load"] = gate.snapshot() | {
                "uploading": getattr(request.app.state, "uploading", 0),
                "max_uploads": cfg.max_uploads,
            }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/v1/models", tags=["v1"], dependencies=[Depends(require_key)],
             summary="Model names and SHA-256")
    async def models(pipeline: Any = Depends(require_ready)) -> dict[str, Any]:
        return {"models": pipeline.models, "disclaimer": DISCLAIMER, "version": __version__}

    @app.post("/v1/rectify", tags=["v1"], dependencies=[Depends(require_key)],
              summary="Detect the displayed image's corners and check capture quality",
              openapi_extra=_MULTIPART_BODY)
    async def rectify(request: Request, pipeline: Any = Depends(require_ready)) -> Response:
        data, fields = await read_upload(request)
        corners = _parse_corners(fields.get("corners"))

        def work() -> dict[str, Any]:
            t0 = time.perf_counter()
            photo = decode(data)
            decode_ms = (time.perf_counter() - t0) * 1000.0
            out = pipeline.locate(photo, corners).to_json()
            out["timings_ms"] = {"decode": round(decode_ms, 2), **out["timings_ms"]}
            return out

        out = await gated(request, work)
        out["request_id"] = _request_id(request.scope)
        out["disclaimer"] = DISCLAIMER
        return JSONResponse(out)

    @app.post("/v1/analyze", tags=["v1"], dependencies=[Depends(require_key)],
              summary="Rectify, restore and score a phone photo",
              openapi_extra=_MULTIPART_BODY)
    async def analyze(request: Request, pipeline: Any = Depends(require_ready)) -> Response:
        data, fields = await read_upload(request)
        corners = _parse_corners(fields.get("corners"))
        lesion_box = _parse_lesion_box(fields.get("lesion_box"))
        rid = _request_id(request.scope)
        audit = request.app.state.audit

        def work() -> dict[str, Any]:
            t0 = time.perf_counter()
            photo = decode(data)
            decode_ms = (time.perf_counter() - t0) * 1000.0
            if lesion_box is None:
                analysis = pipeline.analyze(photo, corners)
            else:
                analysis = pipeline.analyze(photo, corners, lesion_box=lesion_box)
            del photo
            t0 = time.perf_counter()
            out = analysis.to_json(inline_images=True, request_id=rid)
            out["timings_ms"] = {"decode": round(decode_ms, 2), **out["timings_ms"],
                                 "encode": round((time.perf_counter() - t0) * 1000.0, 2)}
            if audit is not None:
                import base64

                outputs = [hashlib.sha256(base64.b64decode(out["images"][k]["png_base64"]))
                           .hexdigest() for k in ("rectified", "restored")]
                audit.append(
                    "analyze",
                    inputs_sha256=[hashlib.sha256(data).hexdigest()],
                    outputs_sha256=outputs,
                    model_sha256={k: v["sha256"] for k, v in analysis.models.items()
                                  if v.get("sha256")},
                    extra={"request_id": rid, "score": out["score"],
                           "corners_method": analysis.quad_method,
                           "lesion_source": (out.get("lesion") or {}).get("source"),
                           "refusal": (out.get("refusal") or {}).get("stage")},
                )
            return out

        out = await gated(request, work)
        log.info("request id=%s analyzed photo_bytes=%d timings_ms=%s", rid, len(data),
                 out["timings_ms"])
        return JSONResponse(out)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    return app
