"""The daily job exported: a Kubeflow pipeline (compiled, then run by kfp's local runner), a
crontab line and a Kubernetes CronJob."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from hindsight.cli import main
from hindsight.config import load_config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from hindsight.store.partitions import Table
from tests.conftest import log_simulation

SCENARIO = Scenario(per_day=600, days=8, failure_start=3, failure_cell_per_day=150,
                    failure_accuracy=0.2, reference_rows=1_500, seed=3)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    raw: dict[str, Any] = demo_config(str(tmp_path / "store"))
    raw.update(min_samples=20, label_window_days=5, alerts={"baseline_days": 2},
               pipeline={"image": "registry.example/hindsight:1.2.3", "cpu": "3",
                         "memory": "12Gi"},
               sinks=[{"name": "file", "type": "log", "path": str(tmp_path / "alerts.log")}])
    (tmp_path / "hindsight.yaml").write_text(yaml.safe_dump(raw))
    with Monitor(load_config(tmp_path / "hindsight.yaml")) as monitor:
        log_simulation(monitor, SCENARIO)
    return tmp_path


def test_the_kubeflow_pipeline_compiles_with_the_configs_image_and_resources(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = project / "pipeline.yaml"
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "kubeflow",
                 "--out", str(out), "--schedule", "15 3 * * *"]) == 0
    assert "cron_expression='0 15 3 * * *'" in capsys.readouterr().out
    spec = yaml.safe_load(out.read_text())  # the whole file is valid YAML
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"count-step", "judge-step", "deliver-step"}
    assert tasks["judge-step"]["dependentTasks"] == ["count-step"]
    assert tasks["deliver-step"]["dependentTasks"] == ["judge-step"]
    assert all(t["cachingOptions"].get("enableCache", False) is False for t in tasks.values())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 3
    assert "pip install" not in out.read_text()  # the image has kfp: nothing installed at run
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "registry.example/hindsight:1.2.3"
        assert container["resources"]["resourceCpuRequest"] == "3"
        assert container["resources"]["resourceMemoryRequest"] == "12Gi"
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["run_date"]["defaultValue"] == ""
    embedded = yaml.safe_load(parameters["config_yaml"]["defaultValue"])
    assert embedded["store"] == str(project / "store")
    assert embedded["pipeline"]["image"] == "registry.example/hindsight:1.2.3"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom")
def test_the_pipeline_runs_locally_and_stores_what_hindsight_run_stores(
    project: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kfp import local

    from hindsight.pipelines.cron import config_text
    from hindsight.pipelines.kubeflow import pipeline_function

    shutil.copytree(project / "store", project / "direct")
    config = load_config(project / "hindsight.yaml")
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path_factory.mktemp("kfp-root")))
    # kfp's local runner cannot fill in the schedule-time placeholder: the run date is given
    run = pipeline_function(config, config_text(config, one_line=True), scheduled_time="")
    day = SCENARIO.end
    run(run_date=day.isoformat())
    with Monitor(config.model_copy(update={"store": str(project / "direct")})) as direct:
        expected = direct.run(day)
    with Monitor(config) as piped:
        stored = piped.store.read(piped.store.files(Table.METRICS, day, day)[0].path)
        assert piped.deliver().pending == 0  # the pipeline's last step delivered
    baseline = Monitor(config.model_copy(update={"store": str(project / "direct")}))
    wanted = baseline.store.read(baseline.store.files(Table.METRICS, day, day)[0].path)
    baseline.close()
    keys = [("day", "ascending"), ("segment", "ascending"), ("metric", "ascending")]
    assert stored.num_rows == wanted.num_rows > 0
    assert stored.sort_by(keys).drop_columns(["value"]).equals(
        wanted.sort_by(keys).drop_columns(["value"]))
    assert pa.compute.max(pa.compute.abs(pa.compute.subtract(
        pa.compute.fill_null(stored.sort_by(keys)["value"], 0.0),
        pa.compute.fill_null(wanted.sort_by(keys)["value"], 0.0)))).as_py() <= 1e-12
    opened = expected.count("opened")
    assert opened > 0
    delivered = (project / "alerts.log").read_text().splitlines()
    assert len(delivered) == opened  # the direct run queued, the pipeline's deliver step sent


def test_a_bad_schedule_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "cron",
                 "--schedule", "every day"]) == 2
    assert "five cron fields" in capsys.readouterr().err


def test_a_relative_store_cannot_go_into_a_pipeline(tmp_path: Path) -> None:
    from hindsight.pipelines.kubeflow import pipeline_function

    config = load_config(_write(tmp_path, demo_config("store")))
    with pytest.raises(ConfigError, match="relative"):
        pipeline_function(config.model_copy(update={"store": "store"}), "")


def _write(directory: Path, raw: dict[str, Any]) -> Path:
    path = directory / "hindsight.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path



SECRETS = {"env": {"AWS_ENDPOINT_URL": "http://minio.storage:9000", "AWS_REGION": "eu-west-1"},
           "secrets": [{"secret": "hindsight-bucket",
                        "env": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]},
                       {"secret": "hindsight-sinks", "env": {"SLACK_URL": "slack-url"}}]}


def _configured(project: Path, **pipeline: Any) -> Path:
    """The project's config with more ``pipeline`` settings."""
    raw = yaml.safe_load((project / "hindsight.yaml").read_text())
    raw["pipeline"].update(pipeline)
    raw["sinks"].append({"name": "slack", "type": "slack", "url_env": "SLACK_URL"})
    return _write(project, raw)


