"""The ``hindsight`` command. It parses input, calls the layers below and formats output.

The layers below are imported when a command runs, not at start: ``--help`` and a command that
only reads results do not load the engine, the statistics or the HTTP client."""

from __future__ import annotations

import difflib
import functools
import importlib
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from hindsight.errors import ConfigError, HindsightError, exit_code
from hindsight.listing import Rows, csv_text

if TYPE_CHECKING:
    from hindsight.alerts.delivery import DeliveryReport
    from hindsight.alerts.model import Alert
    from hindsight.jobs.coverage import CoverageReport
    from hindsight.jobs.daily import RunSummary
    from hindsight.jobs.intraday import CheckResult
    from hindsight.jobs.isolated import Outcome
    from hindsight.jobs.results import DriftRanking, MetricRow
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

VALIDATION_FAILED = 5
NO_PREDICTIONS = 6  # a run whose window holds no prediction
STORE_PROBLEMS = 4  # as a StoreError
DEMO_DAYS, DEMO_PER_DAY = 36, 10_000
# No markup or emoji codes: user strings ("[/v2]", ":x:") are printed as they are; lines are
# not broken at the console's width (a terminal wraps them itself, a pipe keeps them whole).
out = Console(markup=False, emoji=False, soft_wrap=True)
err = Console(stderr=True, markup=False, emoji=False, soft_wrap=True)
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]),
                      default="table", show_default=True,
                      help="Output format: a table (plain columns when piped), json or csv.")
JSON_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]),
                           default="table", show_default=True, help="Output format.")


