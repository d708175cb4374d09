"""The daily job for teams without Kubeflow: a crontab line, or a Kubernetes CronJob."""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from hindsight.config import Config
from hindsight.errors import ConfigError

CONFIG_DIR = "/etc/hindsight"


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


def crontab_line(schedule: str, config_file: str, hindsight: str = "hindsight") -> str:
    """Run, then deliver, as of yesterday; output appended to a log beside the config."""
    config = shlex.quote(config_file)
    log = shlex.quote(f"{config_file}.log")
    return (f"{check_schedule(schedule)} {hindsight} --config {config} run >> {log} 2>&1 && "
            f"{hindsight} --config {config} deliver >> {log} 2>&1")


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
    in the image, with the config's resource requests, one run at a time."""
    name = f"hindsight-{k8s_name(config.model)}"
    config_map: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"hindsight.yaml": config_yaml},
    }
    container = {
        "name": "hindsight",
        "image": config.pipeline.image,
        "command": ["sh", "-c"],
        "args": [f"hindsight --config {CONFIG_DIR}/hindsight.yaml run && "
                 f"hindsight --config {CONFIG_DIR}/hindsight.yaml deliver"],
        "resources": {"requests": {"cpu": config.pipeline.cpu,
                                   "memory": config.pipeline.memory}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    cronjob: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {
            "schedule": check_schedule(schedule),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",  # one writer per store
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": name}}],
            }}}},
        },
    }
    return yaml.safe_dump_all([config_map, cronjob], sort_keys=False)


def k8s_name(name: str) -> str:  # shared with the Kubeflow export
    """A Kubernetes-friendly name: lowercase letters, digits and dashes.

    >>> k8s_name("Expense Classifier_v2")
    'expense-classifier-v2'
    """
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in cleaned.split("-") if part) or "model"
