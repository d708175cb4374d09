"""The daily job for teams without Kubeflow: a crontab line, or a Kubernetes CronJob.

Both run as printed: the crontab line names the config, its log and this installation's
``hindsight`` by absolute path (cron's PATH is ``/usr/bin:/bin`` and its directory is the
home), and can read an environment file; the CronJob gets the config's environment, its
Kubernetes secrets, its retries, requests and limits, and the store's volume."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from hindsight.config import Config
from hindsight.errors import ConfigError

CONFIG_DIR = "/etc/hindsight"
IMAGE_UID = 10001  # the Dockerfile's user: owns what it writes on the store's volume


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
                 env_file: Path | None = None, hindsight: str | None = None) -> str:
    """Run, then deliver, as of yesterday, from the config's folder with absolute paths; the
    config's ``pipeline.env`` exported and ``env_file`` (KEY=value lines) read first; output
    appended to a log beside the config. ``%`` is escaped (cron reads it as a line break)."""
    file = Path(os.path.abspath(config_file))
    command = hindsight or hindsight_command()
    quoted, log = shlex.quote(str(file)), shlex.quote(f"{file}.log")
    steps = [f"cd {shlex.quote(str(file.parent))}"]
    if env_file is not None:
        steps.append(f"set -a && . {shlex.quote(os.path.abspath(env_file))} && set +a")
    if config.pipeline.env:
        steps.append("export " + " ".join(f"{name}={shlex.quote(value)}"
                                          for name, value in config.pipeline.env.items()))
    steps += [f"{command} --config {quoted} {step} >> {log} 2>&1" for step in ("run", "deliver")]
    return f"{check_schedule(schedule)} " + " && ".join(steps).replace("%", "\\%")


def deployment_notes(config: Config, cron: bool = False, env_file: bool = False) -> list[str]:
    """What the scheduled steps would lack, as warnings: a local store no pod can see, a
    sink's URL variable nothing sets. A store volume with a bucket store is an error."""
    settings, notes = config.pipeline, []
    local = "://" not in config.store
    if settings.store_volume is not None and not local:
        raise ConfigError(f"{config.source}: pipeline.store_volume {settings.store_volume!r} "
                          f"is for a store on a local path; store {config.store!r} is a URL: "
                          "remove pipeline.store_volume")
    if local and settings.store_volume is None and not cron:
        notes.append(f"store {config.store!r} is a local path and pipeline.store_volume names "
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


def cronjob_manifest(config: Config, schedule: str, config_yaml: str) -> str:
    """A ConfigMap with the config and a CronJob running ``hindsight run`` then ``deliver``
    in the image, one run at a time, with the config's resources, retries, environment,
    secrets and store volume. A local store without a volume is refused: no pod sees it."""
    settings, name = config.pipeline, f"hindsight-{k8s_name(config.model)}"
    notes = deployment_notes(config)
    if "://" not in config.store and settings.store_volume is None:
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
        container["volumeMounts"].append({"name": "store", "mountPath": config.store})
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
    return yaml.safe_dump_all([config_map, cronjob], sort_keys=False)


def _container_env(config: Config) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": name, "value": value}
                                 for name, value in config.pipeline.env.items()]
    for secret in config.pipeline.secrets:
        env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": key}}}
                for name, key in secret.env.items()]
    return env


def k8s_name(name: str) -> str:  # shared with the Kubeflow export
    """A Kubernetes-friendly name: lowercase letters, digits and dashes.

    >>> k8s_name("Expense Classifier_v2")
    'expense-classifier-v2'
    """
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "model"
