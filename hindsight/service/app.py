"""The FastAPI app. Handlers parse, call the Monitor, and answer; nothing else.

Writes are durable before the answer: each accepted batch is written to the store (Parquet,
fsynced, renamed into place) inside the request, on a worker thread so the event loop keeps
answering (health checks, 429s). One writer at a time; a write that cannot get the writer
within ``service.write_wait_seconds`` is answered 429 with Retry-After. Bodies are read in
chunks and refused (413) as soon as they pass ``service.max_body_bytes``. Every
``service.compact_every_writes`` writes, a background thread merges the small files they left
(``store.compaction``: safe for readers and writers running meanwhile). With ``drift.every``,
a thread checks prediction drift within the day (``service.watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import plotly
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from hindsight.errors import InputError
from hindsight.monitor import Monitor
from hindsight.service import views
from hindsight.service.alert_view import alert_view, describe_segment
from hindsight.service.bodies import (
    BodyLimits,
    UnsupportedMediaType,
    decode_content,
    parse,
    request_body,
)
from hindsight.service.connections import LoopbackGuard
from hindsight.service.metrics import DriftCollector, IngestMetrics, StoreCollector
from hindsight.service.signin import (
    COOKIE,
    Sessions,
    SignInRequired,
    add_signin,
    page_target,
    wants_html,
)
from hindsight.service.watch import DriftWatch
from hindsight.store.inputs import OverLimit

log = logging.getLogger(__name__)


class Compactor:
    """Starts a compaction every ``every`` writes, one at a time, off the request path; the
    first of each UTC day also runs the retention and tiering the config asks for."""

    def __init__(self, monitor: Monitor, every: int, metrics: IngestMetrics) -> None:
        self._monitor, self._every, self._metrics = monitor, every, metrics
        self._maintained: date | None = None
        self._writes = 0
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def wrote(self) -> None:
        if not self._every:
            return
        with self._lock:
            self._writes += 1
            if self._writes < self._every or (self._running and self._running.is_alive()):
                return
            self._writes = 0
            self._running = threading.Thread(target=self._compact, name="compaction",
                                             daemon=True)
            self._running.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the compaction under way (if any) is done."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _compact(self) -> None:
        try:
            report = self._monitor.compact()
            self._metrics.compacted.inc(report.files_merged)
            self._metrics.uncompactable.set(len(report.failed))
            for reason in report.failed:
                log.warning("compaction left a partition as it was: %s", reason)
            today = datetime.now(UTC).date()
            if self._maintained != today:
                self._monitor.maintain()
                self._maintained = today
        except Exception:  # a failed compaction must not take the server down
            self._metrics.compaction_failures.inc()
            log.exception("background compaction or retention or tiering failed; the store "
                          "stays as it was (each step commits whole or not at all)")


From = Annotated[str | None, Query(alias="from", description="first day shown (YYYY-MM-DD)")]
To = Annotated[str | None, Query(description="last day shown (YYYY-MM-DD): the run of this "
                                             "date, or the latest before it")]


def date_of(name: str, text: str | None) -> date | None:
    """A page's date parameter: empty means open; anything else must be YYYY-MM-DD."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}={text[:40]!r} is not a date: give it as YYYY-MM-DD") from None


