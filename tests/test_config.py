from __future__ import annotations

from pathlib import Path

import pytest

from hindsight.config import load_config, parse_config
from hindsight.errors import ConfigError

COLUMNS = {"id": "i", "timestamp": "t", "prediction": "p", "label": "y"}


def test_a_missing_key_is_named_with_its_purpose() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"model": "m", "store": "s", "columns": {"timestamp": "t", "prediction": "p",
                                                              "label": "y"}})
    assert str(info.value) == (
        "hindsight.yaml: columns.id is missing (the key that joins predictions to labels)")


def test_an_unknown_key_suggests_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'segmnets' \(did you mean 'segments'\?\)"):
        parse_config({"model": "m", "store": "s", "columns": COLUMNS, "segmnets": ["a"]})


def test_two_roles_on_one_column_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"columns.timestamp and columns.id both name 'i'"):
        parse_config({"model": "m", "store": "s", "columns": {**COLUMNS, "timestamp": "i"}})


def test_a_segment_that_is_a_role_column_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"segments\[0\] 'p' is already columns.prediction"):
        parse_config({"model": "m", "store": "s", "columns": COLUMNS, "segments": ["p"]})


def test_a_wrong_type_names_the_key_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"min_samples: .*got 'many'"):
        parse_config({"model": "m", "store": "s", "columns": COLUMNS, "min_samples": "many"})


def test_a_relative_store_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "hindsight.yaml").write_text(
        "model: m\nstore: ./data\ncolumns: {id: i, timestamp: t, prediction: p, label: y}\n")
    assert load_config(tmp_path / "hindsight.yaml").store == str(tmp_path / "data")


def test_the_config_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "other.yaml").write_text(
        "model: from-env\nstore: s\ncolumns: {id: i, timestamp: t, prediction: p, label: y}\n")
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(tmp_path / "other.yaml"))
    assert load_config().model == "from-env"


def test_a_missing_config_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such config file .*--config FILE"):
        load_config(tmp_path / "nope.yaml")


def test_cross_depth_defaults_to_at_most_three_segments() -> None:
    config = parse_config({"model": "m", "store": "s", "columns": COLUMNS,
                           "segments": ["a", "b", "c", "d"]})
    assert config.effective_cross_depth == 3


@pytest.mark.parametrize(("drift", "expected"), [
    ({"every": "7m"}, r"drift.every 7m: checks must come 5m to 1d apart and fit a day"),
    ({"every": "2m"}, r"drift.every 2m: checks must come 5m to 1d apart"),
    ({"every": "2d"}, r"drift.every 2d: checks must come 5m to 1d apart"),
    ({"every": "1h", "window": "30m"}, r"drift.window 30m is shorter than drift.every 1h"),
    ({"every": "an hour"}, r"'an hour' is not a duration: write a whole number and a unit"),
    ({"window": "3d"}, r"drift.window 3d: use 5m to 1d"),
])
def test_intra_day_checks_must_fit_a_day(drift: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config({"model": "m", "store": "s", "columns": COLUMNS, "drift": drift})


def test_durations_read_back_as_written() -> None:
    config = parse_config({"model": "m", "store": "s", "columns": COLUMNS,
                           "drift": {"every": "15m", "window": "90m"}})
    assert config.drift.every is not None and config.drift.every.total_seconds() == 900
    dumped = config.model_dump(mode="json")["drift"]
    assert (dumped["every"], dumped["window"]) == ("15m", "90m")
    assert parse_config(config.model_dump(mode="json")) == config


def test_per_class_score_columns_are_keyed_by_each_classs_identity(tmp_path: Path) -> None:
    """YAML reads ``1.0:`` as a number and ``false:`` as a boolean: each class is keyed as
    predictions are stored (``1.0`` -> ``1``, ``False`` -> ``false``)."""
    path = tmp_path / "hindsight.yaml"
    path.write_text("model: m\nstore: s\ncolumns: {id: i, timestamp: t, prediction: p, "
                    "label: y, scores: {1.0: p1, 2: p2, false: pf, approve: pa}}\n",
                    encoding="utf-8")
    columns = load_config(path).columns
    assert columns.scores == {"1": "p1", "2": "p2", "false": "pf", "approve": "pa"}
    assert columns.has_score()
    assert columns.roles()["scores.1"] == "p1"


@pytest.mark.parametrize(("scores", "expected"), [
    ({}, r"columns.scores is empty: map each class to its probability column"),
    ({"1": "q1", 1.0: "q2"}, r"maps '1' and 1.0, the same class '1' .*keep one"),
    ({None: "q"}, r"None is not a class; write each class as it appears"),
    ({"a": "q", "b": "q"}, r"columns.scores.b and columns.scores.a both name 'q'"),
    ({"a": "i"}, r"columns.scores.a and columns.id both name 'i'"),
    ({"a": 3}, r"columns.scores.a: .*got 3"),
    ({"a": "_hindsight_a"}, r"names starting with '_hindsight_' are reserved"),
])
def test_a_per_class_score_mapping_that_cannot_work_is_refused(scores: dict[object, object],
                                                               expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config({"model": "m", "store": "s", "columns": {**COLUMNS, "scores": scores}})


def test_per_class_scores_are_refused_beside_a_score_and_for_a_regression() -> None:
    columns = {**COLUMNS, "scores": {"a": "pa", "b": "pb"}}
    with pytest.raises(ConfigError, match=r"columns.score and columns.scores both give the"):
        parse_config({"model": "m", "store": "s", "columns": {**columns, "score": "s"}})
    with pytest.raises(ConfigError, match=r"which a regression model has not: leave it out"):
        parse_config({"model": "m", "store": "s", "columns": columns, "task": "regression"})