def _compiled(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], ...]:
    out = project / "pipeline.yaml"
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "kubeflow",
                 "--out", str(out)]) == 0
    return tuple(yaml.safe_load_all(out.read_text()))


def test_the_compiled_pipeline_takes_its_run_date_from_the_scheduled_time(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    spec = _compiled(project, capsys)[0]
    count = spec["root"]["dag"]["tasks"]["count-step"]["inputs"]["parameters"]
    assert count["scheduled_time"]["runtimeValue"]["constant"] == (
        "{{$.pipeline_job_schedule_time_utc}}")
    assert count["run_date"]["componentInputParameter"] == "run_date"
    assert "scheduled_run_date(run_date, scheduled_time)" in str(
        spec["deploymentSpec"]["executors"]["exec-count-step"]["container"]["command"])
    assert "datetime.now" not in (project / "pipeline.yaml").read_text()


class _Counted:
    def __init__(self, path: Path) -> None:
        self.path = str(path)


@pytest.mark.parametrize(("scheduled", "counted"), [
    ("{next}T02:30:00Z", "{end}"),                # the scheduled run of the day after
    ("{next}T00:00:00.250000Z", "{end}"),         # fractions of a second, as kfp writes them
    ("{next}T01:30:00+02:00", "{before}"),        # 23:30 UTC the day before
])
def test_a_kubeflow_run_scheduled_for_a_time_counts_the_day_before_it(
    project: Path, tmp_path_factory: pytest.TempPathFactory, scheduled: str, counted: str,
) -> None:
    from hindsight.jobs.daily import DayCounts
    from hindsight.pipelines.cron import config_text
    from hindsight.pipelines.kubeflow import count_step

    config = load_config(project / "hindsight.yaml")
    days = {"next": SCENARIO.end + timedelta(days=1), "end": SCENARIO.end,
            "before": SCENARIO.end - timedelta(days=1)}
    names = {k: v.isoformat() for k, v in days.items()}
    out = tmp_path_factory.mktemp("counts") / "counts"
    returned = count_step(config_text(config, one_line=True), "", scheduled.format(**names),
                          _Counted(out))  # type: ignore[arg-type]
    assert returned == names[counted.strip("{}")]
    assert DayCounts.load(out).as_of == days[counted.strip("{}")]
    assert DayCounts.load(out).counts.cells.num_rows > 0


def test_a_run_date_given_wins_over_the_scheduled_time_and_a_missing_time_is_an_error(
    project: Path, tmp_path: Path,
) -> None:
    from hindsight.jobs.daily import DayCounts
    from hindsight.pipelines.cron import config_text
    from hindsight.pipelines.kubeflow import count_step

    yaml_text = config_text(load_config(project / "hindsight.yaml"), one_line=True)
    wanted = SCENARIO.end - timedelta(days=2)
    count_step(yaml_text, wanted.isoformat(), "2030-01-01T02:30:00Z",
               _Counted(tmp_path / "given"))  # type: ignore[arg-type]
    assert DayCounts.load(tmp_path / "given").as_of == wanted
    with pytest.raises(ConfigError, match="pass run_date"):
        count_step(yaml_text, "", "{{$.pipeline_job_schedule_time_utc}}",
                   _Counted(tmp_path / "unresolved"))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom")
def test_the_count_component_run_by_kfp_counts_the_day_before_its_scheduled_time(
    project: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kfp import dsl, local

    from hindsight.pipelines.cron import config_text
    from hindsight.pipelines.kubeflow import count_step

    config = load_config(project / "hindsight.yaml")
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path_factory.mktemp("kfp-root")))
    component = dsl.component(count_step, base_image=config.pipeline.image,
                              install_kfp_package=False)
    scheduled = f"{SCENARIO.end + timedelta(days=1)}T02:30:00Z"
    task = component(config_yaml=config_text(config, one_line=True), run_date="",
                     scheduled_time=scheduled)
    assert task.outputs["Output"] == SCENARIO.end.isoformat()


