"""The daily job for teams without Kubeflow: a crontab line, or a Kubernetes CronJob.

Both run as printed: the crontab line names the config, its log and this installation's
``hindsight`` by absolute path (cron's PATH is ``/usr/bin:/bin`` and its directory is the
home), and can read an environment file; the CronJob gets the config's environment, its
Kubernetes secrets, its retries, requests and limits, and the store's volume.

A workspace gets a crontab line per model (``--model NAME``) and a CronJob per model: each
model runs, fails and retries on its own."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.workspace import Workspace

CONFIG_DIR = "/etc/hindsight"
IMAGE_UID = 10001  # the Dockerfile's user: owns what it writes on the store's volume
# Kubernetes names each Job after its CronJob plus 11 characters, within 63
CRONJOB_NAME_MAX = 52


def check_schedule(schedule: str) -> str:
    """A five-field cron expression (minute hour day month weekday), or a clear error.

    >>> check_schedule("30 2 * * *")
    '30 2 * * *'
    """
    fields = schedule.split()
    if len(fields) != 5 or any(not set(f) <= set("0123456789*/,-") for f in fields):
        raise ConfigError(f"--schedule {schedule!r}: expected five cron fields (minute hour "
                          "day month weekday), e.g. '30 2 * * *' for 02:30 UTC every day")
    return " ".join(fields)


def hindsight_command() -> str:
    """This installation's ``hindsight`` as an absolute command: the script beside the running
    interpreter, else the interpreter running the package (the interpreter's path is kept as
    it is: a virtual environment's python is a link that must not be resolved)."""
    script = Path(sys.executable).absolute().parent / "hindsight"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m hindsight"


def crontab_line(schedule: str, config: Config, config_file: Path,
                 env_file: Path | None = None, hindsight: str | None = None,
                 model: str | None = None) -> str:
    """Run, then deliver, as of yesterday, from the config's folder with absolute paths; the
    config's ``pipeline.env`` exported and ``env_file`` (KEY=value lines) read first; output
    appended to a log beside the config. ``%`` is escaped (cron reads it as a line break).
    ``model``: one model of a workspace file, named with ``--model``, its log of its own."""
    file = Path(os.path.abspath(config_file))
    command = hindsight or hindsight_command()
    quoted = shlex.quote(str(file))
    log = shlex.quote(f"{file}.log" if model is None else f"{file}.{model}.log")
    if model is not None:
        quoted += f" --model {shlex.quote(model)}"
    steps = [f"cd {shlex.quote(str(file.parent))}"]
    if env_file is not None:
        steps.append(f"set -a && . {shlex.quote(os.path.abspath(env_file))} && set +a")
    if config.pipeline.env:
        steps.append("export " + " ".join(f"{name}={shlex.quote(value)}"
                                          for name, value in config.pipeline.env.items()))
    steps += [f"{command} --config {quoted} {step} >> {log} 2>&1" for step in ("run", "deliver")]
    return f"{check_schedule(schedule)} " + " && ".join(steps).replace("%", "\\%")


def workspace_crontab(schedule: str, workspace: Workspace, config_file: Path,
                      env_file: Path | None = None, hindsight: str | None = None) -> list[str]:
    """A crontab line per model of ``workspace`` (each with ``--model NAME``, its own
    ``pipeline.env`` and its own log ``<config>.<model>.log``): one model's failing run does
    not stop the others', and each line's exit status and log are its model's."""
    check_workspace(workspace)
    return [crontab_line(schedule, config, config_file, env_file, hindsight, model=name)
            for name, config in workspace.models.items()]


def check_workspace(workspace: Workspace) -> None:
    """Refuse a workspace with a model whose config does not load (the pipeline would
    silently leave it unmonitored), and two models whose Kubernetes names are the same."""
    if workspace.broken:
        raise ConfigError("\n".join(
            [f"{workspace.source}: the config of {len(workspace.broken)} of its models does not "
             "load, and a scheduled job would leave them unmonitored without a word: fix them, "
             "or take them out of models: ("
             + ", ".join(workspace.broken) + ")"]
            + [str(error) for error in workspace.broken.values()]))
    seen: dict[str, str] = {}
    for name in workspace.models:
        # on the name before it is cut: the Kubeflow export names steps and parameters by it
        other = seen.setdefault(k8s_name(name), name)
        if other != name:
            raise ConfigError(f"{workspace.source}: models {other!r} and {name!r} both become "
                              f"the Kubernetes name hindsight-{k8s_name(name)}: rename one")


def workspace_notes(workspace: Workspace, cron: bool = False,
                    env_file: bool = False) -> list[str]:
    """``deployment_notes`` of every model, each once, naming the models it concerns when it
    does not concern them all."""
    concerned: dict[str, list[str]] = {}
    for name, config in workspace.models.items():
        for note in deployment_notes(config, cron, env_file, store_root=workspace.store):
            concerned.setdefault(note, []).append(name)
    every = len(workspace.models)
    return [note if len(names) == every else
            f"model{'s' if len(names) > 1 else ''} {', '.join(names)}: {note}"
            for note, names in concerned.items()]


def deployment_notes(config: Config, cron: bool = False, env_file: bool = False,
                     store_root: str | None = None) -> list[str]:
    """What the scheduled steps would lack, as warnings: a local store no pod can see, a
    sink's URL variable nothing sets. A store volume with a bucket store is an error.
    ``store_root``: the store the volume holds (a workspace's, for one of its models)."""
    settings, notes = config.pipeline, []
    store = store_root or config.store
    local = "://" not in store
    if settings.store_volume is not None and not local:
        raise ConfigError(f"{config.source}: pipeline.store_volume {settings.store_volume!r} "
                          f"is for a store on a local path; store {store!r} is a URL: "
                          "remove pipeline.store_volume")
    if local and settings.store_volume is None and not cron:
        notes.append(f"store {store!r} is a local path and pipeline.store_volume names "
                     "no volume: the steps' pods will not see it, and what they write is lost "
                     "with them; set pipeline.store_volume to a PersistentVolumeClaim holding "
                     "it, or use a bucket URL")
    whole = any(not secret.env for secret in settings.secrets) and not cron
    for sink in config.sinks:
        name = sink.url_env
        if name is None or name in settings.env or env_file:
            continue
        if cron:
            notes.append(f"sink {sink.name!r} reads its URL from ${name}, which cron does not "
                         "set: pass --env-file FILE with a line " + f"{name}=...")
        elif name not in settings.variables() and not whole:
            notes.append(f"sink {sink.name!r} reads its URL from ${name}, which neither "
                         "pipeline.env nor pipeline.secrets sets: add it under a secret's env")
    return notes


def config_text(config: Config, one_line: bool = False) -> str:
    """The config as YAML that parses back to the same config (paths already resolved);
    ``one_line``: as JSON, which is YAML on one line (kfp copies parameter defaults into a
    comment at the top of the pipeline file, and a line break there breaks the file)."""
    settings = config.model_dump(mode="json", exclude_defaults=True)
    if one_line:
        return json.dumps(settings)
    return yaml.safe_dump(settings, sort_keys=False)


def cronjob_manifest(config: Config, schedule: str, config_yaml: str,
                     store_root: str | None = None) -> str:
    """A ConfigMap with the config and a CronJob running ``hindsight run`` then ``deliver``
    in the image, one run at a time, with the config's resources, retries, environment,
    secrets and store volume (mounted at ``store_root``, default the store). A local store
    without a volume is refused: no pod sees it."""
    return yaml.safe_dump_all(_cronjob_documents(config, schedule, config_yaml, store_root),
                              sort_keys=False)


def workspace_cronjobs(workspace: Workspace, schedule: str) -> str:
    """A ConfigMap and a CronJob per model of ``workspace``, named after the model: each
    model's job runs, retries and fails on its own, with its own resources (its
    ``pipeline`` settings), its config (resolved, as one model's config) in its ConfigMap, and
    the store's volume mounted at the workspace's store, which holds every model's."""
    check_workspace(workspace)
    documents: list[dict[str, Any]] = []
    for config in workspace.models.values():
        documents += _cronjob_documents(config, schedule, config_text(config), workspace.store)
    return yaml.safe_dump_all(documents, sort_keys=False)


def _cronjob_documents(config: Config, schedule: str, config_yaml: str,
                       store_root: str | None) -> list[dict[str, Any]]:
    settings, name = config.pipeline, job_name(config.model)
    store = store_root or config.store
    notes = deployment_notes(config, store_root=store)
    if "://" not in store and settings.store_volume is None:
        raise ConfigError(f"{config.source}: {notes[0]}")
    config_map: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"hindsight.yaml": config_yaml},
    }
    limits = {"memory": settings.memory_limit_or_request}
    if settings.cpu_limit is not None:
        limits["cpu"] = settings.cpu_limit
    container: dict[str, Any] = {
        "name": "hindsight",
        "image": settings.image,
        "command": ["sh", "-c"],
        "args": [f"hindsight --config {CONFIG_DIR}/hindsight.yaml run && "
                 f"hindsight --config {CONFIG_DIR}/hindsight.yaml deliver"],
        "resources": {"requests": {"cpu": settings.cpu, "memory": settings.memory},
                      "limits": limits},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    env = _container_env(config)
    if env:
        container["env"] = env
    whole = [{"secretRef": {"name": s.secret}} for s in settings.secrets if not s.env]
    if whole:
        container["envFrom"] = whole
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": name}}],
    }
    if settings.store_volume is not None:
        container["volumeMounts"].append({"name": "store", "mountPath": store})
        pod["volumes"].append({"name": "store", "persistentVolumeClaim": {
            "claimName": settings.store_volume}})
        pod["securityContext"] = {"fsGroup": IMAGE_UID}  # the volume writable by the image
    cronjob: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {
            "schedule": check_schedule(schedule),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",  # one writer per store
            "jobTemplate": {"spec": {"backoffLimit": settings.retries,
                                     "template": {"spec": pod}}},
        },
    }
    return [config_map, cronjob]


def _container_env(config: Config) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": name, "value": value}
                                 for name, value in config.pipeline.env.items()]
    for secret in config.pipeline.secrets:
        env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": key}}}
                for name, key in secret.env.items()]
    return env


def job_name(model: str) -> str:
    """The name of a model's CronJob and ConfigMap: ``hindsight-`` and its Kubernetes-friendly
    name, a long one cut to what a CronJob may bear and told apart by a digest of the model's
    name (renaming a model of a workspace would move its tables).

    >>> job_name("fraud_v2")
    'hindsight-fraud-v2'
    >>> long = job_name("x" * 64)
    >>> len(long), long[-9:] == "-" + hashlib.sha256(b"x" * 64).hexdigest()[:8]
    (52, True)
    """
    name = f"hindsight-{k8s_name(model)}"
    if len(name) <= CRONJOB_NAME_MAX:
        return name
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    return f"{name[:CRONJOB_NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def k8s_name(name: str) -> str:  # shared with the Kubeflow export
    """A Kubernetes-friendly name: lowercase letters, digits and dashes.

    >>> k8s_name("Expense Classifier_v2")
    'expense-classifier-v2'
    """
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "model"
