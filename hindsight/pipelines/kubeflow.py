"""The daily job as a Kubeflow pipeline (kfp v2 SDK, compiled offline).

Three steps, each in the hindsight image with the config's resource requests:

1. ``count``: the engine's counts of the run date's window (DuckDB or Spark, as the config
   says), passed on as an artifact of Parquet files;
2. ``judge``: metrics, the alert rules (performance, prediction and feature drift, versions),
   the results written to the store and the alerts queued for the sinks;
3. ``deliver``: what the sinks have pending is sent.

The config (one line of JSON, which is YAML) and the run date are the pipeline's parameters;
an empty run date is yesterday (UTC) when the step starts, which is what a recurring run wants.
No step is cached: each reads a store that changes. kfp is an optional extra (``pip install
'hindsight[kubeflow]'``), imported only here.
"""

# No ``from __future__ import annotations``: kfp reads the step functions' annotations as types.
from pathlib import Path
from typing import Any

from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.pipelines.cron import config_text, k8s_name

try:
    from kfp import compiler, dsl
    from kfp.dsl import Artifact, Input, Output
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ConfigError("hindsight pipeline kubeflow needs kfp: "
                      "pip install 'hindsight[kubeflow]'") from exc


# The step functions run inside the image: kfp ships their source, so each imports what it uses.

def count_step(config_yaml: str, run_date: str, counts: Output[Artifact]) -> str:
    """Count the run date's window; returns the run date it counted."""
    from datetime import UTC, date, datetime, timedelta
    from pathlib import Path

    import yaml

    from hindsight.config import parse_config
    from hindsight.monitor import Monitor

    config = parse_config(yaml.safe_load(config_yaml), source="the pipeline's config_yaml")
    day = (date.fromisoformat(run_date) if run_date
           else datetime.now(UTC).date() - timedelta(days=1))
    with Monitor(config) as monitor:
        monitor.count(day).save(Path(counts.path))
    return day.isoformat()


def judge_step(config_yaml: str, counts: Input[Artifact]) -> str:
    """Metrics, alerts and results from the counts; returns the run's one-line summary."""
    from pathlib import Path

    import yaml

    from hindsight.config import parse_config
    from hindsight.jobs.daily import DayCounts
    from hindsight.monitor import Monitor

    config = parse_config(yaml.safe_load(config_yaml), source="the pipeline's config_yaml")
    with Monitor(config) as monitor:
        summary = monitor.judge(DayCounts.load(Path(counts.path)))
    return (f"{summary.as_of}: {summary.cells} cells, {summary.count('opened')} alerts "
            f"opened, {summary.count('opened', 'ongoing', 'stale')} open")


def deliver_step(config_yaml: str, judged: str) -> str:
    """Send what the sinks have pending (after ``judged``, the run it follows)."""
    import yaml

    from hindsight.config import parse_config
    from hindsight.monitor import Monitor

    config = parse_config(yaml.safe_load(config_yaml), source="the pipeline's config_yaml")
    with Monitor(config) as monitor:
        report = monitor.deliver()
    return f"{judged}; sinks: {report.delivered} delivered, {report.pending} pending"


def pipeline_function(config: Config, config_yaml: str) -> Any:
    """The pipeline, its steps in ``config.pipeline.image`` with its resource requests, the
    config's YAML as the default of its ``config_yaml`` parameter."""
    if "://" not in config.store and not Path(config.store).is_absolute():
        raise ConfigError(f"{config.source}: store {config.store!r} is relative; a pipeline's "
                          "steps run elsewhere: give an absolute path on a shared volume or a "
                          "bucket URL")
    settings = config.pipeline
    # the image carries hindsight and kfp (the Dockerfile installs both): no pip at run time
    count = dsl.component(count_step, base_image=settings.image, install_kfp_package=False)
    judge = dsl.component(judge_step, base_image=settings.image, install_kfp_package=False)
    deliver = dsl.component(deliver_step, base_image=settings.image, install_kfp_package=False)

    def sized(task: Any) -> Any:
        task.set_cpu_request(settings.cpu).set_memory_request(settings.memory)
        return task.set_caching_options(False)

    @dsl.pipeline(name=f"hindsight-{k8s_name(config.model)}",  # type: ignore[untyped-decorator]
                  description=f"hindsight's daily job for {config.model}")
    def daily_job(config_yaml: str = config_yaml, run_date: str = "") -> None:
        counted = sized(count(config_yaml=config_yaml, run_date=run_date))
        judged = sized(judge(config_yaml=config_yaml, counts=counted.outputs["counts"]))
        sized(deliver(config_yaml=config_yaml, judged=judged.output))

    return daily_job


def compile_pipeline(config: Config, out: Path) -> None:
    """Write the pipeline's YAML (IR) to ``out``."""
    compiler.Compiler().compile(pipeline_function(config, config_text(config, one_line=True)),
                                str(out))
