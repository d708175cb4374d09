"""The daily job of a workspace exported: one Kubeflow pipeline with a chain of steps per model
(compiled, then run by kfp's local runner with one model's data corrupt), a crontab line per
model and a CronJob per model."""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hindsight.cli import main
from hindsight.config import parse_config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from hindsight.workspace import load_workspace

DAYS = 4
END = date(2026, 3, 4)
# three tasks, each with column names of its own
MODELS: dict[str, dict[str, Any]] = {
    "router": {"columns": {"id": "ticket", "timestamp": "opened", "prediction": "queue",
                           "label": "true_queue", "label_timestamp": "resolved"},
               "segments": ["language"]},
    "fraud": {"columns": {"id": "txn", "timestamp": "at", "prediction": "flagged", "score": "p",
                          "label": "chargeback", "label_timestamp": "disputed"},
              "segments": ["country"], "pipeline": {"memory": "16Gi"}},
    "price": {"task": "regression",
              "columns": {"id": "listing", "timestamp": "t", "prediction": "price_hat",
                          "label": "price", "label_timestamp": "sold"},
              "segments": ["city"]},
}
SEGMENT_VALUES = {"language": ["de", "fr"], "country": ["CH", "AT"], "city": ["Bern", "Graz"]}


def _rows(model: str, end: date, per_day: int = 120, seed: int = 7
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``DAYS`` days of a model's predictions up to ``end``, each labelled the same day."""
    draw = random.Random(f"{model}{seed}")
    spec = MODELS[model]
    columns, [segment] = spec["columns"], spec["segments"]
    predictions, labels = [], []
    for back in range(DAYS - 1, -1, -1):
        served = end - timedelta(days=back)
        for k in range(per_day):
            key = f"{model}-{served}-{k}"
            when = f"{served}T{k % 24:02d}:{k % 60:02d}:00Z"
            row: dict[str, Any] = {columns["id"]: key, columns["timestamp"]: when,
                                   segment: draw.choice(SEGMENT_VALUES[segment])}
            if model == "router":
                row[columns["prediction"]] = draw.choice(["billing", "tech", "sales"])
                truth: Any = (row[columns["prediction"]] if draw.random() < 0.8
                              else draw.choice(["billing", "tech", "sales"]))
            elif model == "fraud":
                score = draw.random()
                row[columns["prediction"]] = "1" if score > 0.7 else "0"
                row[columns["score"]] = score
                truth = "1" if draw.random() < score * 0.8 else "0"
            else:
                row[columns["prediction"]] = round(draw.gauss(300, 40), 2)
                truth = round(row[columns["prediction"]] + draw.gauss(0, 15), 2)
            predictions.append(row)
            labels.append({columns["id"]: key, columns["label"]: truth,
                           columns["label_timestamp"]: f"{served}T23:30:00Z"})
    return predictions, labels


def _workspace(folder: Path, end: date = END, store: str | None = None,
               **shared: Any) -> Path:
    """A workspace of the three models, each with ``DAYS`` days of data up to ``end``."""
    raw: dict[str, Any] = {"store": store or str(folder / "store"), "min_samples": 20,
                           "label_window_days": 2, "alerts": {"baseline_days": 1},
                           "pipeline": {"image": "registry.example/hindsight:2.0.0", "cpu": "2",
                                        "memory": "4Gi"},
                           **shared, "models": MODELS}
    file = folder / "hindsight.yaml"
    file.write_text(yaml.safe_dump(raw, sort_keys=False))
    space = load_workspace(file)
    assert not space.broken, space.broken
    for name, config in space.models.items():
        predictions, labels = _rows(name, end)
        with Monitor(config) as monitor:
            monitor.log_predictions(predictions)
            monitor.log_labels(labels)
    return file


def _compiled(config_file: Path, capsys: pytest.CaptureFixture[str]
              ) -> tuple[dict[str, Any], dict[str, Any], str]:
    out = config_file.parent / "pipeline.yaml"
    assert main(["--config", str(config_file), "pipeline", "kubeflow", "--out", str(out)]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform, capsys.readouterr().err


def _chain(spec: dict[str, Any], model: str) -> dict[str, Any]:
    """The tasks of a model's sub-pipeline."""
    task = spec["root"]["dag"]["tasks"][f"hindsight-{model}"]
    return dict(spec["components"][task["componentRef"]["name"]]["dag"]["tasks"])


def _executor(spec: dict[str, Any], task: dict[str, Any]) -> str:
    return str(spec["components"][task["componentRef"]["name"]]["executorLabel"])


def test_a_workspace_compiles_to_one_pipeline_with_a_chain_per_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = _workspace(tmp_path, pipeline={"image": "registry.example/hindsight:2.0.0",
                                                 "cpu": "2", "memory": "4Gi", "retries": 2,
                                                 "store_volume": "hindsight-store"})
    spec, platform, printed = _compiled(config_file, capsys)
    assert "for each of 3 models (router, fraud, price)" in printed
    assert "warning" not in printed
    root = spec["root"]
    parameters = root["inputDefinitions"]["parameters"]
    assert set(parameters) == {"config_router", "config_fraud", "config_price", "run_date"}
    assert parameters["run_date"]["defaultValue"] == ""
    space = load_workspace(config_file)
    tasks = root["dag"]["tasks"]
    assert set(tasks) == {"hindsight-router", "hindsight-fraud", "hindsight-price"}
    executors = spec["deploymentSpec"]["executors"]
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    seen_executors: set[str] = set()
    for name, config in space.models.items():
        top = tasks[f"hindsight-{name}"]
        # isolation: no model's chain waits on another's, each is a DAG of its own
        assert "dependentTasks" not in top
        assert "dag" in spec["components"][top["componentRef"]["name"]]
        assert top["taskInfo"]["name"] == name
        assert top["cachingOptions"].get("enableCache", False) is False
        assert top["inputs"]["parameters"] == {
            "config_yaml": {"componentInputParameter": f"config_{name}"},
            "run_date": {"componentInputParameter": "run_date"}}
        embedded = parse_config(yaml.safe_load(parameters[f"config_{name}"]["defaultValue"]))
        # the model's own config, columns and task included (compared as settings: the
        # source it names differs)
        assert embedded.model_dump() == config.model_dump()
        assert embedded.columns.id == MODELS[name]["columns"]["id"]
        assert embedded.store == str(tmp_path / "store" / "models" / name)
        chain = _chain(spec, name)
        assert set(chain) == {"count-step", "judge-step", "deliver-step"}
        assert chain["judge-step"]["dependentTasks"] == ["count-step"]
        assert chain["deliver-step"]["dependentTasks"] == ["judge-step"]
        assert {t["taskInfo"]["name"] for t in chain.values()} == {
            f"{name}: count", f"{name}: judge", f"{name}: deliver"}
        count = chain["count-step"]["inputs"]["parameters"]
        assert count["run_date"] == {"componentInputParameter": "run_date"}
        assert count["scheduled_time"]["runtimeValue"]["constant"] == (
            "{{$.pipeline_job_schedule_time_utc}}")
        assert count["config_yaml"] == {"componentInputParameter": "config_yaml"}
        for task in chain.values():
            assert task["retryPolicy"]["maxRetryCount"] == 2
            assert task["cachingOptions"].get("enableCache", False) is False
            label = _executor(spec, task)
            seen_executors.add(label)
            container = executors[label]["container"]
            assert container["image"] == "registry.example/hindsight:2.0.0"
            assert container["resources"]["resourceMemoryRequest"] == (
                "16Gi" if name == "fraud" else "4Gi")  # a model's own pipeline settings
            # every model's store lives under the workspace's store, where the volume goes
            assert [(m["constant"], m["mountPath"]) for m in kube[label]["pvcMount"]] == [
                ("hindsight-store", str(tmp_path / "store"))]
    assert len(seen_executors) == 9  # three steps for each of three models


def test_a_workspace_with_a_broken_model_is_refused_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    raw = {"store": str(tmp_path / "store"),
           "models": {"router": MODELS["router"],
                      "price": {**MODELS["price"], "task": "ranking"}}}
    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump(raw))
    for command in (["kubeflow", "--out", str(tmp_path / "p.yaml")], ["cron"],
                    ["cron", "--kubernetes"]):
        assert main(["--config", str(file), "pipeline", *command]) == 2
        printed = capsys.readouterr()
        assert "1 of its models does not load" in printed.err
        assert "(price)" in printed.err and "models.price" in printed.err
        assert "task" in printed.err  # the model's own message, naming its key
        assert not printed.out
    assert not (tmp_path / "p.yaml").exists()


def test_models_whose_names_clash_in_kubernetes_are_refused(tmp_path: Path) -> None:
    from hindsight.pipelines.cron import check_workspace

    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "models": {
        "fraud_v2": MODELS["fraud"], "fraud-v2": MODELS["fraud"]}}))
    with pytest.raises(ConfigError, match="both become the Kubernetes name hindsight-fraud-v2"):
        check_workspace(load_workspace(file))
    long = "a" * 60
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "models": {
        f"{long}_": MODELS["fraud"], f"{long}-": MODELS["fraud"]}}))
    with pytest.raises(ConfigError, match=f"both become the Kubernetes name hindsight-{long}:"):
        check_workspace(load_workspace(file))


