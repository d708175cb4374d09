"""The routes of one model: its API (ingest, alerts) under ``api`` and its pages under
``pages``. A single model's service adds them once at the root (``/v1/predictions``, ``/``,
``/segments``, ...); a workspace's adds them for each model (``/v1/models/{name}/...``,
``/models/{name}/...``). Handlers parse, call the model's monitor, and answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from hindsight.service import views
from hindsight.service.alert_view import alert_view, describe_segment
from hindsight.service.bodies import request_body
from hindsight.service.guard import Guard
from hindsight.service.served import IngestAnswer, Refusal, ServedModel

TEMPLATES = Path(__file__).parent / "templates"

From = Annotated[str | None, Query(alias="from", description="first day shown (YYYY-MM-DD)")]
To = Annotated[str | None, Query(description="last day shown (YYYY-MM-DD): the run of this "
                                             "date, or the latest before it")]

Drop = Annotated[float, Query(ge=0, le=1e6, description="the drop in the headline metric "
                                                        "whose days to catch are shown")]


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


INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token"},
    413: {"model": Refusal, "description": "body, rows, columns or decoded size over the limit"},
    415: {"model": Refusal, "description": "a Content-Type hindsight does not read"},
    422: {"model": Refusal, "description": "rows that do not fit the config; nothing of the "
                                           "batch is stored"},
    429: {"model": Refusal, "description": "the writer is busy; see Retry-After"},
    503: {"model": Refusal, "description": "too many bodies at once; see Retry-After"},
}
#: in a workspace, a model's own token may be sent to another model
OTHER_MODEL: dict[int | str, dict[str, Any]] = {
    403: {"description": "the token opens other models, not this one"}}


def add_api(app: FastAPI, served: ServedModel, api: str, guard: Guard,
            workspace: bool) -> None:
    """``POST {api}/predictions``, ``POST {api}/labels`` and ``GET {api}/alerts``."""
    monitor, config = served.monitor, served.monitor.config
    tags: list[str | Enum] | None = [config.model] if workspace else None
    extra: dict[int | str, dict[str, Any]] = OTHER_MODEL if workspace else {}
    writes = [Depends(guard.writes(config.model))]

    @app.post(f"{api}/predictions", response_model=IngestAnswer,
              responses={**INGEST_RESPONSES, **extra}, dependencies=writes, tags=tags,
              openapi_extra={"requestBody": request_body(config, "predictions")})
    async def post_predictions(request: Request) -> JSONResponse:
        """Log predictions: a JSON array, NDJSON, an Arrow IPC stream or Parquet. A batch
        with a bad row is refused whole (422, naming the row); re-sending stores nothing."""
        return await served.receive(request, "predictions")

    @app.post(f"{api}/labels", response_model=IngestAnswer,
              responses={**INGEST_RESPONSES, **extra}, dependencies=writes, tags=tags,
              openapi_extra={"requestBody": request_body(config, "labels")})
    async def post_labels(request: Request) -> JSONResponse:
        """Log labels, in the same formats. The latest label per id wins."""
        return await served.receive(request, "labels")

    @app.get(f"{api}/alerts", dependencies=[Depends(guard.machine_reads(config.model))],
             tags=tags, responses=extra)
    def get_alerts(start: date | None = None, end: date | None = None,
                   state: Annotated[Literal["opened", "ongoing", "stale", "resolved", "open"]
                                    | None, Query()] = None) -> list[dict[str, Any]]:
        """Alert rows of the runs in a range, as ``hindsight alerts --format json``
        (``open``: what is open after the latest run of the range, one row each)."""
        found = (monitor.open_alerts(start, end) if state == "open" else
                 [a for a in monitor.alerts(start, end) if state in (None, a.state)])
        return [a.as_json() for a in found]


@dataclass(frozen=True)
class Pages:
    """What every page of a service shares: its templates, its guard and whether it lists
    models (a workspace of more than one: each page then links back to the list)."""

    templates: Jinja2Templates
    guard: Guard
    listed: bool

    def render(self, request: Request, served: ServedModel, base: str, name: str,
               **context: Any) -> HTMLResponse:
        days = getattr(context.get("view"), "days", None)
        return self.templates.TemplateResponse(request, f"{name}.html", {
            "page": name, "model": served.name, "title": name, "base": base,
            "listed": self.listed, "range_query": days.query if days else "",
            "signed_in": self.guard.session_scope(request) is not None, **context})


def add_pages(app: FastAPI, served: ServedModel, base: str, pages: Pages) -> None:
    """The model's pages under ``base`` (``""``: at the root); every link in them stays
    under ``base``."""
    monitor, writer = served.monitor, served.writer
    reads = [Depends(pages.guard.reads(served.name))]
    tags: list[str | Enum] | None = [served.name] if base else None
    extra = OTHER_MODEL if base else {}

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return pages.render(request, served, base, name, **context)

    @app.get(f"{base}/", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses=extra)
    def overview_page(request: Request, start: From = None, to: To = None) -> HTMLResponse:
        """Aggregate metric by day with label coverage, and the open alerts."""
        with writer:
            return page(request, "overview", view=views.overview(monitor,
                                                                 days=days_of(start, to)))

    @app.get(f"{base}/alert", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses={404: {"description": "no alert with that key (on that date)"},
                        **extra})
    def alert_page(request: Request, key: str, date: date | None = None) -> HTMLResponse:
        """One alert whole, with every segment it explains (the run of ``date``, default:
        the latest run that has it), its trend and links to its history and drift."""
        found = [a for a in monitor.alerts(date, date) if a.key == key]
        if not found:
            raise HTTPException(404, "no alert with that key" + (f" on {date}" if date else ""))
        with writer:
            return page(request, "alert", view=alert_view(monitor, found[-1]),
                        describe=describe_segment)

    @app.get(f"{base}/segments", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses=extra)
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

    @app.get(f"{base}/drift", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses=extra)
    def drift_page(request: Request, feature: str | None = None, start: From = None,
                   to: To = None) -> HTMLResponse:
        """Prediction drift against its noise band; features ranked; one histogram."""
        with writer:
            return page(request, "drift", view=views.drift(monitor, feature,
                                                           days_of(start, to)))

    @app.get(f"{base}/coverage", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses=extra)
    def coverage_page(request: Request, rows: str | None = None, columns: str | None = None,
                      show: str = "drop", drop: Drop = 0.05) -> HTMLResponse:
        """Per cross of two segment columns: the smallest detectable drop (or the days to
        catch ``drop``) as of the latest run; each blind cell with its reason."""
        with writer:
            return page(request, "coverage",
                        view=views.coverage(monitor, rows, columns, show, drop))

    @app.get(f"{base}/versions", response_class=HTMLResponse, dependencies=reads, tags=tags,
             responses=extra)
    def versions_page(request: Request) -> HTMLResponse:
        with writer:
            day, seen = monitor.versions()
        return page(request, "versions", day=day, seen=seen)