def test_each_step_gets_the_environment_secrets_retries_limits_and_store_volume(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _configured(project, retries=4, cpu_limit="4", memory_limit="16Gi",
                store_volume="hindsight-store", **SECRETS)
    spec, platform = _compiled(project, capsys)
    assert "warning" not in capsys.readouterr().err
    tasks = spec["root"]["dag"]["tasks"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"]) == {
        "exec-count-step", "exec-judge-step", "exec-deliver-step"}
    for name, task in tasks.items():
        assert task["retryPolicy"]["maxRetryCount"] == 4
        container = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]
        assert container["env"] == [{"name": "AWS_ENDPOINT_URL",
                                     "value": "http://minio.storage:9000"},
                                    {"name": "AWS_REGION", "value": "eu-west-1"}]
        resources = container["resources"]
        assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == (
            "4", "16Gi")
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == (
            "3", "12Gi")
        kube = executors[f"exec-{name}"]
        from_secrets = {(s["secretName"], e["secretKey"], e["envVar"])
                        for s in kube["secretAsEnv"] for e in s["keyToEnv"]}
        assert from_secrets == {("hindsight-bucket", "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                                ("hindsight-bucket", "AWS_SECRET_ACCESS_KEY",
                                 "AWS_SECRET_ACCESS_KEY"),
                                ("hindsight-sinks", "slack-url", "SLACK_URL")}
        assert [(m["constant"], m["mountPath"]) for m in kube["pvcMount"]] == [
            ("hindsight-store", str(project / "store"))]
    assert "secret" not in yaml.safe_load(  # only the names travel in the config parameter
        spec["root"]["inputDefinitions"]["parameters"]["config_yaml"]["defaultValue"]
    )["pipeline"]["env"]


