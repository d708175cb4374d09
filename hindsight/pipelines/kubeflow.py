"""The daily job as a Kubeflow pipeline (kfp v2 SDK, compiled offline).

Three steps, each in the hindsight image with the config's resource requests:

1. ``count``: the engine's counts of the run date's window (DuckDB or Spark, as the config
   says), passed on as an artifact of Parquet files;
2. ``judge``: metrics, the alert rules (performance, prediction and feature drift, versions),
   the results written to the store and the alerts queued for the sinks;
3. ``deliver``: what the sinks have pending is sent.

The config (one line of JSON, which is YAML) and the run date are the pipeline's parameters;
an empty run date is the UTC day before the run's *scheduled* time (kfp's schedule-time
placeholder), so a catch-up run or a retry counts the day it was scheduled for. Each step gets
the config's environment (``pipeline.env``), its Kubernetes secrets as variables
(``pipeline.secrets``, through kfp-kubernetes), its retries, requests and limits, and the store's
volume when the store is a path. No step is cached: each reads a store that changes. kfp and
kfp-kubernetes are an optional extra (``pip install 'hindsight[kubeflow]'``), imported only here.

A workspace compiles to one pipeline for all its models: each model's three steps form a
sub-pipeline of their own (with the model's config as the parameter ``config_<model>``, its own
``pipeline`` settings, its name in the steps' display names), so one model's failing step
stops only that model's later steps (see ``workspace_pipeline_function``).
"""

# No ``from __future__ import annotations``: kfp reads the step functions' annotations as types.
import inspect
from pathlib import Path
from typing import Any

from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.pipelines.cron import (
    check_workspace,
    config_text,
    deployment_notes,
    k8s_name,
    workspace_notes,
)
from hindsight.workspace import Workspace

try:
    from kfp import compiler, dsl, kubernetes
    from kfp.dsl import Artifact, Input, Output
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ConfigError("hindsight pipeline kubeflow needs kfp and kfp-kubernetes: "
                      "pip install 'hindsight[kubeflow]'") from exc

RETRY_BACKOFF = "60s"  # doubled at each retry
WORKSPACE_PIPELINE = "hindsight-workspace"


# The step functions run inside the image: kfp ships their source, so each imports what it uses.

def count_step(config_yaml: str, run_date: str, scheduled_time: str,
               counts: Output[Artifact]) -> str:
    """Count the run date's window (empty: the day before ``scheduled_time``); returns the run
    date it counted."""
    from pathlib import Path

    import yaml

    from hindsight.config import parse_config
    from hindsight.monitor import Monitor
    from hindsight.pipelines.dates import scheduled_run_date

    config = parse_config(yaml.safe_load(config_yaml), source="the pipeline's config_yaml")
    day = scheduled_run_date(run_date, scheduled_time)
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


class _ModelSteps:
    """One model's three steps, each in ``config.pipeline.image`` with the model's resources,
    retries, environment, secrets and store volume (mounted at ``store_root``: the store
    itself, or the workspace's store that holds this model's under ``models/<name>``)."""

    def __init__(self, config: Config, store_root: str) -> None:
        if "://" not in config.store and not Path(config.store).is_absolute():
            raise ConfigError(f"{config.source}: store {config.store!r} is relative; a "
                              "pipeline's steps run elsewhere: give an absolute path on a "
                              "shared volume or a bucket URL")
        self.settings = settings = config.pipeline
        for i, secret in enumerate(settings.secrets):
            if not secret.env:
                raise ConfigError(
                    f"{config.source}: pipeline.secrets[{i}] ({secret.secret}) lists no keys: "
                    "Kubeflow reads a secret's keys one by one; list them under env, e.g. "
                    "env: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]")
        self.store_root = store_root
        # the image carries hindsight and kfp (the Dockerfile installs both): no pip at run time
        self.count = dsl.component(count_step, base_image=settings.image,
                                   install_kfp_package=False)
        self.judge = dsl.component(judge_step, base_image=settings.image,
                                   install_kfp_package=False)
        self.deliver = dsl.component(deliver_step, base_image=settings.image,
                                     install_kfp_package=False)

    def sized(self, task: Any) -> Any:
        settings = self.settings
        task.set_cpu_request(settings.cpu).set_memory_request(settings.memory)
        task.set_memory_limit(settings.memory_limit_or_request)
        if settings.cpu_limit is not None:
            task.set_cpu_limit(settings.cpu_limit)
        if settings.retries:
            task.set_retry(settings.retries, backoff_duration=RETRY_BACKOFF, backoff_factor=2)
        for name, value in settings.env.items():
            task.set_env_variable(name, value)
        for secret in settings.secrets:
            for name, key in secret.env.items():  # one call each: two variables may share a key
                kubernetes.use_secret_as_env(task, secret_name=secret.secret,
                                             secret_key_to_env={key: name})
        if settings.store_volume is not None:
            kubernetes.mount_pvc(task, pvc_name=settings.store_volume, mount_path=self.store_root)
        return task.set_caching_options(False)

    def chain(self, config_yaml: Any, run_date: Any, scheduled_time: str,
              model: str | None = None) -> None:
        """count -> judge -> deliver; ``model``: named in each step's display name."""
        counted = self.sized(self.count(config_yaml=config_yaml, run_date=run_date,
                                        scheduled_time=scheduled_time))
        judged = self.sized(self.judge(config_yaml=config_yaml, counts=counted.outputs["counts"]))
        delivered = self.sized(self.deliver(config_yaml=config_yaml, judged=judged.output))
        if model is not None:
            for task, step in ((counted, "count"), (judged, "judge"), (delivered, "deliver")):
                task.set_display_name(f"{model}: {step}")


