"""The FastAPI app: the service of one model, or of every model of a workspace.

Writes are durable before the answer: each accepted batch is written to the store (Parquet,
fsynced, renamed into place) inside the request, on a worker thread so the event loop keeps
answering (health checks, 429s). One writer at a time per model; a write that cannot get
the writer within ``service.write_wait_seconds`` is answered 429 with Retry-After. Bodies are
read in chunks and refused (413) as soon as they pass ``service.max_body_bytes``. Every
``service.compact_every_writes`` writes to a model, a background thread merges the small
files they left (``store.compaction``: safe for readers and writers running meanwhile). With
``drift.every``, a thread checks the model's prediction drift within the day
(``service.watch``).

A workspace's service routes each model under ``/v1/models/{name}/...`` (its API) and
``/models/{name}/...`` (its pages); its home page lists the models. A workspace of one model
(and a single model's config) also answers at the root, as a single model's service does.
One model's failure (a broken config, an unreadable store, a failing check) is answered or
shown for that model; the others serve on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hindsight.config import ServiceSettings
from hindsight.monitor import Monitor
from hindsight.service.access import Keys, ModelSeries
from hindsight.service.connections import LoopbackGuard
from hindsight.service.guard import Guard
from hindsight.service.metrics import DriftCollector, DriftWatched, IngestMetrics, StoreCollector
from hindsight.service.model_list import model_rows
from hindsight.service.routes import TEMPLATES, Pages, add_api, add_pages
from hindsight.service.served import ServedModel
from hindsight.service.signin import Sessions, add_signin

if TYPE_CHECKING:
    from hindsight.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """What one service serves: its models in the workspace's order, the ones it cannot
    serve with the reason, and whether it is a workspace (routes per model)."""

    monitors: dict[str, Monitor]
    broken: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    workspace: bool = False
    title: str = ""


def create_app(monitor: Monitor, token: str | None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The service of one monitor (the caller closes it). ``clock``: when the intra-day
    drift checks are due (the wall clock by default)."""
    name = monitor.config.model
    return _service(Served({name: monitor}, order=[name], title=name),
                    monitor.config.service, Keys(token), clock, owns_monitors=False)


def create_workspace_app(workspace: Workspace, keys: Keys,
                         clock: Callable[[], datetime] | None = None,
                         only: str | None = None) -> FastAPI:
    """The service of every model of ``workspace`` (``only``: of that one), with a monitor
    of its own for each, closed when the app shuts down. A model whose config is broken, or
    whose monitor cannot be opened, is answered with its reason; the others serve."""
    names = [only] if only is not None else workspace.names
    if only is not None:
        workspace.config(only)  # an unknown or broken model is an error here, by name
    monitors: dict[str, Monitor] = {}
    broken = {n: str(workspace.broken[n]) for n in names if n in workspace.broken}
    for name in names:
        if name in workspace.models:
            try:
                monitors[name] = Monitor(workspace.models[name])
            except Exception as exc:  # this model only: the others serve
                log.exception("model %s cannot be served", name)
                broken[name] = f"{type(exc).__name__}: {exc}"
    title = (names[0] if not workspace.is_workspace or len(names) == 1
             else f"{len(names)} models")
    served = Served(monitors, broken, names, workspace.is_workspace, title)
    return _service(served, workspace.service, keys, clock, owns_monitors=True)


