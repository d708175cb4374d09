"""The daily job exported: a Kubeflow pipeline (compiled, then run by kfp's local runner), a
crontab line and a Kubernetes CronJob."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from hindsight.cli import main
from hindsight.config import load_config
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
    run = pipeline_function(config, config_text(config, one_line=True))
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


def test_a_crontab_line_and_a_kubernetes_cronjob(project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config_file = str(project / "hindsight.yaml")
    assert main(["--config", config_file, "pipeline", "cron", "--schedule", "0 4 * * 1-5"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"0 4 * * 1-5 hindsight --config {config_file} run")
    assert "deliver" in line
    assert main(["--config", config_file, "pipeline", "cron", "--kubernetes"]) == 0
    config_map, cronjob = yaml.safe_load_all(capsys.readouterr().out)
    assert config_map["kind"] == "ConfigMap"
    assert yaml.safe_load(config_map["data"]["hindsight.yaml"])["model"] == "expense-classifier"
    spec = cronjob["spec"]
    assert (cronjob["kind"], spec["schedule"], spec["concurrencyPolicy"]) == (
        "CronJob", "30 2 * * *", "Forbid")
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/hindsight:1.2.3"
    assert container["resources"]["requests"] == {"cpu": "3", "memory": "12Gi"}


def test_a_bad_schedule_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(project / "hindsight.yaml"), "pipeline", "cron",
                 "--schedule", "every day"]) == 2
    assert "five cron fields" in capsys.readouterr().err


def test_a_relative_store_cannot_go_into_a_pipeline(tmp_path: Path) -> None:
    from hindsight.errors import ConfigError
    from hindsight.pipelines.kubeflow import pipeline_function

    config = load_config(_write(tmp_path, demo_config("store")))
    with pytest.raises(ConfigError, match="relative"):
        pipeline_function(config.model_copy(update={"store": "store"}), "")


def _write(directory: Path, raw: dict[str, Any]) -> Path:
    path = directory / "hindsight.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path