def test_the_crontab_has_a_line_per_model_each_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = _workspace(tmp_path, sinks=[
        {"name": "hook", "type": "webhook", "url_env": "HOOK_URL"}])
    assert main(["--config", str(config_file), "pipeline", "cron",
                 "--schedule", "0 4 * * *"]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert len(lines) == 3
    for name, line in zip(MODELS, lines, strict=True):
        fields = line.split(" ", 5)
        assert fields[:5] == ["0", "4", "*", "*", "*"]
        steps = [shlex.split(step) for step in fields[5].split(" && ")]
        assert steps[0] == ["cd", str(tmp_path)]
        for step, command in zip(steps[1:], ("run", "deliver"), strict=True):
            assert Path(step[0]).is_absolute()
            assert step[1:6] == ["--config", str(config_file), "--model", name, command]
            assert step[6:] == [">>", f"{config_file}.{name}.log", "2>&1"]
    # one warning for every model, not three
    assert printed.err.count("reads its URL from $HOOK_URL") == 1


def test_each_crontab_line_runs_its_own_model(tmp_path: Path) -> None:
    from hindsight.pipelines.cron import workspace_crontab

    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump({
        "store": str(tmp_path / "store"), "pipeline": {"env": {"SHARED": "50% on"}},
        "models": {**MODELS, "fraud": {**MODELS["fraud"], "pipeline": {"env": {"OWN": "1"}}}}}))
    show = (f"{shlex.quote(sys.executable)} -c " + shlex.quote(
        "import os, sys; print(*sys.argv[1:], os.environ['SHARED'], os.environ.get('OWN'))"))
    lines = workspace_crontab("0 4 * * *", load_workspace(config_file), config_file,
                              hindsight=show)
    for line in lines:
        subprocess.run(["/bin/sh", "-c", line.split(" ", 5)[5].replace("\\%", "%")], cwd="/",
                       check=True, env={"PATH": "/usr/bin:/bin"})
    for name in MODELS:
        own = "1" if name == "fraud" else "None"  # a model's own pipeline.env merged in
        assert Path(f"{config_file}.{name}.log").read_text().splitlines() == [
            f"--config {config_file} --model {name} {step} 50% on {own}"
            for step in ("run", "deliver")]