def test_without_limits_a_step_is_limited_to_its_memory_request_and_not_retried_when_asked(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _configured(project, retries=0)
    spec = _compiled(project, capsys)[0]
    assert all("retryPolicy" not in task for task in spec["root"]["dag"]["tasks"].values())
    for executor in spec["deploymentSpec"]["executors"].values():
        resources = executor["container"]["resources"]
        assert resources["resourceMemoryLimit"] == "12Gi"
        assert "resourceCpuLimit" not in resources


def test_a_pipeline_on_a_local_store_without_a_volume_warns_and_names_unset_sink_variables(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _configured(project)
    _compiled(project, capsys)
    warnings = capsys.readouterr().err
    assert "is a local path and pipeline.store_volume names no volume" in warnings
    assert "sink 'slack' reads its URL from $SLACK_URL" in warnings


@pytest.mark.parametrize(("pipeline", "message"), [
    ({"secrets": [{"secret": "Bad_Name", "env": ["A"]}]}, "secrets.0.secret"),
    ({"env": {"1A": "x"}}, "pipeline.env.1A"),
    ({"memory_limit": "lots"}, "pipeline.memory_limit"),
    ({"retries": -1}, "pipeline.retries"),
    ({"env": {"A": "x"}, "secrets": [{"secret": "s", "env": ["A"]}]}, "sets A, which"),
])
def test_bad_pipeline_settings_are_refused_naming_the_key(
    tmp_path: Path, pipeline: dict[str, Any], message: str,
) -> None:
    raw = demo_config(str(tmp_path / "store"))
    raw["pipeline"] = pipeline
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_write(tmp_path, raw))


def test_a_kubeflow_secret_must_list_its_keys(project: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _configured(project, secrets=[{"secret": "hindsight-bucket"}])
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "kubeflow",
                 "--out", str(project / "p.yaml")]) == 2
    assert "lists no keys" in capsys.readouterr().err


def test_a_kubernetes_cronjob_gets_environment_secrets_retries_limits_and_the_store_volume(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = _configured(project, retries=3, memory_limit="16Gi",
                              store_volume="hindsight-store",
                              env=SECRETS["env"], secrets=[*SECRETS["secrets"],
                                                           {"secret": "hindsight-extra"}])
    assert main(["--config", str(config_file), "pipeline", "cron", "--kubernetes"]) == 0
    config_map, cronjob = yaml.safe_load_all(capsys.readouterr().out)
    assert config_map["kind"] == "ConfigMap"
    assert yaml.safe_load(config_map["data"]["hindsight.yaml"])["model"] == "expense-classifier"
    spec = cronjob["spec"]
    assert (cronjob["kind"], spec["schedule"], spec["concurrencyPolicy"]) == (
        "CronJob", "30 2 * * *", "Forbid")
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 3
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/hindsight:1.2.3"
    assert container["resources"] == {"requests": {"cpu": "3", "memory": "12Gi"},
                                      "limits": {"memory": "16Gi"}}
    assert container["env"] == [
        {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"},
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
            "name": "hindsight-bucket", "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
            "name": "hindsight-bucket", "key": "AWS_SECRET_ACCESS_KEY"}}},
        {"name": "SLACK_URL", "valueFrom": {"secretKeyRef": {
            "name": "hindsight-sinks", "key": "slack-url"}}}]
    assert container["envFrom"] == [{"secretRef": {"name": "hindsight-extra"}}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"config": "/etc/hindsight", "store": str(project / "store")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"] == {"claimName": "hindsight-store"}
    assert pod["securityContext"] == {"fsGroup": 10001}


def test_a_kubernetes_cronjob_on_a_local_store_without_a_volume_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "cron",
                 "--kubernetes"]) == 2
    assert "set pipeline.store_volume to a PersistentVolumeClaim" in capsys.readouterr().err


def test_a_store_volume_with_a_bucket_store_is_refused(tmp_path: Path) -> None:
    from hindsight.pipelines.cron import deployment_notes

    config = load_config(_write(tmp_path, {**demo_config("s3://bucket/prefix"),
                                           "pipeline": {"store_volume": "claim"}}))
    with pytest.raises(ConfigError, match=r"remove pipeline\.store_volume"):
        deployment_notes(config)