def _service(served: Served, settings: ServiceSettings, keys: Keys,
             clock: Callable[[], datetime] | None, owns_monitors: bool) -> FastAPI:
    registry = CollectorRegistry()
    ingest_metrics = IngestMetrics(registry)
    bodies = asyncio.Semaphore(settings.max_concurrent_bodies)
    models = {name: ServedModel(monitor, settings, ingest_metrics, bodies, clock)
              for name, monitor in served.monitors.items()}
    registry.register(StoreCollector({n: m.monitor.store for n, m in models.items()},
                                     tuple(served.broken)))
    registry.register(DriftCollector({n: _watched(m) for n, m in models.items()
                                      if m.monitor.config.drift.every}))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for model in models.values():
            model.start()
        try:
            yield
        finally:
            for model in models.values():
                try:
                    model.stop()
                finally:
                    if owns_monitors:
                        model.monitor.close()

    # The schema names the models, their columns and features: served by a route below,
    # behind the same rule as every other read. No /docs: its assets would come from a CDN.
    app = FastAPI(title="hindsight", version="0.1.0",
                  description=f"Monitoring of {', '.join(served.order)}: ingest, alerts, "
                              "metrics.",
                  openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    if not keys.required:  # loopback only: still refuse other sites' pages and other hosts
        app.add_middleware(LoopbackGuard)
    only = next(iter(models.values())) if len(models) == 1 and not served.broken else None
    app.state.served = models
    app.state.compactor = only.compactor if only else None
    app.state.drift_watch = only.watch if only else None

    sessions = Sessions(keys, settings.session_hours * 3600) if keys.required else None
    guard = Guard(keys, sessions, settings.open_reads)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    pages = Pages(templates, guard, listed=len(served.order) > 1)
    add_signin(app, sessions, templates, served.title, settings.secure_cookie)
    for name, model in models.items():
        if served.workspace:
            add_api(app, model, f"/v1/models/{name}", guard, workspace=True)
            add_pages(app, model, f"/models/{name}", pages)
    if only is not None:  # one model: its routes at the root too, as a single model's
        add_api(app, only, "/v1", guard, workspace=False)
        add_pages(app, only, "", pages)
    else:
        _add_model_list(app, served, models, pages)
    if served.workspace:
        _add_misses(app, served, guard)
    _add_shared(app, registry, guard)
    return app


def _watched(model: ServedModel) -> DriftWatched:
    return DriftWatched(lambda: model.watch.latest if model.watch else None,
                        lambda: model.watch.failures if model.watch else 0)


def _add_model_list(app: FastAPI, served: Served, models: Mapping[str, ServedModel],
                    pages: Pages) -> None:
    @app.get("/", response_class=HTMLResponse)
    def model_list(request: Request) -> HTMLResponse:
        """Every model with its headline metric, label coverage, open alerts and last run;
        broken models with their reason."""
        scope = pages.guard.page_scope(request)
        return pages.templates.TemplateResponse(request, "models.html", {
            "page": "models", "title": "models", "model": served.title, "base": "",
            "listed": True, "range_query": "",
            "signed_in": pages.guard.session_scope(request) is not None,
            "rows": model_rows(models, served.broken, served.order, scope),
            "scope": scope})


def _add_misses(app: FastAPI, served: Served, guard: Guard) -> None:
    """``/v1/models``, and the answers for a model that is not served: unknown (404, naming
    the models the caller may open) or broken (503, with its config's message)."""

    @app.get("/v1/models", tags=["models"])
    def list_models(request: Request) -> list[dict[str, str | None]]:
        """The workspace's models the token opens, each ``ok`` or ``broken`` with why."""
        scope = guard.machine_scope(request)
        return [{"model": n, "status": "broken" if n in served.broken else "ok",
                 "error": served.broken.get(n)} for n in served.order
                if (n in served.broken and scope.everything)
                or (n in served.monitors and scope.opens(n))]

    def miss(request: Request, model: str, machine: bool) -> None:
        scope = guard.machine_scope(request) if machine else guard.page_scope(request)
        if model in served.broken and scope.everything:
            raise HTTPException(503, f"model {model!r} is not served: its config is broken: "
                                     f"{served.broken[model]}")
        if model in served.monitors:
            return
        known = [n for n in served.order if scope.opens(n)
                 and (n in served.monitors or scope.everything)]
        raise HTTPException(404, f"no model {model!r} in this workspace; its models: "
                                 f"{', '.join(known) or 'none this token opens'}")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    @app.api_route("/v1/models/{model}", methods=methods, include_in_schema=False)
    @app.api_route("/v1/models/{model}/{rest:path}", methods=methods,
                   include_in_schema=False)
    def api_miss(request: Request, model: str, rest: str = "") -> None:
        miss(request, model, machine=True)
        raise HTTPException(404, f"model {model!r} has no route /{rest}")

    if len(served.order) == 1 and served.broken:
        # a one-model workspace answers at the root too: there, its broken model says why
        [name] = served.order

        @app.api_route("/v1/{rest:path}", methods=methods, include_in_schema=False)
        def root_miss(request: Request, rest: str) -> None:
            miss(request, name, machine=True)

    @app.get("/models/{model}", include_in_schema=False)
    @app.get("/models/{model}/{rest:path}", include_in_schema=False)
    def page_miss(request: Request, model: str, rest: str = "") -> RedirectResponse:
        miss(request, model, machine=False)
        if not rest:  # /models/{name}: its overview is /models/{name}/
            return RedirectResponse(f"/models/{model}/", 308)
        raise HTTPException(404, f"model {model!r} has no page /{rest}")


def _add_shared(app: FastAPI, registry: CollectorRegistry, guard: Guard) -> None:
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus exposition format: every model's series (a model's own token: that
        model's)."""
        scope = guard.machine_scope(request)
        shown = registry if scope.everything else ModelSeries(registry.collect, scope)
        return PlainTextResponse(generate_latest(shown),
                                 media_type=CONTENT_TYPE_LATEST)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> dict[str, Any]:
        """The whole document for the workspace's token; a model's own token sees the
        routes of the models it opens (and the shared ones)."""
        scope = guard.machine_scope(request)
        document = app.openapi()
        if scope.everything:
            return document
        document = copy.deepcopy(document)
        document["paths"] = {
            path: item for path, item in document["paths"].items()
            if not path.startswith(("/v1/models/", "/models/"))
            or scope.opens(path.split("/")[3 if path.startswith("/v1/") else 2])}
        return document

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Answered on the event loop: never queued behind writers."""
        return {"status": "ok"}


__all__ = ["Served", "create_app", "create_workspace_app"]