def _has_model_option() -> bool:
    done = subprocess.run([sys.executable, "-m", "hindsight", "run", "--help"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    return "--model" in done.stdout


@pytest.mark.slow
def test_the_crontab_lines_run_as_printed_and_a_corrupt_model_stops_only_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    if not _has_model_option():
        pytest.skip("this hindsight has no --model option yet")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    config_file = _workspace(tmp_path, end=yesterday)
    _corrupt(load_workspace(config_file).config("fraud").store)
    assert main(["--config", str(config_file), "pipeline", "cron"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # cron's bare environment, but the installed script imports this tree's hindsight
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONPATH": str(Path(__file__).parents[1])}
    outcomes = [subprocess.run(["/bin/sh", "-c", line.split(" ", 5)[5].replace("\\%", "%")],
                               cwd="/", env=env, capture_output=True, text=True, check=False,
                               timeout=300)
                for line in lines]
    logs = {name: Path(f"{config_file}.{name}.log").read_text() for name in MODELS}
    assert [o.returncode == 0 for o in outcomes] == [True, False, True], logs
    assert "models/fraud/predictions/" in logs["fraud"]  # its log names the corrupt file
    _assert_counted(config_file, yesterday, ok=("router", "price"), failed="fraud")
    assert f"{yesterday}:" in Path(f"{config_file}.router.log").read_text()


def test_a_cronjob_per_model_each_with_its_config_resources_and_the_workspace_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = _workspace(tmp_path, pipeline={"image": "registry.example/hindsight:2.0.0",
                                                 "retries": 3, "memory": "4Gi",
                                                 "store_volume": "hindsight-store"})
    assert main(["--config", str(config_file), "pipeline", "cron", "--kubernetes"]) == 0
    printed = capsys.readouterr()
    documents = list(yaml.safe_load_all(printed.out))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        (kind, f"hindsight-{name}") for name in MODELS for kind in ("ConfigMap", "CronJob")]
    space = load_workspace(config_file)
    for config_map, cronjob in zip(documents[::2], documents[1::2], strict=True):
        name = config_map["metadata"]["name"].removeprefix("hindsight-")
        # the model's config, resolved: read on its own in the pod, it is the same config
        assert parse_config(yaml.safe_load(config_map["data"]["hindsight.yaml"])
                            ).model_dump() == space.config(name).model_dump()
        spec = cronjob["spec"]
        assert (spec["schedule"], spec["concurrencyPolicy"]) == ("30 2 * * *", "Forbid")
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 3
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["resources"]["requests"]["memory"] == (
            "16Gi" if name == "fraud" else "4Gi")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"config": "/etc/hindsight", "store": str(tmp_path / "store")}
        assert {v["name"]: v for v in pod["volumes"]}["config"]["configMap"] == {
            "name": f"hindsight-{name}"}
    assert "warning" not in printed.err


def test_one_model_of_a_workspace_mounts_the_workspace_store(tmp_path: Path) -> None:
    from hindsight.pipelines.cron import config_text, cronjob_manifest

    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"),
                                    "pipeline": {"store_volume": "claim"}, "models": MODELS}))
    space = load_workspace(file)
    config = space.config("price")
    _, cronjob = yaml.safe_load_all(cronjob_manifest(config, "0 1 * * *", config_text(config),
                                                     store_root=space.store))
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["store"] == str(
        tmp_path / "store")


