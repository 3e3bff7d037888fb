"""Resource limits of the service: request body size and a bounded concurrency gate.

* :class:`BodyLimitMiddleware` — a pure ASGI middleware that rejects a body larger than the limit
  with 413, from ``Content-Length`` when the client sends it and otherwise while the body streams
  in (chunked uploads), so an oversized upload is never buffered whole.
* :class:`ConcurrencyGate` — at most ``max_active`` analyses run at once and at most
  ``max_waiting`` requests wait for a slot; anything beyond is refused at once (503 +
  ``Retry-After``), so memory stays bounded under overload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Overloaded(Exception):
    """The gate's waiting queue is full (→ 503 with ``Retry-After``)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("server busy")
        self.retry_after_s = retry_after_s


class _BodyTooLarge(Exception):
    pass


def error_body(status: int, kind: str, message: str, request_id: str | None) -> bytes:
    """The JSON error document used for every error response of the service."""
    return json.dumps(
        {"error": {"status": status, "type": kind, "message": message}, "request_id": request_id}
    ).encode("utf-8")


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with a JSON 413.

    Parameters
    ----------
    app:
        The wrapped ASGI application.
    max_bytes:
        Largest accepted request body in bytes.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _reject(self, scope: Scope, send: Send) -> None:
        rid = scope.get("state", {}).get("request_id")
        body = error_body(
            413, "PayloadTooLarge",
            f"request body is larger than the limit of {self.max_bytes / 1e6:.1f} MB; "
            "send a smaller photo (e.g. the phone's default JPEG, not RAW)",
            rid,
        )
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(scope, send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the aborted body, the answer is 413
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._reject(scope, send)


class ConcurrencyGate:
    """A semaphore with a bounded waiting queue.

    Parameters
    ----------
    max_active:
        Requests processed at the same time.
    max_waiting:
        Requests allowed to wait for a slot; one more is refused with :class:`Overloaded`.
    retry_after_s:
        Seconds suggested to refused clients (``Retry-After`` header).

    Must be used from one event loop (the counters are not locked).
    """

    def __init__(self, *, max_active: int, max_waiting: int, retry_after_s: int = 2) -> None:
        if max_active < 1 or max_waiting < 0:
            raise ValueError("max_active must be ≥ 1 and max_waiting ≥ 0")
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._sem = asyncio.Semaphore(max_active)
        self.waiting = 0
        self.active = 0

    async def acquire(self) -> None:
        """Take a slot, waiting in the bounded queue; raise :class:`Overloaded` when it is full."""
        if self._sem.locked() or self.waiting:
            if self.waiting >= self.max_waiting:
                raise Overloaded(self.retry_after_s)
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def release(self) -> None:
        """Give a slot back (call exactly once per successful :meth:`acquire`)."""
        self.active -= 1
        self._sem.release()

    def snapshot(self) -> dict[str, int]:
        return {"active": self.active, "waiting": self.waiting,
                "max_active": self.max_active, "max_waiting": self.max_waiting}


async def run_gated(
    gate: ConcurrencyGate, fn: Callable[[], Any], *, timeout_s: float
) -> Any:
    """Run the blocking ``fn`` in a worker thread under ``gate`` with a time limit.

    On timeout :class:`asyncio.TimeoutError` is raised at once, but the slot is only given back
    when the worker thread really finishes: a thread cannot be killed, and releasing early would
    let timed-out work pile up beyond ``max_active``.
    """
    await gate.acquire()
    try:
        task = asyncio.ensure_future(asyncio.to_thread(fn))
    except BaseException:
        gate.release()
        raise
    task.add_done_callback(lambda _t: gate.release())
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        # Retrieve the eventual exception so asyncio does not log "never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise asyncio.TimeoutError
    return task.result()