def pipeline_function(config: Config, config_yaml: str,
                      scheduled_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
                      store_root: str | None = None) -> Any:
    """The pipeline, its steps in ``config.pipeline.image`` with its resources, retries,
    environment and secrets, the config's YAML as the default of its ``config_yaml``
    parameter. ``scheduled_time``: kfp's schedule-time placeholder, which a Kubeflow backend
    fills in; kfp's local runner cannot (it fails on it): give it a time, or an empty one and
    a run date to each run. ``store_root``: where the store's volume is mounted (default: the
    store; a workspace's store for one model of a workspace)."""
    steps = _ModelSteps(config, store_root or config.store)

    @dsl.pipeline(name=f"hindsight-{k8s_name(config.model)}",  # type: ignore[untyped-decorator]
                  description=f"hindsight's daily job for {config.model}")
    def daily_job(config_yaml: str = config_yaml, run_date: str = "") -> None:
        steps.chain(config_yaml, run_date, scheduled_time)

    return daily_job


def config_parameter(model: str) -> str:
    """The workspace pipeline's parameter holding a model's config (a Python name).

    >>> config_parameter("fraud-v2")
    'config_fraud_v2'
    """
    return "config_" + model.replace("-", "_")


def workspace_pipeline_function(
    workspace: Workspace,
    scheduled_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
) -> Any:
    """One pipeline for every model of ``workspace``: per model, a sub-pipeline (its own DAG)
    of that model's count -> judge -> deliver, in its own image and resources, its config
    the default of the parameter ``config_<model>``; one ``run_date`` for all.

    Each model is a DAG of its own so that one model's failure stays its own: Kubeflow's
    backend runs a DAG on Argo, whose DAGs fail fast (once a task of a DAG fails, no task of
    that DAG starts). In one flat DAG, a model whose count failed would stop every other
    model's judge and deliver; as a DAG per model, the failed task stops only its own DAG's
    later steps, and the root's other DAGs, started with it, run to their end. The run ends
    failed, naming the model's task that failed."""
    check_workspace(workspace)
    # distinct: two names that differ only by '-' and '_' were refused just above
    parameters = {name: config_parameter(name) for name in workspace.models}
    defaults = {parameters[name]: config_text(config, one_line=True)
                for name, config in workspace.models.items()}
    jobs = {name: _model_pipeline(_ModelSteps(config, workspace.store), name, scheduled_time)
            for name, config in workspace.models.items()}

    def daily_job(*values: str) -> None:
        given = dict(zip([*defaults, "run_date"], values, strict=True))
        for name, job in jobs.items():
            job(config_yaml=given[parameters[name]], run_date=given["run_date"]
                ).set_display_name(name).set_caching_options(False)

    # kfp reads the parameters from the signature: one per model, then the run date
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    daily_job.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, kind, default=text, annotation=str)
         for name, text in defaults.items()]
        + [inspect.Parameter("run_date", kind, default="", annotation=str)])
    return dsl.pipeline(daily_job, name=WORKSPACE_PIPELINE,
                        description="hindsight's daily job for each of "
                                    + ", ".join(workspace.models))


def _model_pipeline(steps: _ModelSteps, model: str, scheduled_time: str) -> Any:
    @dsl.pipeline(name=f"hindsight-{k8s_name(model)}",  # type: ignore[untyped-decorator]
                  description=f"hindsight's daily job for {model}")
    def model_job(config_yaml: str, run_date: str) -> None:
        steps.chain(config_yaml, run_date, scheduled_time, model=model)

    return model_job


def compile_pipeline(config: Config, out: Path, store_root: str | None = None) -> list[str]:
    """Write the pipeline's YAML (IR) to ``out``; returns what the steps may lack (warnings)."""
    notes = deployment_notes(config, store_root=store_root)
    compiler.Compiler().compile(pipeline_function(config, config_text(config, one_line=True),
                                                  store_root=store_root), str(out))
    return notes


def compile_workspace_pipeline(workspace: Workspace, out: Path) -> list[str]:
    """Write the pipeline of every model of ``workspace`` to ``out``; returns the warnings."""
    notes = workspace_notes(workspace)
    compiler.Compiler().compile(workspace_pipeline_function(workspace), str(out))
    return notes
