"""A workspace file: many models sharing a store, sinks, a service and defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hindsight.config import load_config
from hindsight.errors import ConfigError
from hindsight.workspace import load_workspace

ROOT = Path(__file__).resolve().parents[1]

ROUTER = {"task": "classification",
          "columns": {"id": "ticket", "timestamp": "opened", "prediction": "queue",
                      "label": "true_queue"},
          "segments": ["language"]}
FRAUD = {"columns": {"id": "txn", "timestamp": "at", "prediction": "flagged", "score": "p",
                     "label": "chargeback"},
         "segments": ["country", "channel"], "min_samples": 50}
PRICE = {"task": "regression",
         "columns": {"id": "listing", "timestamp": "t", "prediction": "price_hat",
                     "label": "price"},
         "alerts": {"min_effect": 0.2}}


def _write(folder: Path, name: str, content: object) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def workspace_file(tmp_path: Path) -> Path:
    _write(tmp_path, "models/price.yaml", PRICE)
    return _write(tmp_path, "hindsight.yaml", {
        "store": "data", "min_samples": 200, "alerts": {"alpha": 0.02},
        "sinks": [{"name": "ops", "type": "log", "path": "/tmp/alerts.log"}],
        "storage": {"cold_store": "cold", "hot_days": 30},
        "service": {"token_env": "TEAM_TOKEN", "max_rows": 5000},
        "models": {"router": ROUTER, "fraud": {**FRAUD, "service": {"token_env": "FRAUD"}},
                   "price": {"include": "models/price.yaml"}}})


def test_models_share_the_store_sinks_service_and_defaults(workspace_file: Path) -> None:
    space = load_workspace(workspace_file)
    root = workspace_file.parent
    assert space.names == ["router", "fraud", "price"] and not space.broken
    assert space.store == str(root / "data")
    for name, config in space.models.items():
        assert config.model == name
        assert config.store == str(root / "data" / "models" / name)
        assert config.storage.cold_store == str(root / "cold" / "models" / name)
        assert [s.name for s in config.sinks] == ["ops"]
        assert config.service.max_rows == 5000
        assert config.alerts.alpha == 0.02  # a shared mapping merged key by key
    router, fraud, price = (space.config(n) for n in space.names)
    assert router.min_samples == 200 and fraud.min_samples == 50  # the model's own wins
    assert price.task == "regression" and price.alerts.min_effect == 0.2
    assert price.source.endswith("models/price.yaml (included as models.price)")
    assert fraud.service.token_env == "FRAUD" and router.service.token_env == "TEAM_TOKEN"
    assert space.service.token_env == "TEAM_TOKEN"
    assert load_config(workspace_file, "fraud") == fraud


def test_a_workspace_of_several_models_asks_which(workspace_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds 3 models \(router, fraud, price\): name one "
                                          r"with --model NAME"):
        load_config(workspace_file)
    with pytest.raises(ConfigError, match="has no model 'pricing'; its models: router, fraud"):
        load_config(workspace_file, "pricing")


def test_a_single_model_config_reads_as_before(tmp_path: Path) -> None:
    file = _write(tmp_path, "hindsight.yaml", {"model": "fraud <b>", "store": "data", **FRAUD})
    space = load_workspace(file)
    assert not space.is_workspace and space.names == ["fraud <b>"]
    config = load_config(file)
    assert config.store == str(tmp_path / "data") and config.model == "fraud <b>"
    assert load_config(file, "fraud <b>") == config


def test_one_broken_model_is_reported_and_the_others_load(tmp_path: Path) -> None:
    _write(tmp_path, "models/price.yaml", {**PRICE, "store": "/elsewhere"})
    file = _write(tmp_path, "hindsight.yaml", {"store": "data", "models": {
        "router": ROUTER, "fraud": {**FRAUD, "min_samples": -1},
        "price": {"include": "models/price.yaml"}, "ghost": {"include": "missing.yaml"},
        "bad/name": ROUTER}})
    space = load_workspace(file)
    assert list(space.models) == ["router"]
    assert space.names == ["router", "fraud", "price", "ghost", "bad/name"]
    assert set(space.broken) == {"fraud", "price", "ghost", "bad/name"}
    assert "models.fraud" in str(space.broken["fraud"]) and "min_samples" in str(
        space.broken["fraud"])
    assert "store is the workspace's" in str(space.broken["price"])
    assert "models/price.yaml (included as models.price)" in str(space.broken["price"])
    assert "no such config file" in str(space.broken["ghost"])
    assert "becomes a folder" in str(space.broken["bad/name"])
    with pytest.raises(ConfigError, match="min_samples"):
        space.config("fraud")


@pytest.mark.parametrize(("content", "message"), [
    ({"models": {"a": ROUTER}}, "store is missing"),
    ({"store": "s", "models": []}, "models must map each model's name"),
    ({"store": "s", "model": "x", "models": {"a": ROUTER}}, "model is given at the top"),
    ({"store": "s", "service": {"max_rows": 0}, "models": {"a": ROUTER}}, "service.max_rows"),
])
def test_a_broken_workspace_says_what_to_fix(tmp_path: Path, content: dict[str, object],
                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_workspace(_write(tmp_path, "w.yaml", content))


def test_a_model_may_not_take_the_workspace_s_service(tmp_path: Path) -> None:
    file = _write(tmp_path, "w.yaml", {"store": "s", "models": {
        "a": {**ROUTER, "service": {"max_rows": 3}}, "b": {**ROUTER, "model": "c"}}})
    space = load_workspace(file)
    assert "a model may only give its own token" in str(space.broken["a"])
    assert "its key under models is 'b'" in str(space.broken["b"])


def test_a_bucket_workspace_puts_each_model_under_its_prefix(tmp_path: Path) -> None:
    file = _write(tmp_path, "w.yaml", {"store": "s3://lake/hindsight/", "models": {
        "router": ROUTER}})
    assert load_config(file, "router").store == "s3://lake/hindsight/models/router"


def _yaml_blocks(page: Path) -> list[dict[str, object]]:
    fence = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
    return [yaml.safe_load(m[1]) for m in fence.finditer(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", ["README.md", "docs/how-to/workspace.md"])
def test_the_documented_workspaces_load_as_written(tmp_path: Path, page: str) -> None:
    """Each workspace the README and the how-to show loads with every model sound, its
    included files being one model's config (as the page says) of another task."""
    examples = [b for b in _yaml_blocks(ROOT / page) if isinstance(b, dict) and "models" in b]
    assert examples, f"{page} shows no workspace"
    for example in examples:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, model in example["models"].items():
            if "include" in model:
                _write(folder, model["include"], PRICE if "price" in name else ROUTER)
        file = _write(folder, "hindsight.yaml", {**example, "store": str(folder / "store")})
        space = load_workspace(file)
        assert space.broken == {} and space.names == list(example["models"])