def bad_query(name: str, text: str | None, reason: ValueError) -> RequestValidationError:
    """A bad query parameter, answered in the shape the OpenAPI document promises for 422."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name),
                                    "msg": str(reason), "input": text}])


class IngestAnswer(BaseModel):
    rows: int
    stored: int
    already_stored: int
    orphans: int
    early: int
    unpinned: list[str]


class Refusal(BaseModel):
    error: str
    accepted: int = 0


def create_app(monitor: Monitor, token: str | None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The service of one monitor. ``clock``: when the intra-day drift checks are due (the
    wall clock by default)."""
    settings = monitor.config.service
    registry = CollectorRegistry()
    ingest_metrics = IngestMetrics(registry)
    registry.register(StoreCollector(monitor.store, monitor.config.model))
    writer = threading.Lock()
    compactor = Compactor(monitor, settings.compact_every_writes, ingest_metrics)
    watch = DriftWatch(monitor.config, clock) if monitor.config.drift.every else None
    if watch is not None:
        registry.register(DriftCollector(lambda: watch.latest, monitor.config.model,
                                         lambda: watch.failures))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if watch is not None:
            watch.start()
        try:
            yield
        finally:
            if watch is not None:
                watch.stop()

    # The schema names the model, its columns and features: served by a route below, behind
    # the same rule as every other read. No /docs: its assets would come from a CDN.
    app = FastAPI(title="hindsight", version="0.1.0",
                  description=f"Monitoring of {monitor.config.model}: ingest, alerts, metrics.",
                  openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    if token is None:  # loopback only: still refuse other sites' pages and other hosts
        app.add_middleware(LoopbackGuard)
    app.state.compactor = compactor
    app.state.drift_watch = watch

    def authorized(request: Request) -> None:
        if token is None:
            return  # no token: the server is bound to loopback (see 'hindsight serve')
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # the scheme is case-insensitive (RFC 7235); the token is compared in constant time
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    sessions = (Sessions(token, settings.session_hours * 3600) if token is not None
                else None)

    def machine_reads(request: Request) -> None:
        """The API and /metrics: the bearer token only (a browser's cookie opens none)."""
        if not settings.open_reads:
            authorized(request)

    def reads(request: Request) -> None:
        """A page: the bearer token or a session; a browser without either signs in."""
        if settings.open_reads or sessions is None or signed_in(request):
            return
        if "authorization" not in request.headers and wants_html(request):
            raise SignInRequired(page_target(request))
        authorized(request)

    def signed_in(request: Request) -> bool:
        return sessions is not None and sessions.valid(request.cookies.get(COOKIE))

    def too_large(table: str) -> HTTPException:
        ingest_metrics.refused.labels(table, "too_large").inc()
        return HTTPException(413, f"body is over the limit of {settings.max_body_bytes} "
                                  "bytes; send smaller batches")

    async def body_of(request: Request, table: str) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            raise too_large(table)
        # a chunked body has no length up front: stop reading at the limit
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise too_large(table)
            chunks.append(chunk)
        return b"".join(chunks)

    limits = BodyLimits.of(monitor.config)

    def refused(table: str, reason: str, status: int, error: str,
                headers: dict[str, str] | None = None) -> JSONResponse:
        ingest_metrics.refused.labels(table, reason).inc()
        return JSONResponse(Refusal(error=error).model_dump(), status_code=status,
                            headers=headers)

    def ingest(table: Literal["predictions", "labels"], body: bytes,
               headers: Headers) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = decode_content(body, headers.get("content-encoding", ""),
                                  settings.max_body_bytes)
            rows = parse(body, headers.get("content-type", ""), limits)
            if not writer.acquire(timeout=settings.write_wait_seconds):
                return refused(table, "busy", 429, "the writer is busy; retry shortly",
                               {"Retry-After": "1"})
            try:
                log: Callable[..., Any] = (monitor.log_predictions if table == "predictions"
                                           else monitor.log_labels)
                report = log(rows, name="request body")
            finally:
                writer.release()
            compactor.wrote()
        except UnsupportedMediaType as exc:
            return refused(table, "media_type", 415, str(exc))
        except OverLimit as exc:
            return refused(table, "too_large", 413, str(exc))
        except InputError as exc:
            return refused(table, "invalid", 422, str(exc))
        finally:
            ingest_metrics.seconds.labels(table).observe(time.perf_counter() - started)
        ingest_metrics.rows.labels(table).inc(report.stored)
        return JSONResponse(IngestAnswer(
            rows=report.rows, stored=report.stored, already_stored=report.already_stored,
            orphans=report.orphans, early=report.early,
            unpinned=list(report.unpinned)).model_dump())

    bodies = asyncio.Semaphore(settings.max_concurrent_bodies)

    async def receive(request: Request, table: Literal["predictions", "labels"]
                      ) -> JSONResponse:
        """Read, decode and store one body; at most ``max_concurrent_bodies`` at once."""
        try:
            await asyncio.wait_for(bodies.acquire(), settings.write_wait_seconds)
        except TimeoutError:
            return refused(table, "busy", 503, "too many bodies at once; retry shortly",
                           {"Retry-After": "1"})
        try:
            body = await body_of(request, table)
            return await run_in_threadpool(ingest, table, body, request.headers)
        finally:
            bodies.release()

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "missing or wrong bearer token"},
        413: {"model": Refusal, "description": "body, rows, columns or decoded size over "
                                               "the limit"},
        415: {"model": Refusal, "description": "a Content-Type hindsight does not read"},
        422: {"model": Refusal, "description": "rows that do not fit the config; nothing "
                                               "of the batch is stored"},
        429: {"model": Refusal, "description": "the writer is busy; see Retry-After"},
        503: {"model": Refusal, "description": "too many bodies at once; see Retry-After"},
    }

    @app.post("/v1/predictions", response_model=IngestAnswer, responses=responses,
              dependencies=[Depends(authorized)],
              openapi_extra={"requestBody": request_body(monitor.config, "predictions")})
    async def post_predictions(request: Request) -> JSONResponse:
        """Log predictions: a JSON array, NDJSON, an Arrow IPC stream or Parquet. A batch
        with a bad row is refused whole (422, naming the row); re-sending stores nothing."""
        return await receive(request, "predictions")

    @app.post("/v1/labels", response_model=IngestAnswer, responses=responses,
              dependencies=[Depends(authorized)],
              openapi_extra={"requestBody": request_body(monitor.config, "labels")})
    async def post_labels(request: Request) -> JSONResponse:
        """Log labels, in the same formats. The latest label per id wins."""
        return await receive(request, "labels")

    @app.get("/v1/alerts", dependencies=[Depends(machine_reads)])
    def get_alerts(start: date | None = None, end: date | None = None,
                   state: Annotated[Literal["opened", "ongoing", "stale", "resolved", "open"]
                                    | None, Query()] = None) -> list[dict[str, Any]]:
        """Alert rows of the runs in a range, as ``hindsight alerts --format json``
        (``open``: what is open after the latest run of the range, one row each)."""
        found = (monitor.open_alerts(start, end) if state == "open" else
                 [a for a in monitor.alerts(start, end) if state in (None, a.state)])
        return [a.as_json() for a in found]

    @app.get("/metrics", response_class=PlainTextResponse,
             dependencies=[Depends(machine_reads)])
    def metrics() -> PlainTextResponse:
        """Prometheus exposition format."""
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    add_signin(app, sessions, templates, monitor.config.model, settings.secure_cookie)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        days = getattr(context.get("view"), "days", None)
        return templates.TemplateResponse(request, f"{name}.html", {
            "page": name, "model": monitor.config.model, "title": name,
            "range_query": days.query if days else "",
            "signed_in": signed_in(request), **context})

    def days_of(start: str | None, end: str | None) -> views.Range:
        """The range of a page's ``from`` and ``to`` (either may be empty: open)."""
        days = {}
        for name, text in (("from", start), ("to", end)):
            try:
                days[name] = date_of(name, text)
            except ValueError as exc:
                raise bad_query(name, text, exc) from None
        try:
            return views.Range(days["from"], days["to"])
        except ValueError as exc:
            raise bad_query("from", start, exc) from None


    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(reads)])
    def overview_page(request: Request, start: From = None, to: To = None) -> HTMLResponse:
        """Aggregate metric by day with label coverage, and the open alerts."""
        with writer:
            return page(request, "overview", view=views.overview(monitor,
                                                                 days=days_of(start, to)))

    @app.get("/alert", response_class=HTMLResponse, dependencies=[Depends(reads)],
             responses={404: {"description": "no alert with that key (on that date)"}})
    def alert_page(request: Request, key: str, date: date | None = None) -> HTMLResponse:
        """One alert whole, with every segment it explains (the run of ``date``, default:
        the latest run that has it), its trend and links to its history and drift."""
        found = [a for a in monitor.alerts(date, date) if a.key == key]
        if not found:
            raise HTTPException(404, "no alert with that key" + (f" on {date}" if date else ""))
        with writer:
            return page(request, "alert", view=alert_view(monitor, found[-1]),
                        describe=describe_segment)

    @app.get("/segments", response_class=HTMLResponse, dependencies=[Depends(reads)])
    def segments_page(request: Request, column: str | None = None,
                      within: str | None = None, start: From = None,
                      to: To = None) -> HTMLResponse:
        """The metric by segment value and day; ``within=col=value`` drills into crosses."""
        inside: dict[str, str] = {}
        if within:
            key, _, value = within.partition("=")
            inside = {key: value}
        with writer:
            return page(request, "segments", view=views.segments(
                monitor, column, inside, days=days_of(start, to)))

    @app.get("/drift", response_class=HTMLResponse, dependencies=[Depends(reads)])
    def drift_page(request: Request, feature: str | None = None, start: From = None,
                   to: To = None) -> HTMLResponse:
        """Prediction drift against its noise band; features ranked; one histogram."""
        with writer:
            return page(request, "drift", view=views.drift(monitor, feature,
                                                           days_of(start, to)))

    @app.get("/coverage", response_class=HTMLResponse, dependencies=[Depends(reads)])
    def coverage_page(request: Request, rows: str | None = None, columns: str | None = None,
                      show: str = "drop", drop: float = 0.05) -> HTMLResponse:
        """Per cross of two segment columns: the smallest detectable drop (or the days to
        catch ``drop``) as of the latest run; each blind cell with its reason."""
        with writer:
            return page(request, "coverage",
                        view=views.coverage(monitor, rows, columns, show, drop))

    @app.get("/versions", response_class=HTMLResponse, dependencies=[Depends(reads)])
    def versions_page(request: Request) -> HTMLResponse:
        with writer:
            day, seen = monitor.versions()
        return page(request, "versions", day=day, seen=seen)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(machine_reads)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Answered on the event loop: never queued behind writers."""
        return {"status": "ok"}

    return app
