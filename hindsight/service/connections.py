"""What the server lets a connection do: how long it may take to send a request head, how
long it may idle, how many may be open at once (more are answered 503, before descriptors
run out), and, without a token, which pages may write to it.

A server without a token listens on loopback only (``hindsight serve``), but a browser on the
same machine can still reach it: a page on another site may post a body without a
Content-Type, or reach it under its own name through DNS rebinding. So without a token a
request must name a loopback host, a write must not come from another origin, and a body
must say what it is (a type a page cannot send without asking first).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hindsight.config import ServiceSettings

Scope = dict[str, Any]
Receive = Any
Send = Any


class _TimedH11(H11Protocol):
    """h11 with a deadline for each request head: a connection that has sent nothing, or
    only part of a head, within ``head_timeout`` seconds of opening or of its last answer is
    closed (uvicorn times out only kept-alive connections that are idle)."""

    head_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_late)

    def _head_late(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, host: str, port: int, settings: ServiceSettings) -> uvicorn.Config:
    """The uvicorn settings of ``hindsight serve``."""
    protocol = type("TimedH11", (_TimedH11,), {"head_timeout": settings.header_timeout_seconds})
    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol,
                          timeout_keep_alive=max(1, round(settings.idle_timeout_seconds)),
                          limit_concurrency=settings.max_connections,
                          h11_max_incomplete_event_size=64 * 1024)


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """ASGI middleware for the server without a token: the Host must be a loopback name, a
    write must come from no other origin and must carry a Content-Type."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = _refusal(scope["method"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, error = refusal
        body = json.dumps({"error": error, "accepted": 0}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _refusal(method: str, headers: dict[str, str]) -> tuple[int, str] | None:
    host = urlsplit(f"//{headers.get('host', '')}").hostname or ""
    if not _is_loopback(host):
        return 421, (f"Host {headers.get('host', '')!r} is not this server's loopback "
                     "address; without a token, only requests to localhost are answered")
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    origin = headers.get("origin")
    if origin is not None and not _is_loopback(urlsplit(origin).hostname or ""):
        return 403, (f"a write from the origin {origin!r}; without a token, only clients on "
                     "this machine may write (set a token to accept others)")
    if not headers.get("content-type", "").strip():
        return 415, ("a body without a Content-Type; send application/json, "
                     "application/x-ndjson, an Arrow stream or Parquet, and say so")
    return None