def _day(_: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from exc


def _progress() -> Progress:
    """Progress bars on a terminal's stderr; nothing when stderr is a pipe or a file."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False,
                    disable=not err.is_terminal)


ENGINE = click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default=None,
    help="What runs the queries. Default: the config's engine (duckdb unless it says spark).")


def spare_pandas_probe() -> None:
    """Where pandas is installed, pyarrow imports it (0.3-0.5 s) on its first conversion of
    any kind, to learn whether its input is a pandas object. A command reads and writes files
    and holds no pandas object: let that probe find none, in a process that has not loaded
    pandas. Only for the command's own process: afterwards pyarrow's pandas conversions
    (``Table.from_pandas`` still works) no longer treat pandas types specially."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(_NoPandas)


class _NoPandas:
    """An import finder that finds pandas nowhere."""

    @staticmethod
    def find_spec(name: str, *_: object) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas: left out of this command", name=name)


@contextmanager
def _monitor(ctx: click.Context, engine: str | None = None) -> Iterator[Monitor]:
    from hindsight.config import load_config
    from hindsight.monitor import Monitor

    if ctx.obj.get("own_process"):
        spare_pandas_probe()
    config = load_config(ctx.obj["config"], ctx.obj.get("model"))
    if engine is not None:
        config = config.model_copy(update={"engine": engine})
    monitor = Monitor(config)
    try:
        yield monitor
    finally:
        monitor.close()


MODEL_ENV_VAR = "HINDSIGHT_MODEL"
MODEL_HELP = (f"The model, in a workspace config of several (its name under models:). "
              f"Default: ${MODEL_ENV_VAR}. Without one, run, backfill, compact, check, deliver "
              "and storage retention/tier cover every model; other commands ask for one.")


MODELS_FAILED = 7  # a command over every model of a workspace: one or more of them failed
JOBS = click.option(
    "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
    help="Without --model in a workspace of several models: how many models at once, each in "
         "a process of its own. Default: the machine's cores.")
# what every model's process needs: imported once, before the processes fork from this one
DAILY_JOB = ("hindsight.monitor", "hindsight.jobs.daily", "hindsight.engine.duck",
             "hindsight.alerts.rules")
STORE_UPKEEP = ("hindsight.monitor",)


def every_model(*preload: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command that, without --model in a workspace of several models, runs once for
    every model, each in a process of its own (one model's bad data or crash does not stop
    the others), then prints a summary and exits ``MODELS_FAILED`` if any failed. The
    command takes ``--jobs`` (``JOBS``); a one-model config runs it as before."""
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def each(ctx: click.Context, *args: Any, jobs: int | None, **kwargs: Any) -> None:
            names = _every_model_names(ctx)
            if names is None:
                command(ctx, *args, **kwargs)
                return
            for module in preload:
                importlib.import_module(module)
            if ctx.obj.get("own_process"):
                spare_pandas_probe()
            _fan_out(ctx, names, lambda: command(ctx, *args, **kwargs),
                     jobs or os.cpu_count() or 1, kwargs.get("fmt", "table"))
        return each
    return decorate


def _every_model_names(ctx: click.Context) -> list[str] | None:
    """Every model's name when the command is to cover them all: no --model, and a workspace
    of more than one model."""
    if ctx.obj.get("model") is not None:
        return None
    from hindsight.workspace import load_workspace

    space = load_workspace(ctx.obj["config"])
    return space.names if space.is_workspace and len(space.names) > 1 else None


def _fan_out(ctx: click.Context, names: list[str], once: Callable[[], None],
             jobs: int, fmt: str) -> None:
    """``once`` for every model, each in a process of its own. Each model's output is shown
    whole, under its name, then a summary; with ``--format json`` one list instead (a record
    per model: its outcome, and the command's own json as ``result``), with csv the models'
    rows with a ``model`` column first. Their error output goes to stderr, each line after
    the model's name."""
    from hindsight.jobs.isolated import run_each

    def work(name: str) -> tuple[int, str]:
        """In the model's own process: the command for that model, its errors reported as
        ``main`` reports them."""
        ctx.obj["model"] = name
        ctx.obj.pop("outcome", None)
        code, why = _as_command(once)
        return code, why or ctx.obj.get("outcome") or ("done" if code == 0 else
                                                       f"exit {code}")

    def show(outcome: Outcome) -> None:
        if fmt == "table":
            click.echo(f"== {outcome.name} ==")
            if outcome.stdout:
                click.echo(outcome.stdout, nl=not outcome.stdout.endswith("\n"))
        for line in outcome.stderr.splitlines():
            click.echo(f"{outcome.name}: {line}", err=True)

    outcomes = run_each(names, work, jobs, show)
    failed = [o for o in outcomes if not o.ok]
    if fmt != "table":
        _emit_every_model(outcomes, fmt)
    else:
        _show_every_model(outcomes)
    if failed:
        err.print(Text.assemble(("error: ", "bold red"), f"{len(failed)} of {len(outcomes)} "
                  "models failed: " + ", ".join(f"{o.name} (exit {o.code})" for o in failed)
                  + "; the others' results are stored"), highlight=False)
        raise click.exceptions.Exit(MODELS_FAILED)


def _outcome_word(outcome: Outcome) -> str:
    return "ok" if outcome.ok else ("crashed" if outcome.crashed else "failed")


def _show_every_model(outcomes: Sequence[Outcome]) -> None:
    failed = [o for o in outcomes if not o.ok]
    out.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} models succeeded:",
              highlight=False)
    table = _table("", ("model", "outcome", "exit", "seconds", "detail"))
    for o in outcomes:
        table.add_row(o.name, _outcome_word(o), str(o.code), f"{o.seconds:.1f}", o.detail)
    _show(table)


def _emit_every_model(outcomes: Sequence[Outcome], fmt: str) -> None:
    if fmt == "csv":
        import csv
        import io

        rows = [{"model": o.name, **row} for o in outcomes
                for row in csv.DictReader(io.StringIO(o.stdout))]
        header = next((o.stdout.splitlines()[0].split(",") for o in outcomes if o.stdout), [])
        click.echo(csv_text(rows, ["model", *header]), nl=False)
        return
    records = []
    for o in outcomes:
        try:
            result = json.loads(o.stdout) if o.stdout.strip() else None
        except json.JSONDecodeError:
            result = o.stdout
        records.append({"model": o.name, "outcome": _outcome_word(o), "exit": o.code,
                        "seconds": round(o.seconds, 3), "detail": o.detail, "result": result})
    click.echo(json.dumps(records, indent=2))


def _as_command(once: Callable[[], None]) -> tuple[int, str | None]:
    """Run a command's body: its exit code and, when it failed with a message, that
    message (printed as ``main`` prints it)."""
    try:
        once()
    except HindsightError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        return exit_code(exc), str(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code, None
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code, exc.format_message()
    return 0, None


def _outcome(ctx: click.Context, text: str) -> None:
    """A command's result in a line, for the summary of a command over every model."""
    ctx.obj["outcome"] = text


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Config file. Default: $HINDSIGHT_CONFIG, else ./hindsight.yaml.")
@click.option("--model", "model", metavar="NAME", default=None, envvar=MODEL_ENV_VAR,
              help=MODEL_HELP)
@click.version_option(package_name="hindsight")
@click.pass_context
def cli(ctx: click.Context, config: str | None, model: str | None) -> None:
    """Catch models that fail silently: per-segment performance against delayed labels."""
    ctx.obj = {**(ctx.obj or {}), "config": config, "model": model or None}


@cli.group()
def log() -> None:
    """Log predictions or labels from CSV, Parquet or JSON-lines files, or directories of
    them (as Spark, pandas or polars write them)."""


@log.command("predictions")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_context
def log_predictions(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Log prediction files or directories of them. All are checked before any is stored."""
    with _monitor(ctx) as monitor:
        out.print(monitor.log_prediction_files(paths).summary("predictions"))


@log.command("labels")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_context
def log_labels(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Log label files or directories of them; the latest label per id wins."""
    with _monitor(ctx) as monitor:
        out.print(monitor.log_label_files(paths).summary("labels"))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.pass_context
def reference(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Set the reference: the labelled validation predictions at promotion (replaces the old)."""
    with _monitor(ctx) as monitor:
        out.print(monitor.log_reference_files(paths).summary("reference"))


@cli.command()
@click.option("--date", "day", callback=_day, default=None,
              help="Run as of the end of this UTC date. Default: yesterday.")
@click.option("--delivery-seconds", type=click.FloatRange(min=0), default=10.0,
              show_default=True, help="Deliver queued alerts for at most this long after "
              "the run (0: only queue); what the sinks have not taken by then stays pending.")
@ENGINE
@JOBS
@click.pass_context
@every_model(*DAILY_JOB)
def run(ctx: click.Context, day: date | None, delivery_seconds: float,
        engine: str | None) -> None:
    """Run the daily job as of a date. Its openings and resolutions are queued for the
    sinks, then delivered for at most --delivery-seconds; 'hindsight deliver' (which the
    cron line and the Kubeflow pipeline run next) and the service's checks send the rest.
    In a workspace, without --model: every model, each in a process of its own, then a
    summary; exit 7 when any model failed."""
    as_of = day or datetime.now(UTC).date() - timedelta(days=1)
    with _monitor(ctx, engine) as monitor:
        summary = monitor.run(as_of)
        out.print(_summary_line(summary))
        _outcome(ctx, _short_summary(summary))
        if summary.alerts:
            _print_alerts(list(summary.alerts), "table")
        if monitor.config.sinks:
            _print_delivery(monitor.deliver(within=delivery_seconds, wait=False))
        first = as_of - timedelta(days=monitor.config.label_window_days - 1)
    if summary.cells == 0:
        _outcome(ctx, f"no predictions from {first} to {as_of}")
        err.print(f"error: no predictions from {first} to {as_of} (the run's window): the "
                  "feed stopped, or the date is past the data; nothing was judged",
                  highlight=False)
        raise click.exceptions.Exit(NO_PREDICTIONS)


def _duration(_: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    from hindsight.config import parse_duration

    if value is None:
        return None
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    assert isinstance(parsed, timedelta)
    return parsed


@cli.command()
@click.option("--start", callback=_day, required=True, help="First date (YYYY-MM-DD).")
@click.option("--end", callback=_day, required=True, help="Last date (YYYY-MM-DD).")
@click.option("--every", callback=_duration, default=None,
              help="Also replay the intra-day drift checks this often (as 1h), each day's "
                   "before its daily run, as the service would have run them.")
@click.option("--window", callback=_duration, default=None,
              help="The checks' trailing window (default: drift.window, at least --every).")
@ENGINE
@JOBS
@click.pass_context
@every_model(*DAILY_JOB)
def backfill(ctx: click.Context, start: date, end: date, every: timedelta | None,
             window: timedelta | None, engine: str | None) -> None:
    """Replay the daily job for every date in a range, each as of its own date. In a
    workspace, without --model: every model, as 'run' does."""
    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    if window is not None and every is None:
        raise click.BadParameter("--window needs --every")
    checks = {"opened": 0, "resolved": 0, "run": 0}
    with _monitor(ctx, engine) as monitor, _progress() as bar:
        task = bar.add_task("daily runs", total=(end - start).days + 1)

        def advance(summary: RunSummary) -> None:
            bar.update(task, advance=1, description=f"run {summary.as_of}")

        def checked(result: CheckResult) -> None:
            checks["run"] += 1
            checks["opened"] += result.count("opened")
            checks["resolved"] += result.count("resolved")
            bar.update(task, description=f"check {result.at:%Y-%m-%d %H:%M}")

        summaries = monitor.backfill(start, end, advance, every, window, checked)
    opened = sum(s.count("opened") for s in summaries)
    resolved = sum(s.count("resolved") for s in summaries)
    if every is not None:
        out.print(f"{checks['run']} intra-day checks: {checks['opened']} alerts opened, "
                  f"{checks['resolved']} resolved.")
    still_open = summaries[-1].count('opened', 'ongoing', 'stale')
    out.print(f"{len(summaries)} runs: {opened} alerts opened, {resolved} resolved, "
              f"{still_open} open after the last run. "
              f"See 'hindsight alerts --start {start} --state opened'.")
    _outcome(ctx, f"{len(summaries)} runs: {opened} alerts opened, {resolved} resolved, "
                  f"{still_open} open after the last run")


def _print_delivery(report: DeliveryReport) -> None:
    line = f"Sinks: {report.delivered} delivered, {report.pending} pending"
    if report.note:
        line += f"; {report.note}"
    if report.errors:
        line += f" (retried next time; last error: {report.errors[-1]})"
    out.print(line, highlight=False)


@cli.group(invoke_without_command=True)
@click.option("--start", callback=_day, default=None, help="First run date.")
@click.option("--end", callback=_day, default=None, help="Last run date.")
@click.option("--state", type=click.Choice(["opened", "ongoing", "stale", "resolved", "open"]),
              default=None, help="Only alerts in this state ('open': what is open after the "
                                 "latest run of the range, one row each).")
@FORMAT
@click.pass_context
def alerts(ctx: click.Context, start: date | None, end: date | None, state: str | None,
           fmt: str) -> None:
    """Alerts the daily runs raised (one row per run while an alert is open), and the
    openings and resolutions of the intra-day drift checks."""
    if ctx.invoked_subcommand is not None:
        return
    with _monitor(ctx) as monitor:
        found = (monitor.open_alerts(start, end) if state == "open" else
                 [a for a in monitor.alerts(start, end) if state in (None, a.state)])
    _print_alerts(found, fmt)


@cli.command()
@click.option("--start", callback=_day, default=None, help="First run date.")
@click.option("--end", callback=_day, default=None, help="Last run date.")
@click.option("--segment", "segments", multiple=True, metavar="COLUMN=VALUE",
              help="One segment value (default: all predictions).")
@FORMAT
@click.pass_context
def drift(ctx: click.Context, start: date | None, end: date | None, segments: tuple[str, ...],
          fmt: str) -> None:
    """Which features moved: each day's features ranked by PSI, with KS, Wasserstein (in
    reference sd), Jensen-Shannon, new categories and missing values beside it."""
    with _monitor(ctx) as monitor:
        rows = monitor.drift(start, end, _parse_segments(segments) or None)
        missing = "" if rows else _why_no_drift(monitor, start, end)
    records = _drift_records(rows)
    if not rows and fmt == "table":
        out.print(f"No feature drift for that range: {missing}.")
        return
    table = _table("feature drift against the reference set, one row per feature and day, "
                   "most moved first", ("date", "feature", *DRIFT_COLUMNS.values()))
    for r in records:
        table.add_row(r["date"], r["feature"], *(_figure(r.get(m)) for m in DRIFT_COLUMNS))
    _emit(fmt, table, records, ("date", "feature", "segment", *DRIFT_COLUMNS))


# The key figures of a feature's drift, as the table heads them; csv and json have every one.
DRIFT_COLUMNS = {"psi": "psi", "ks": "ks", "wasserstein_sd": "wasserstein_sd",
                 "jensen_shannon": "jensen_shannon", "new_category_share": "new_categories",
                 "missing_rate": "missing", "missing_rate_reference": "missing_ref"}


def _drift_records(rows: Sequence[DriftRanking]) -> list[dict[str, Any]]:
    """One record per feature and day (in the ranking's order), a key per measure."""
    records: dict[tuple[date, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r.date, r.feature, json.dumps(r.segment, sort_keys=True))
        record = records.setdefault(key, {"date": r.date.isoformat(), "feature": r.feature,
                                          "segment": r.segment})
        record[r.method] = r.value
    return list(records.values())


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _why_no_drift(monitor: Monitor, start: date | None, end: date | None) -> str:
    from hindsight.store.partitions import Table

    if not monitor.store.files(Table.REFERENCE):
        return ("there is no reference set to compare with; log one with 'hindsight reference "
                "PATH'")
    runs = monitor.runs(start, end)
    if not runs:
        return "no daily run in that range; run 'hindsight run --date YYYY-MM-DD' first"
    return (f"the {len(runs)} run(s) found had no predictions of their day to compare (or, "
            "for a --segment, fewer than drift.min_samples of them)")


@alerts.command("test-sink")
@click.argument("name")
@click.pass_context
def test_sink(ctx: click.Context, name: str) -> None:
    """Send a test alert through one sink, now, and say whether it arrived."""
    with _monitor(ctx) as monitor:
        sinks = {s.name: s for s in monitor.sinks()}
        if name not in sinks:
            raise ConfigError(f"{monitor.config.source}: no sink named {name!r}; sinks: "
                              f"{', '.join(sinks) or 'none configured'}")
        today = datetime.now(UTC).date()
        from hindsight.alerts.model import Alert

        probe = Alert(date=today, kind="test", segment={}, metric="none", value=0.0,
                      reference=0.0, n=0, message="a test alert from 'hindsight alerts "
                      "test-sink': nothing is wrong", window_start=today, window_end=today)
        sinks[name].send(probe, monitor.config.model)
    out.print(f"Sink {name!r} took the test alert.")


@cli.command()
@click.option("--grace-minutes", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Keep replaced files this long after a compaction, for running readers.")
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def compact(ctx: click.Context, grace_minutes: float) -> None:
    """Merge each day's small prediction and label files into one (safe while readers run)."""
    with _monitor(ctx) as monitor, _progress() as bar:
        task = bar.add_task("compacting", total=None)

        def advance(table: Table, day: date) -> None:
            bar.update(task, advance=1, description=f"{table.value} {day}")

        report = monitor.compact(timedelta(minutes=grace_minutes), advance)
    out.print(report.summary())
    _outcome(ctx, report.summary().splitlines()[0])
    if report.failed:
        ctx.exit(4)  # as 'check' does for a store that needs a repair


@cli.group()
def storage() -> None:
    """What the store holds and what it will cost."""


@storage.command("status")
@FORMAT
@click.pass_context
def storage_status(ctx: click.Context, fmt: str) -> None:
    """Files, bytes and rows per table (and in the cold store), oldest and newest partition,
    small files awaiting compaction, debris of interrupted writes; what the next tiering and
    retention would move."""
    with _monitor(ctx) as monitor:
        found = monitor.storage_status()
        today = datetime.now(UTC).date()
        retiring = monitor.retention(today, dry_run=True)
        cooling = monitor.tiering_due(today)
    records = [{**asdict(s), "oldest": s.oldest and s.oldest.isoformat(),
                "newest": s.newest and s.newest.isoformat()} for s in found]
    table = _table(f"the store at {monitor.config.store}",
                   ("table", "files", "size", "of which cold", "rows", "oldest", "newest",
                    "small files", "debris"))
    for s in found:
        table.add_row(s.table, f"{s.files:,}", _size(s.bytes),
                      f"{s.cold_files:,} files, {_size(s.cold_bytes)}" if s.cold_files else "-",
                      f"{s.rows:,}", str(s.oldest or "-"), str(s.newest or "-"),
                      f"{s.small_files:,}", f"{s.debris:,}")
    _emit(fmt, table, records)
    if fmt != "table":
        return
    if cooling:
        out.print(f"The next 'hindsight storage tier' moves {len(cooling)} partitions to the "
                  f"cold store, from {min(d for _, d in cooling)} to "
                  f"{max(d for _, d in cooling)}.")
    if retiring:
        out.print(f"The next 'hindsight storage retention' deletes {len(retiring)} partitions "
                  f"({_size(sum(p.bytes for p in retiring))}), from "
                  f"{min(p.dt for p in retiring)} to {max(p.dt for p in retiring)}.")


@storage.command("retention")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--as-of", "as_of", callback=_day, default=None,
              help="Count ages from this date. Default: today (UTC).")
@FORMAT
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def storage_retention(ctx: click.Context, dry_run: bool, as_of: date | None,
                      fmt: str) -> None:
    """Delete date partitions older than storage.delete_after_days (whole days, never the
    reference set, validations, the outbox or a table's newest partition)."""
    today = as_of or datetime.now(UTC).date()
    with _monitor(ctx) as monitor:
        if not monitor.config.storage.delete_after_days.configured:
            _outcome(ctx, "no retention configured: everything is kept")
            if fmt != "table":
                _emit(fmt, _table("", ()), [], ("table", "date", "files", "bytes"))
                return
            out.print(f"No retention is configured in {monitor.config.source} "
                      "(storage.delete_after_days): everything is kept.")
            return
        gone = monitor.retention(today, dry_run)
    verb = "would delete" if dry_run else "deleted"
    _outcome(ctx, f"{verb} {len(gone)} partitions, {_size(sum(p.bytes for p in gone))}")
    if fmt == "table":  # what was done, whatever follows
        out.print(f"Retention as of {today}: {verb} {len(gone)} partitions, "
                  f"{_size(sum(p.bytes for p in gone))}.", highlight=False)
    table = _table("", ("table", "date", "files", "size"))
    for p in gone:
        table.add_row(p.table, str(p.dt), f"{p.files:,}", _size(p.bytes))
    _emit(fmt, table, [{"table": p.table, "date": p.dt.isoformat(), "files": p.files,
                        "bytes": p.bytes} for p in gone], ("table", "date", "files", "bytes"))


@storage.command("tier")
@click.option("--as-of", "as_of", callback=_day, default=None,
              help="Count ages from this date. Default: today (UTC).")
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def storage_tier(ctx: click.Context, as_of: date | None) -> None:
    """Move prediction and label days older than storage.hot_days to storage.cold_store
    (copy, read back and compare, commit; queries read both tiers)."""
    with _monitor(ctx) as monitor:
        report = monitor.tier(as_of or datetime.now(UTC).date())
    out.print(report.summary())
    _outcome(ctx, report.summary().splitlines()[0])
    if report.failed:
        ctx.exit(4)


@storage.command("migrate")
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def storage_migrate(ctx: click.Context) -> None:
    """Turn the store's predictions and labels into Delta tables, day by day, losing nothing
    (a day's Parquet files go only once its rows are committed and counted back). Stop the
    service and the runs first; run it again after an interruption."""
    with _monitor(ctx) as monitor, _progress() as bar:
        task = bar.add_task("migrating", total=None)

        def advance(table: Table, day: date) -> None:
            bar.update(task, advance=1, description=f"{table.value} {day}")

        done = monitor.migrate(advance)
    table = _table("Migrated to Delta tables",
                   ("table", "days committed", "rows", "repeats dropped", "files removed"))
    for m in done:
        table.add_row(m.table, f"{m.days:,}", f"{m.rows:,}", f"{m.repeats:,}", f"{m.removed:,}")
    _show(table)
    note = "" if monitor.config.storage.table_format == "delta" else (
        f"; set storage.table_format: delta in {monitor.config.source} so that a new store "
        "made from it is one too")
    _outcome(ctx, f"migrated {sum(m.rows for m in done):,} rows in "
                  f"{sum(m.days for m in done):,} days{note}")
    out.print(f"Done: the store's predictions and labels are Delta tables{note}.",
              highlight=False)


@storage.command("estimate")
@click.option("--rows-per-day", type=click.IntRange(1), required=True,
              help="Predictions a day.")
@click.option("--days", type=click.IntRange(1), default=365, show_default=True,
              help="How long the store keeps them.")
@click.option("--hot-days", type=click.IntRange(0), default=90, show_default=True,
              help="Days kept in the hot tier; older ones priced as cold.")
@click.option("--price-hot", type=click.FloatRange(0), default=0.023, show_default=True,
              help="USD per GB-month in the hot tier.")
@click.option("--price-cold", type=click.FloatRange(0), default=0.004, show_default=True,
              help="USD per GB-month in the cold tier.")
@click.option("--sample", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A predictions file to measure when the store is still empty.")
@click.option("--labels-per-prediction", type=click.FloatRange(0), default=None,
              help="Labels a prediction gets (corrections included), when the store cannot "
                   "say. Default: as measured in the store, else 1.")
@JSON_FORMAT
@click.pass_context
def storage_estimate(ctx: click.Context, rows_per_day: int, days: int, hot_days: int,
                     price_hot: float, price_cold: float, sample: str | None,
                     labels_per_prediction: float | None, fmt: str) -> None:
    """Project the store's size and monthly cost, from bytes per row measured by writing a
    sample with the config's columns (the store's newest rows when it has some)."""
    with _monitor(ctx) as monitor:
        found = monitor.storage_estimate(rows_per_day, days, hot_days, price_hot, price_cold,
                                         sample, labels_per_prediction)
    if fmt == "json":
        click.echo(json.dumps(found.as_json(), indent=2))
        return
    out.print(f"Measured on {found.sample}: {found.bytes_per_prediction:.1f} bytes a "
              f"prediction, {found.bytes_per_label:.1f} bytes a label, "
              f"{found.labels_per_prediction:.2f} labels a prediction.")
    out.print(f"{rows_per_day:,} predictions a day for {days} days: {_size(found.total_bytes)}"
              f" ({_size(found.hot_bytes)} hot for {min(days, hot_days)} days, "
              f"{_size(found.cold_bytes)} cold); about ${found.monthly_cost:,.2f} a month at "
              f"${price_hot}/GB hot and ${price_cold}/GB cold.")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


@cli.command(name="check")
@JSON_FORMAT
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def check_command(ctx: click.Context, fmt: str) -> None:
    """Check the store: every file opens, types agree, ids stored once, compactions
    consistent. Exit 0 when it is sound, 4 with a list of problems and their repair."""
    with _monitor(ctx) as monitor, _progress() as bar:
        task = bar.add_task("checking", total=None)
        report = monitor.check(lambda table: bar.update(task, advance=1,
                                                        description=f"checked {table.value}"))
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        counts = ", ".join(f"{table} {n:,}" for table, n in report.rows.items() if n)
        out.print(f"{report.files:,} files, rows: {counts or 'none'}.")
        for note in report.notes:
            out.print(f"note: {note}")
        for finding in report.problems:
            out.print(f"problem: {finding}")
        out.print("The store is sound." if report.ok else
                  f"{len(report.problems)} problem(s): nothing was changed.")
    _outcome(ctx, f"sound: {report.files:,} files" if report.ok else
             f"{len(report.problems)} problem(s): {report.problems[0]}")
    if not report.ok:
        raise click.exceptions.Exit(STORE_PROBLEMS)


@cli.command()
@click.option("--date", "day", callback=_day, default=None,
              help="As of the end of this UTC date. Default: the latest run, else yesterday.")
@click.option("--drop", type=click.FloatRange(min=0, min_open=True), default=0.05,
              show_default=True, help="The drop (metric units) whose delay is given.")
@click.option("--shift", type=click.FloatRange(min=0, min_open=True), default=0.1,
              show_default=True, help="The prediction drift shift whose delay is given (share "
              "of predictions changing class, or reference sd).")
@FORMAT
@click.pass_context
def coverage(ctx: click.Context, day: date | None, drop: float, shift: float,
             fmt: str) -> None:
    """What the monitor can see: per segment and cross, the smallest drop the performance
    rule would alert on and how many days after onset, the same for prediction drift, and
    why a blind cell is blind."""
    from hindsight.alerts.rules import DropRule
    from hindsight.jobs.coverage import coverage_of

    with _monitor(ctx) as monitor:
        runs = monitor.runs()
        as_of = day or (runs[-1] if runs else datetime.now(UTC).date() - timedelta(days=1))
        rule = monitor.rule
        if not isinstance(rule, DropRule):
            raise click.UsageError("coverage needs the built-in performance rule")
        report = coverage_of(as_of, monitor.config, monitor.store, monitor.engine, rule,
                             drop, shift)
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    elif fmt == "csv":
        click.echo(csv_text([c.as_json() for c in report.cells]), nl=False)
    else:
        _print_coverage(report)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve HTTP ingest, the alert API and /metrics (every model of a workspace, or the one
    --model names)."""
    import uvicorn

    from hindsight.service.access import Keys
    from hindsight.service.app import create_workspace_app
    from hindsight.service.connections import server_config
    from hindsight.workspace import load_workspace

    workspace = load_workspace(ctx.obj["config"])
    only = ctx.obj.get("model")
    if only is not None:
        workspace.config(only)  # an unknown or broken model: its error before any other
    settings = workspace.service
    keys = Keys.of(workspace, _token, only)
    if not keys.required:
        if not _loopback_only(host):
            raise ConfigError(f"no bearer token in ${settings.token_env}: refusing to serve "
                              f"on {host}; set the token, or serve on 127.0.0.1")
        err.print(f"No token in ${settings.token_env}: serving on {host} (loopback) only, "
                  "without authentication.")
    for name, problem in workspace.broken.items():
        if only is None:  # with --model, the others are not served at all
            err.print(f"Model {name} is not served (its routes answer 503 with why): {problem}")
    app = create_workspace_app(workspace, keys, only=only)
    config = server_config(app, host, port, settings)
    listening = config.bind_socket()  # bound before saying so: port 0 names its port
    click.echo(f"Listening on {_address(listening.getsockname())} "
               + ("(bearer token required for /v1 and /metrics; people sign in at "
                  "/signin)" if keys.required else "(no token: loopback only, no sign-in)"))
    sys.stdout.flush()
    uvicorn.Server(config).run(sockets=[listening])  # the app closes its monitors on exit


def _address(bound: tuple[Any, ...]) -> str:
    host, port = bound[0], bound[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _token(variable: str) -> str | None:
    """The bearer token in ``$variable``: surrounding whitespace (a newline from a secret
    file) is stripped, with a warning; a value of only whitespace is refused."""
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return None
    token = raw.strip()
    if not token:
        raise ConfigError(f"${variable} holds only whitespace: set the token, or unset it "
                          "to serve on loopback without one")
    if token != raw:
        err.print(f"${variable}: surrounding whitespace stripped from the token (clients "
                  "send it without)")
    return token


def _loopback_only(host: str) -> bool:
    """Whether every address ``host`` resolves to (IPv4 or IPv6) is a loopback address."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve it ({exc.strerror})") from exc
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
               for info in found)


@cli.command()
@click.option("--date", "day", callback=_day, default=None,
              help="The run to report on. Default: the latest.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="HTML file.")
@click.pass_context
def report(ctx: click.Context, day: date | None, out: str) -> None:
    """The dashboard's views as one static HTML file, to mail or archive."""
    from hindsight.service.report import render

    with _monitor(ctx) as monitor:
        html = render(monitor, day)
    Path(out).write_text(html, encoding="utf-8")
    err.print(f"Wrote {out} ({len(html) / 1e6:.1f} MB).")


@cli.command(name="deliver")
@JOBS
@click.pass_context
@every_model(*STORE_UPKEEP)
def deliver_command(ctx: click.Context) -> None:
    """Send the alerts the sinks have not taken yet (each recorded as sent before the next
    is sent; a killed delivery repeats at most the one in flight, under the same
    idempotency key)."""
    with _monitor(ctx) as monitor:
        report = monitor.deliver()
        _print_delivery(report)
    _outcome(ctx, f"{report.delivered} delivered, {report.pending} pending"
             + (f"; last error: {report.errors[-1]}" if report.errors else ""))


@cli.group()
def pipeline() -> None:
    """Schedule the daily job elsewhere: Kubeflow Pipelines, cron, a Kubernetes CronJob."""


SCHEDULE = click.option("--schedule", default="30 2 * * *", show_default=True,
                        help="When to run, as five cron fields in UTC.")


@pipeline.command("kubeflow")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Where to write the compiled pipeline (YAML).")
@SCHEDULE
@click.pass_context
def pipeline_kubeflow(ctx: click.Context, out_path: str, schedule: str) -> None:
    """Compile the daily job to a Kubeflow pipeline (steps count, judge, deliver); for a
    workspace, those steps for each model, each model's apart (with --model: that model's
    only)."""
    from hindsight.pipelines.cron import check_schedule
    from hindsight.pipelines.kubeflow import compile_pipeline, compile_workspace_pipeline
    from hindsight.workspace import load_workspace

    space = load_workspace(ctx.obj["config"])
    model = ctx.obj.get("model")
    cron = check_schedule(schedule)
    if space.is_workspace and model is None:
        notes = compile_workspace_pipeline(space, Path(out_path))
        err.print(f"Wrote {out_path}: for each of {len(space.models)} models "
                  f"({', '.join(space.models)}), its own steps count -> judge -> deliver, in "
                  "its image with its resources and retries; one model's failing step stops "
                  "only that model's later steps. An empty run_date counts the day before the "
                  "scheduled time.")
    else:
        config = space.config(model)
        notes = compile_pipeline(config, Path(out_path),
                                 store_root=space.store if space.is_workspace else None)
        settings = config.pipeline
        err.print(f"Wrote {out_path}: steps count -> judge -> deliver in {settings.image} "
                  f"({settings.cpu} CPU, {settings.memory} each, {settings.retries} retries); "
                  "an empty run_date counts the day before the scheduled time.")
    _warn(notes)
    # Kubeflow's recurring runs take six fields, seconds first
    out.print(f"Schedule it: kfp.Client().create_recurring_run(experiment_id=..., "
              f"job_name='hindsight-daily', pipeline_package_path={out_path!r}, "
              f"cron_expression='0 {cron}')")


@pipeline.command("cron")
@SCHEDULE
@click.option("--kubernetes", is_flag=True,
              help="Print a ConfigMap and a CronJob manifest instead of a crontab line.")
@click.option("--env-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of KEY=value lines the crontab line reads before it runs (the "
                   "bucket's credentials, the sinks' URLs); the CronJob reads "
                   "pipeline.secrets instead.")
@click.pass_context
def pipeline_cron(ctx: click.Context, schedule: str, kubernetes: bool,
                  env_file: str | None) -> None:
    """Print a crontab line (or a Kubernetes CronJob) that runs and delivers every day; for
    a workspace, one per model (with --model: that model's only)."""
    from hindsight.config import resolve_config_path
    from hindsight.pipelines.cron import (
        config_text,
        cronjob_manifest,
        crontab_line,
        deployment_notes,
        workspace_cronjobs,
        workspace_crontab,
        workspace_notes,
    )
    from hindsight.workspace import load_workspace

    space = load_workspace(ctx.obj["config"])
    model = ctx.obj.get("model")
    every = space.is_workspace and model is None
    if kubernetes and env_file is not None:
        raise click.UsageError("--env-file is for the crontab line; the CronJob reads "
                               "pipeline.secrets and pipeline.env from the config")
    config_file = resolve_config_path(ctx.obj["config"])
    env = None if env_file is None else Path(env_file)
    if every:
        if kubernetes:
            click.echo(workspace_cronjobs(space, schedule), nl=False)
        else:
            click.echo("\n".join(workspace_crontab(schedule, space, config_file, env)))
        _warn(workspace_notes(space, cron=not kubernetes, env_file=env_file is not None))
        return
    config = space.config(model)
    root = space.store if space.is_workspace else None
    if kubernetes:
        click.echo(cronjob_manifest(config, schedule, config_text(config), store_root=root),
                   nl=False)
        _warn(deployment_notes(config, store_root=root))
    else:
        click.echo(crontab_line(schedule, config, config_file, env,
                                model=model if space.is_workspace else None))
        _warn(deployment_notes(config, cron=True, env_file=env_file is not None))


def _warn(notes: list[str]) -> None:
    for note in notes:
        err.print(f"warning: {note}", highlight=False)


@cli.command()
@click.option("--as-of", "as_of", callback=_day, default=None,
              help="Up to the end of this date. Default: the latest prediction day.")
@click.option("--daily", type=int, default=None, metavar="DAYS",
              help="Instead: each value's share of each of the last DAYS days (a serving "
                   "variant's share is a cascade's escalation rate or a cache's hit rate).")
@FORMAT
@click.pass_context
def versions(ctx: click.Context, as_of: date | None, daily: int | None, fmt: str) -> None:
    """Model versions, provider models and serving variants: first and last seen, share of
    the last day's traffic, pinned or not, validation verdict."""
    with _monitor(ctx) as monitor:
        if not monitor.config.columns.versions():
            raise ConfigError(f"{monitor.config.source}: no version column is mapped; map "
                              "columns.model_version (or provider_model, serving_variant)")
        if daily is not None:
            _print_daily_versions(monitor, as_of, daily, fmt)
            return
        day, seen = monitor.versions(as_of)
    if day is None and fmt == "table":
        out.print("No predictions stored yet: no versions to list.")
        return
    table = _table(f"versions up to {day}", ("column", "value", "first seen", "last seen",
                                             f"share of {day}", "predictions", "pinned",
                                             "validation"))
    for v in seen:
        share = v.share
        pinned = "-" if v.pinned is None else ("yes" if v.pinned else "NO")
        table.add_row(v.column, v.value, f"{v.first_seen:%Y-%m-%d %H:%M}",
                      f"{v.last_seen:%Y-%m-%d %H:%M}", f"{share:.1%}", f"{v.total:,}", pinned,
                      v.validation or "-")
    _emit(fmt, table, [v.as_json() for v in seen])


@cli.command(name="validate")
@click.option("--candidate", type=click.Path(), required=True,
              help="The candidate's predictions on the validation set (id, prediction): a "
                   "file, or a directory of part files.")
@click.option("--version", default=None, help="The candidate's version, for the report.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Also fail below this share of predictions equal to the promoted model's.")
@FORMAT
@click.pass_context
def validate_command(ctx: click.Context, candidate: str, version: str | None,
                     min_agreement: float | None, fmt: str) -> None:
    """Gate a deploy: exit 0 when the candidate is no worse than the promoted model overall
    and in every segment, 5 when it fails (the report says where)."""
    with _monitor(ctx) as monitor:
        result = monitor.validate_file(candidate, version, min_agreement)
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
    elif fmt == "csv":
        click.echo(csv_text([c.as_json() for c in result.comparisons]), nl=False)
    else:
        table = _table(f"candidate {version or candidate} vs the promoted model, "
                       f"{result.rows:,} validation rows",
                       ("segment", "n", "promoted", "candidate", "delta [95%]", "p worse", ""))
        for c in result.comparisons:
            table.add_row(", ".join(f"{k}={v}" for k, v in c.segment.items()) or "(all)",
                          f"{c.n:,}", f"{c.promoted:.1%}", f"{c.candidate:.1%}",
                          f"{c.candidate - c.promoted:+.1%} [{c.low:+.1%}, {c.high:+.1%}]",
                          f"{c.p:.2g}", "WORSE" if c.worse else "")
        _show(table)
        out.print(f"Agreement with the promoted model: {result.agreement:.1%}. Class shares "
                  f"moved {result.class_shift:.1%} (noise at this size: "
                  f"{result.class_shift_noise:.1%}).")
        out.print(Text("PASSED", "bold green") if result.passed else
                  Text.assemble(("FAILED", "bold red"), ": " + "; ".join(result.failures)))
    if not result.passed:
        raise click.exceptions.Exit(VALIDATION_FAILED)


@cli.command()
@click.option("--incidents", type=click.Path(dir_okay=False, exists=True), required=True,
              help="YAML list of known incidents: {segment: {column: value}, start, end}.")
@click.option("--start", callback=_day, default=None, help="First run date.")
@click.option("--end", callback=_day, default=None, help="Last run date.")
@FORMAT
@click.pass_context
def evaluate(ctx: click.Context, incidents: str, start: date | None, end: date | None,
             fmt: str) -> None:
    """Score the alerts of past runs against known incidents: delay and false alerts."""
    from hindsight.jobs.evaluation import evaluate as score
    from hindsight.jobs.evaluation import load_incidents

    known = load_incidents(incidents)
    with _monitor(ctx) as monitor:
        result = score(monitor.alerts(start, end), known, len(monitor.runs(start, end)))
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    if fmt == "csv":
        click.echo(csv_text([d.as_json() for d in result.detections]), nl=False)
        return
    table = _table(f"{result.runs} runs replayed",
                   ("incident", "start", "detected", "delay", "segment"))
    for d in result.detections:
        table.add_row(d.incident.label, str(d.incident.start),
                      str(d.alert.date) if d.alert else "missed",
                      f"{d.delay_days} days" if d.alert else "-",
                      "exact" if d.exact else ("overlapping" if d.alert else "-"))
    _show(table)
    out.print(f"False alerts: {len(result.false_alerts)}")
    if result.false_alerts:
        _print_alerts(list(result.false_alerts), "table")


@cli.command()
@click.option("--date", "day", callback=_day, required=True, help="Prediction date.")
@click.option("--as-of", "as_of", callback=_day, default=None,
              help="Labels that had arrived by this date's run. Default: the latest run.")
@click.option("--segment", "segments", multiple=True, metavar="COLUMN=VALUE",
              help="Only cells inside this segment; repeat to cross segments.")
@FORMAT
@ENGINE
@click.pass_context
def metrics(ctx: click.Context, day: date, as_of: date | None, segments: tuple[str, ...],
            fmt: str, engine: str | None) -> None:
    """Metrics of the predictions made on a date."""
    wanted = _parse_segments(segments)
    with _monitor(ctx, engine) as monitor:
        _check_segment_columns(wanted, monitor.config.segments)
        seen_as_of, rows = monitor.metrics(day, as_of, wanted or None)
        if wanted and not rows:
            _, every = monitor.metrics(day, seen_as_of)
            _check_segment_values(wanted, every)
    rows = sorted(rows, key=lambda r: len(r.segment))  # the whole population first
    _print_metrics(rows, f"predictions of {day}, labels as of {seen_as_of}", fmt)


@cli.command()
@click.option("--full", is_flag=True, help="Full scale: 500,000 predictions a day.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="hindsight-demo",
              show_default=True, help="Where to write the demo's config and store.")
@click.option("--days", type=click.IntRange(21, 365), default=None,
              help=f"Days to simulate (the failure starts 14 days before the end). Default: "
                   f"{DEMO_DAYS}; with --full, the seed scenario's 42.")
@click.option("--per-day", type=click.IntRange(1000), default=None,
              help=f"Predictions a day. Default: {DEMO_PER_DAY:,}.")
@click.option("--seed", type=int, default=None, help="Random seed.")
def demo(full: bool, directory: str, days: int | None, per_day: int | None,
         seed: int | None) -> None:
    """Simulate an expense classifier with a planted silent failure, and catch it."""
    from hindsight.demo import run_demo
    from hindsight.simulate import Scenario

    # About a minute on two cores; --full is the seed scenario at its real scale.
    scenario = (Scenario(per_day=500_000) if full else
                Scenario(days=DEMO_DAYS, per_day=DEMO_PER_DAY, failure_start=DEMO_DAYS - 14))
    # The failure starts two weeks before the end, so it has time to be caught.
    changes: dict[str, Any] = {"days": days, "per_day": per_day, "seed": seed,
                               "failure_start": None if days is None else days - 14}
    scenario = replace(scenario, **{k: v for k, v in changes.items() if v is not None})
    err.print(f"Simulating {scenario.days} days x {scenario.per_day:,} predictions into "
              f"{directory}/ ...")
    with _progress() as bar:
        logging = bar.add_task("log predictions and labels", total=scenario.days)
        runs = bar.add_task("daily runs (backfill)", total=scenario.days)

        def on_day(stage: str, _: date) -> None:
            bar.update(logging if stage == "log" else runs, advance=1)

        result = run_demo(Path(directory), scenario, on_day)
    last = result.runs[-1]
    out.print(_summary_line(last))
    planted = " × ".join(f"{k}={v}" for k, v in result.planted.items())
    out.print(f"Planted failure: {planted}, accuracy {scenario.base_accuracy:.0%} -> "
              f"{scenario.failure_accuracy:.0%} from {scenario.failure_day}.")
    found = result.first_detection
    if found and scenario.failure_day:
        out.print(Text.assemble(
            ("Detected", "bold green"),
            f" on the run of {found}, {(found - scenario.failure_day).days} days after onset, "
            f"on the planted segment. Other alerts: {len(result.overlapping)} on segments "
            f"overlapping it, {len(result.elsewhere)} elsewhere."))
    else:
        out.print("The planted failure was not detected.", style="bold red")
    _print_alerts(result.opened, "table")
    out.print(f"Explore: hindsight --config {directory}/hindsight.yaml alerts --state open\n"
              f"         hindsight --config {directory}/hindsight.yaml evaluate "
              f"--incidents {directory}/incidents.yaml")


def _print_daily_versions(monitor: Monitor, as_of: date | None, days: int, fmt: str) -> None:
    last, rows = monitor.version_shares(as_of, days)
    table = _table(f"daily share of each version, {days} days to {last}",
                   ("date", "column", "value", "predictions", "share",
                    "same answer, other input"))
    for r in rows:
        repeated = "-" if r["repeated_answers"] is None else f"{r['repeated_answers']:.1%}"
        table.add_row(r["date"], r["column"], str(r["value"]), f"{r['predictions']:,}",
                      f"{r['share']:.1%}", repeated)
    _emit(fmt, table, rows)


def _table(title: str, columns: Sequence[str], **options: Any) -> Rows:
    """A table to fill with ``add_row``, then print with ``_show`` or ``_emit``."""
    return Rows(title, tuple(columns), options)


def _show(table: Rows) -> None:
    """Drawn on a terminal; plain columns, one line a row, on a pipe or into a file (the
    title then goes to stderr: seen by the person, not by the next command)."""
    if out.is_terminal:
        out.print(table.drawn())
        return
    if table.title:
        err.print(table.title, highlight=False)
    click.echo(table.plain())


def _emit(fmt: str, table: Rows, records: Sequence[dict[str, Any]],
          keys: Sequence[str] = ()) -> None:
    """The table for people, or its records as json or csv (``keys``: the csv header when
    there is no record)."""
    if fmt == "json":
        click.echo(json.dumps(list(records), indent=2))
    elif fmt == "csv":
        click.echo(csv_text(records, keys), nl=False)
    else:
        _show(table)


def _headline(metric: str, value: float) -> str:
    """Accuracy as a share; an error (mae, in the label's units) as a number."""
    return f"{value:.1%}" if metric == "accuracy" else f"{value:,.4g}"


def _summary_line(summary: RunSummary) -> str:
    overall = ("n/a (no labels yet)" if summary.overall is None else
               _headline(summary.metric, summary.overall))
    coverage = "n/a" if summary.label_coverage is None else f"{summary.label_coverage:.0%}"
    return (f"Run as of {summary.as_of}: aggregate {summary.metric} {overall} over the label "
            f"window (label coverage {coverage}); {summary.cells:,} cells; segments: "
            f"{summary.segments_tested:,} tested, {summary.segments_skipped:,} skipped"
            f"{_skipped_text(summary)}, {summary.segments_failing} failing; alerts: "
            f"{summary.count('opened')} opened, {summary.count('ongoing')} ongoing, "
            f"{summary.count('stale')} stale (no longer tested), "
            f"{summary.count('resolved')} resolved."
            + "".join(f"\nnote: {note}" for note in summary.notes))


def _short_summary(summary: RunSummary) -> str:
    overall = "n/a" if summary.overall is None else _headline(summary.metric, summary.overall)
    return (f"{summary.metric} {overall}, {summary.segments_failing} failing segment(s); "
            f"alerts: {summary.count('opened')} opened, {summary.count('ongoing')} ongoing, "
            f"{summary.count('resolved')} resolved")


def _skipped_text(summary: RunSummary) -> str:
    reasons = ", ".join(f"{n:,} {why}" for why, n in summary.skipped_by.items())
    return f" ({reasons})" if reasons else ""


def _print_alerts(found: Sequence[Alert], fmt: str) -> None:
    if not found and fmt == "table":
        out.print("No alerts.")
        return
    table = _table(f"{len(found)} alert(s)", ("date", "at", "kind", "state", "alert"),
                   show_lines=True)
    for a in found:
        table.add_row(str(a.date), f"{a.at:%H:%M}" if a.at else "-", a.kind, a.state,
                      a.message)
    _emit(fmt, table, [a.as_json() for a in found])


def _print_coverage(report: CoverageReport) -> None:
    mature = ("never within the window" if report.maturity_age is None
              else f"at age {report.maturity_age} days")
    out.print(f"Coverage as of {report.as_of}: a day's labels mature {mature}; prediction "
              f"drift over {report.drift_window_days} day(s).", highlight=False)
    for depth, shares in report.blind.items():
        blind = ", ".join(f"{share:.1%} {why}" for why, share in shares.items()) or "none"
        out.print(f"depth {depth}: predictions in cells that can never be tested: {blind}",
                  highlight=False)
    out.print(f"Per segment, {report.metric}: the smallest detectable drop and the days to "
              f"catch a drop of {report.drop:g}; prediction drift ({report.drift_unit}): the "
              f"smallest shift and the days to catch {report.shift:g}.", highlight=False)
    table = _table("", ("segment", "per day", "smallest drop", "days", "drift shift",
                    "drift days", "blind because"))

    def number(value: float | int | None, form: str) -> str:
        return "never" if value is None else format(value, form)

    for c in report.cells:
        if len(c.segment) > 1:
            continue  # crosses: --format json has every one
        table.add_row(", ".join(f"{k}={v}" for k, v in c.segment.items()) or "(all)",
                      f"{c.predictions_per_day:,.0f}", number(c.min_detectable_drop, ".3f"),
                      number(c.days_to_detect, "d"),
                      number(c.drift_min_detectable_shift, ".3f"),
                      number(c.drift_days_to_detect, "d"),
                      "; ".join(x for x in (c.reason, c.drift_reason) if x))
    _show(table)


def _print_metrics(rows: Sequence[MetricRow], title: str, fmt: str) -> None:
    table = _table(title, ("segment", "metric", "value", "n_predictions", "n_labelled",
                           "coverage"))
    for r in rows:
        table.add_row(
            ", ".join(f"{k}={v}" for k, v in r.segment.items()) or "(all)", r.metric,
            "n/a" if r.value is None else f"{r.value:.4f}", str(r.n_predictions),
            str(r.n_labelled), "n/a" if r.label_coverage is None else f"{r.label_coverage:.0%}",
        )
    _emit(fmt, table, [r.as_json() for r in rows])


def _parse_segments(pairs: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"{pair!r}: expected COLUMN=VALUE, e.g. country=CH",
                                     param_hint="--segment")
        parsed[column] = value
    return parsed


def _check_segment_columns(wanted: dict[str, str], segments: Sequence[str]) -> None:
    for column in wanted:
        if column not in segments:
            close = difflib.get_close_matches(column, segments, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise click.BadParameter(
                f"{column!r} is not a segment column{hint}; segments: "
                f"{', '.join(segments) or 'none configured'}", param_hint="--segment")


def _check_segment_values(wanted: dict[str, str], rows: Sequence[MetricRow]) -> None:
    """When a filter matched nothing: name the value that does not exist, and the ones that
    do (a value that exists but never in that cross simply has no rows)."""
    for column, value in wanted.items():
        known = sorted({r.segment[column] for r in rows if column in r.segment})
        if value not in known:
            shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more"
                                             if len(known) > 20 else "")
            raise click.BadParameter(
                f"no predictions of that day have {column}={value!r}; values seen: "
                f"{shown or 'none'}", param_hint="--segment")


def _config_after(command: click.Command) -> None:
    """Accept ``--config`` and ``--model`` after ``command`` and each of its sub-commands
    too, as before them (``hindsight alerts --config f --model m``); the last one given
    wins."""
    if command.name == "demo":  # writes its own config
        return
    command.params.append(click.Option(
        ["--config"], type=click.Path(dir_okay=False), default=None, expose_value=False,
        callback=_config_given, help="Config file (as before the sub-command)."))
    command.params.append(click.Option(
        ["--model"], metavar="NAME", default=None, expose_value=False, callback=_model_given,
        help="The model, in a workspace (as before the sub-command)."))
    for sub in getattr(command, "commands", {}).values():
        _config_after(sub)


def _config_given(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj["config"] = value  # the one dict every context of the command line shares


def _model_given(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj["model"] = value


for _command in cli.commands.values():
    _config_after(_command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # the process is the command (not a caller's code): it may spare what it never uses
        code = cli.main(args=argv, prog_name="hindsight", standalone_mode=False,
                        obj={"own_process": argv is None})
    except HindsightError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        return exit_code(exc)
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return code if isinstance(code, int) else 0  # click returns an Exit's code
if __name__ == "__main__":
    raise SystemExit(main())
