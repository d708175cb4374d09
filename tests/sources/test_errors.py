"""A source that cannot be read as configured is refused with a message naming the source
(the config key and the table) and the fix, before anything is counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hindsight.config import parse_config
from hindsight.errors import HindsightError
from hindsight.monitor import Monitor
from tests.sources.conftest import START, Rows, classifier_rows, raw_config
from tests.sources.test_tables import write_delta, write_jsonl, write_parquet_hive


def _without(rows: Rows, column: str) -> Rows:
    return Rows({d: t.drop_columns([column]) for d, t in rows.predictions.items()},
                rows.labels, rows.reference, rows.columns, rows.task)


def _bad_sources(rows: Rows, root: Path) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Each bad predictions source, and what its message must say."""
    parquet = write_parquet_hive(rows, root / "parquet")["predictions"]["path"]
    jsonl = write_jsonl(rows, root / "jsonl")["predictions"]["path"]
    delta = write_delta(rows, root / "delta")["predictions"]["path"]
    unmapped = write_delta(_without(rows, "verdict"), root / "unmapped")["predictions"]["path"]
    catalog = {"name": "serving", "type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}",
               "warehouse": f"file://{root / 'warehouse'}"}
    return {
        "missing prefix": ({"format": "parquet", "path": str(root / "nowhere")},
                           ["predictions: parquet table", "does not exist", "check path"]),
        "missing delta table": ({"format": "delta", "path": str(root / "nowhere")},
                                ["predictions: delta table", "_delta_log"]),
        "files read as delta": ({"format": "delta", "path": parquet},
                                ["predictions: delta table", "format: parquet or jsonl"]),
        "parquet named jsonl": ({"format": "jsonl", "path": parquet},
                                ["predictions: jsonl table", "set format: parquet"]),
        "jsonl named parquet": ({"format": "parquet", "path": jsonl},
                                ["predictions: parquet table", "set format: jsonl"]),
        "a delta table as files": ({"format": "parquet", "path": delta},
                                   ["is a Delta table", "set format: delta"]),
        "missing iceberg table": ({"format": "iceberg", "table": "serving.nope",
                                   "catalog": catalog},
                                  ["predictions: iceberg table serving.nope",
                                   "check table"]),
        "missing column": ({"format": "delta", "path": unmapped},
                           ["predictions: delta table", "no column 'verdict'",
                            "columns.prediction", "map columns.prediction"]),
    }


def test_a_bad_source_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    rows = classifier_rows(per_day=40, days=4)
    labels = write_parquet_hive(rows, tmp_path / "labels")["labels"]
    for case, (source, said) in _bad_sources(rows, tmp_path / "tables").items():
        config = parse_config(raw_config(rows, tmp_path / "store", predictions=source,
                                         labels=labels))
        with Monitor(config) as monitor, pytest.raises(HindsightError) as refused:
            monitor.run(START + timedelta(days=3))
        for words in said:
            assert words in str(refused.value), (case, str(refused.value))


def test_the_sources_the_documentation_shows_are_valid_configs() -> None:
    """Every `predictions:` and `labels:` the lake page shows is a source the config takes,
    beside the columns of the page's first example."""
    import re

    import yaml

    page = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "lake.md"
    blocks = [yaml.safe_load(m[1]) for m in re.finditer(
        r"^```yaml\n(.*?)^```$", page.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)]
    first = blocks[0]
    shown = 0
    for block in blocks:
        config = parse_config({"model": "fraud", "store": "/tmp/hindsight",
                               "columns": first["columns"], **block})
        for role in ("predictions", "labels"):
            if role in block:
                assert getattr(config, role).format == block[role]["format"]
                shown += 1
    assert shown == 6  # a Delta table, an Iceberg table and a prefix, each for both tables
