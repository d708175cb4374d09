"""One model as the service holds it: its monitor, its writer, its background compaction and
its intra-day drift checks. A workspace's service holds one of these per model; each keeps
its failures to itself (a compaction or a check that fails is logged and counted, and the
other models go on)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Literal

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from hindsight.config import ServiceSettings
from hindsight.errors import InputError
from hindsight.monitor import Monitor
from hindsight.service.bodies import BodyLimits, UnsupportedMediaType, decode_content, parse
from hindsight.service.metrics import IngestMetrics
from hindsight.service.watch import DriftWatch
from hindsight.store.inputs import OverLimit

log = logging.getLogger(__name__)
TableName = Literal["predictions", "labels"]


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


class Compactor:
    """Starts a compaction every ``every`` writes, one at a time, off the request path; the
    first of each UTC day also runs the retention and tiering the config asks for."""

    def __init__(self, monitor: Monitor, every: int, metrics: IngestMetrics) -> None:
        self._monitor, self._every, self._metrics = monitor, every, metrics
        self._model = monitor.config.model
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
            self._running = threading.Thread(target=self._compact,
                                             name=f"compaction-{self._model}", daemon=True)
            self._running.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the compaction under way (if any) is done."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _compact(self) -> None:
        try:
            report = self._monitor.compact()
            self._metrics.compacted.labels(self._model).inc(report.files_merged)
            self._metrics.uncompactable.labels(self._model).set(len(report.failed))
            for reason in report.failed:
                log.warning("compaction of model %s left a partition as it was: %s",
                            self._model, reason)
            today = datetime.now(UTC).date()
            if self._maintained != today:
                self._monitor.maintain()
                self._maintained = today
        except Exception:  # a failed compaction must not take the server down
            self._metrics.compaction_failures.labels(self._model).inc()
            log.exception("background compaction or retention or tiering of model %s failed; "
                          "the store stays as it was (each step commits whole or not at all)",
                          self._model)


class ServedModel:
    """``settings``: the service's settings (limits, timeouts) shared by every model;
    ``bodies``: how many bodies may be read at once, across every model."""

    def __init__(self, monitor: Monitor, settings: ServiceSettings, metrics: IngestMetrics,
                 bodies: asyncio.Semaphore,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.monitor = monitor
        self.name = monitor.config.model
        self.settings, self._metrics, self._bodies = settings, metrics, bodies
        self.writer = threading.Lock()
        self.compactor = Compactor(monitor, settings.compact_every_writes, metrics)
        self.limits = BodyLimits.of(monitor.config)
        self.watch: DriftWatch | None = None
        #: why the intra-day checks could not start (the model still serves everything else)
        self.watch_problem: str | None = None
        if monitor.config.drift.every:
            try:
                self.watch = DriftWatch(monitor.config, clock)
            except Exception as exc:  # this model's checks only: the others start
                log.exception("the intra-day drift checks of model %s cannot start", self.name)
                self.watch_problem = f"{type(exc).__name__}: {exc}"

    def refused(self, table: str, reason: str, status: int, error: str,
                headers: dict[str, str] | None = None) -> JSONResponse:
        self._metrics.refused.labels(self.name, table, reason).inc()
        return JSONResponse(Refusal(error=error).model_dump(), status_code=status,
                            headers=headers)

    def _too_large(self, table: str) -> HTTPException:
        self._metrics.refused.labels(self.name, table, "too_large").inc()
        return HTTPException(413, f"body is over the limit of {self.settings.max_body_bytes} "
                                  "bytes; send smaller batches")

    async def _body_of(self, request: Request, table: str) -> bytes:
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise self._too_large(table)
        # a chunked body has no length up front: stop reading at the limit
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise self._too_large(table)
            chunks.append(chunk)
        return b"".join(chunks)

    def ingest(self, table: TableName, body: bytes, headers: Headers) -> JSONResponse:
        settings = self.settings
        started = time.perf_counter()
        try:
            body = decode_content(body, headers.get("content-encoding", ""),
                                  settings.max_body_bytes)
            rows = parse(body, headers.get("content-type", ""), self.limits)
            if not self.writer.acquire(timeout=settings.write_wait_seconds):
                return self.refused(table, "busy", 429, "the writer is busy; retry shortly",
                                    {"Retry-After": "1"})
            try:
                write: Callable[..., Any] = (self.monitor.log_predictions
                                             if table == "predictions"
                                             else self.monitor.log_labels)
                report = write(rows, name="request body")
            finally:
                self.writer.release()
            self.compactor.wrote()
        except UnsupportedMediaType as exc:
            return self.refused(table, "media_type", 415, str(exc))
        except OverLimit as exc:
            return self.refused(table, "too_large", 413, str(exc))
        except InputError as exc:
            return self.refused(table, "invalid", 422, str(exc))
        finally:
            self._metrics.seconds.labels(self.name, table).observe(
                time.perf_counter() - started)
        self._metrics.rows.labels(self.name, table).inc(report.stored)
        return JSONResponse(IngestAnswer(
            rows=report.rows, stored=report.stored, already_stored=report.already_stored,
            orphans=report.orphans, early=report.early,
            unpinned=list(report.unpinned)).model_dump())

    async def receive(self, request: Request, table: TableName) -> JSONResponse:
        """Read, decode and store one body; at most ``max_concurrent_bodies`` at once."""
        try:
            await asyncio.wait_for(self._bodies.acquire(), self.settings.write_wait_seconds)
        except TimeoutError:
            return self.refused(table, "busy", 503, "too many bodies at once; retry shortly",
                                {"Retry-After": "1"})
        try:
            body = await self._body_of(request, table)
            return await run_in_threadpool(self.ingest, table, body, request.headers)
        finally:
            self._bodies.release()

    def start(self) -> None:
        if self.watch is not None:
            try:
                self.watch.start()
            except Exception as exc:  # this model's checks only
                log.exception("the intra-day drift checks of model %s cannot start", self.name)
                self.watch_problem = f"{type(exc).__name__}: {exc}"
                self.watch = None

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
