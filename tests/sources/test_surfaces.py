"""The rest of hindsight on a source: the validation gate, the versions listing (its latest
day the source's) and the service's pages show what they show over the same rows logged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from hindsight.monitor import Monitor
from tests.service.test_app import Server, client
from tests.sources.conftest import START, Rows, classifier_rows, run_days
from tests.sources.test_tables import FIRST_RUN, LAST_RUN, in_place

PAGES = ("/", "/segments?column=region", "/segments?column=plan&within=region%3Deu",
         "/drift", "/versions")


def _released(rows: Rows) -> Rows:
    """The rows with a model version: v1, then v2 from day 4."""
    release = {d: t.append_column("build", pa.array(
        ["v1" if d < START + timedelta(days=4) else "v2"] * t.num_rows))
        for d, t in rows.predictions.items()}
    return Rows(release, rows.labels, rows.reference,
                {**rows.columns, "model_version": "build"}, rows.task)


def test_validate_versions_and_pages_on_a_source_as_on_the_store(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = _released(classifier_rows())
    logged = in_store(rows)
    with in_place(rows, tmp_path, "iceberg") as lake:
        run_days(logged, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        # the gate: the candidate against the reference set, kept for the versions listing
        for monitor in (logged, lake):
            gate = monitor.validate(lambda r: r["verdict"], version="v3")
            assert gate.passed and gate.agreement == 1.0
        # no day given: the latest day predictions were made, in the source
        day, seen = lake.versions()
        assert day == max(rows.predictions) and (day, seen) == logged.versions()
        assert {s.value for s in seen} >= {"v1", "v2"}
        assert lake.version_shares(None, 6) == logged.version_shares(None, 6)
        servers = [Server(monitor, token=None) for monitor in (lake, logged)]
        try:
            with client(servers[0], None) as on_lake, client(servers[1], None) as on_store:
                for path in PAGES:
                    page, same = on_lake.get(path), on_store.get(path)
                    assert page.status_code == 200, (path, page.text[:300])
                    assert page.text == same.text, path
                assert "v2" in on_lake.get("/versions").text
        finally:
            for server in servers:
                server.stop()