class _Hook:
    """A webhook that records what it is sent."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[bytes]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[_Hook]:
    h = _Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def _yesterdays_project(directory: Path, hook_url_env: str) -> Path:
    """A project whose data ends yesterday (the day a crontab run counts), with a webhook
    sink whose URL is in the environment and a relative store."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    scenario = Scenario(**{**{f: getattr(SCENARIO, f) for f in (
        "per_day", "days", "failure_start", "failure_cell_per_day", "failure_accuracy",
        "reference_rows", "seed")}, "start": yesterday - timedelta(days=SCENARIO.days - 1)})
    raw: dict[str, Any] = demo_config("store")  # relative: beside the config
    raw.update(min_samples=20, label_window_days=5, alerts={"baseline_days": 2},
               sinks=[{"name": "hook", "type": "webhook", "url_env": hook_url_env}])
    config_file = _write(directory, raw)
    with Monitor(load_config(config_file)) as monitor:
        log_simulation(monitor, scenario)
    return config_file


def test_the_crontab_line_runs_as_printed_from_a_clean_environment(
    tmp_path: Path, hook: _Hook, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "my 100% project"  # every path is quoted, and % escaped for cron
    project.mkdir()
    config_file = _yesterdays_project(project, "HOOK_URL")
    env_file = project / "hindsight.env"
    env_file.write_text(f"HOOK_URL={hook.url}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the paths given are relative to here
    assert main(["--config", os.path.relpath(config_file), "pipeline", "cron",
                 "--schedule", "0 4 * * 1-5", "--env-file", os.path.relpath(env_file)]) == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err
    line = printed.out.strip()
    fields = line.split(" ", 5)
    assert fields[:5] == ["0", "4", "*", "*", "1-5"]
    command = fields[5]
    assert "%" not in command.replace("\\%", "")  # cron reads a bare % as a line break
    command = command.replace("\\%", "%")  # what cron runs
    assert shlex.quote(str(config_file)) in command
    executable = shlex.split(command.split("&&")[-1])[0]
    assert Path(executable).is_absolute()
    done = subprocess.run(["/bin/sh", "-c", command], cwd="/",
                          env={"PATH": "/usr/bin:/bin", "HOME": str(elsewhere),
                               "SHELL": "/bin/sh", "LANG": "C.UTF-8"},
                          capture_output=True, text=True, check=False, timeout=300)
    log = Path(f"{config_file}.log").read_text()
    assert done.returncode == 0, done.stderr + log
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert f"{yesterday}:" in log
    monkeypatch.setenv("HOOK_URL", hook.url)
    with Monitor(load_config(config_file)) as monitor:
        assert monitor.store.files(Table.METRICS, yesterday, yesterday)
        assert monitor.deliver().pending == 0
    assert hook.received  # the env file's URL reached the run's sink


def test_a_crontab_line_warns_of_sink_variables_cron_does_not_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    raw = {**demo_config(str(tmp_path / "store")),
           "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL"}]}
    assert main(["--config", str(_write(tmp_path, raw)), "pipeline", "cron"]) == 0
    printed = capsys.readouterr()
    assert f"--config {tmp_path / 'hindsight.yaml'} run" in printed.out
    assert "sink 'hook' reads its URL from $HOOK_URL, which cron does not set" in printed.err


def test_python_m_hindsight_is_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "hindsight", "pipeline", "cron", "--help"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0 and "--env-file" in done.stdout


def test_the_crontab_line_exports_the_configs_environment(tmp_path: Path) -> None:
    from hindsight.pipelines.cron import crontab_line

    raw = {**demo_config(str(tmp_path / "store")),
           "pipeline": {"env": {"HINDSIGHT_PROBE": "50% off; $HOME `x`"}}}
    config_file = _write(tmp_path, raw)
    show = (f"{shlex.quote(sys.executable)} -c "
            + shlex.quote("import os, sys; print(sys.argv[-1], os.environ['HINDSIGHT_PROBE'])"))
    line = crontab_line("0 4 * * *", load_config(config_file), config_file, hindsight=show)
    command = line.split(" ", 5)[5]
    assert "%" not in command.replace("\\%", "")
    subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], cwd="/", check=True,
                   env={"PATH": "/usr/bin:/bin"})
    assert Path(f"{config_file}.log").read_text().splitlines() == [
        "run 50% off; $HOME `x`", "deliver 50% off; $HOME `x`"]