def _corrupt(store: str) -> None:
    """Overwrite a model's prediction files with bytes that are not Parquet."""
    files = sorted(Path(store, "predictions").rglob("*.parquet"))
    assert files
    for file in files:
        file.write_bytes(b"not parquet at all")


def _assert_counted(config_file: Path, day: date, ok: tuple[str, ...], failed: str) -> None:
    space = load_workspace(config_file)
    for name in ok:
        with Monitor(space.config(name)) as monitor:
            [part] = monitor.store.files(Table.METRICS, day, day)
            assert monitor.store.read(part.path).num_rows > 0
    with Monitor(space.config(failed)) as monitor:
        assert not monitor.store.files(Table.METRICS, day, day)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom")
def test_the_workspace_pipeline_runs_locally_and_a_corrupt_model_stops_only_itself(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kfp import local

    from hindsight.pipelines.kubeflow import workspace_pipeline_function

    # no retries: the local runner would wait out their back-off (a minute, then two)
    config_file = _workspace(tmp_path, pipeline={"retries": 0})
    space = load_workspace(config_file)
    _corrupt(space.config("fraud").store)
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path_factory.mktemp("kfp-root")))
    # kfp's local runner cannot fill in the schedule-time placeholder: the run date is given
    run = workspace_pipeline_function(space, scheduled_time="")
    with pytest.raises(RuntimeError, match="hindsight-workspace"):  # the run ends failed
        run(run_date=END.isoformat())
    _assert_counted(config_file, END, ok=("router", "price"), failed="fraud")


def test_one_model_named_with_model_gets_the_single_model_outputs_on_the_workspace_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    if not _has_model_option():
        pytest.skip("this hindsight has no --model option yet")
    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"),
                                    "pipeline": {"store_volume": "claim"}, "models": MODELS}))
    out = tmp_path / "fraud.yaml"
    assert main(["--config", str(file), "--model", "fraud", "pipeline", "kubeflow",
                 "--out", str(out)]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    assert set(spec["root"]["dag"]["tasks"]) == {"count-step", "judge-step", "deliver-step"}
    assert parse_config(yaml.safe_load(spec["root"]["inputDefinitions"]["parameters"][
        "config_yaml"]["defaultValue"])).columns.id == "txn"
    for executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        assert executor["pvcMount"][0]["mountPath"] == str(tmp_path / "store")
    capsys.readouterr()
    assert main(["--config", str(file), "pipeline", "cron", "--model", "fraud"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert f"--config {file} --model fraud run" in line
    capsys.readouterr()
    assert main(["--config", str(file), "pipeline", "cron", "--kubernetes", "--model",
                 "fraud"]) == 0
    one = list(yaml.safe_load_all(capsys.readouterr().out))
    assert main(["--config", str(file), "pipeline", "cron", "--kubernetes"]) == 0
    every = list(yaml.safe_load_all(capsys.readouterr().out))
    # the very ConfigMap and CronJob the workspace's output holds for that model
    assert one == [d for d in every if d["metadata"]["name"] == "hindsight-fraud"]


def test_long_model_names_get_cronjob_names_kubernetes_accepts_and_tells_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["a" * 63 + "1", "a" * 63 + "2"]  # the longest names a workspace takes
    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"),
                                    "pipeline": {"store_volume": "claim"},
                                    "models": dict.fromkeys(names, MODELS["fraud"])}))
    assert main(["--config", str(file), "pipeline", "cron", "--kubernetes"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    cronjobs = [d for d in documents if d["kind"] == "CronJob"]
    job_names = {d["metadata"]["name"] for d in cronjobs}
    assert len(job_names) == 2
    assert all(len(n) <= 52 and n.startswith("hindsight-aaa") for n in job_names)
    for config_map, cronjob in zip(documents[::2], documents[1::2], strict=True):
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert {v["name"]: v for v in pod["volumes"]}["config"]["configMap"]["name"] == (
            config_map["metadata"]["name"]) == cronjob["metadata"]["name"]


def test_a_workspace_given_by_relative_paths_is_scheduled_with_absolute_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "price.yaml").write_text(yaml.safe_dump(MODELS["price"]))
    (project / "hindsight.yaml").write_text(yaml.safe_dump({
        "store": "./data", "pipeline": {"store_volume": "claim"},
        "models": {"router": MODELS["router"], "price": {"include": "models/price.yaml"}}},
        sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    given = os.path.relpath(project / "hindsight.yaml")
    assert main(["--config", given, "pipeline", "cron"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for name, line in zip(("router", "price"), lines, strict=True):
        steps = [shlex.split(step) for step in line.split(" ", 5)[5].split(" && ")]
        assert steps[0] == ["cd", str(project)]
        for step in steps[1:]:
            assert step[1:5] == ["--config", str(project / "hindsight.yaml"), "--model", name]
            assert step[-3:] == [">>", f"{project / 'hindsight.yaml'}.{name}.log", "2>&1"]
    assert main(["--config", given, "pipeline", "cron", "--kubernetes"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    for config_map, cronjob in zip(documents[::2], documents[1::2], strict=True):
        name = config_map["metadata"]["name"].removeprefix("hindsight-")
        # the pod reads the model's store where the volume is mounted: both absolute
        assert yaml.safe_load(config_map["data"]["hindsight.yaml"])["store"] == str(
            project / "data" / "models" / name)
        [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["store"] == str(
            project / "data")


def test_one_model_of_a_workspace_without_a_volume_is_warned_of_the_workspace_store(
    tmp_path: Path,
) -> None:
    from hindsight.pipelines.kubeflow import compile_pipeline

    file = tmp_path / "hindsight.yaml"
    file.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "models": MODELS}))
    space = load_workspace(file)
    [note] = compile_pipeline(space.config("price"), tmp_path / "price.yaml",
                              store_root=space.store)
    # the volume to set holds the workspace's store, not only this model's folder of it
    assert note.startswith(f"store {str(tmp_path / 'store')!r} is a local path")
