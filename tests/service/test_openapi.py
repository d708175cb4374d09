"""The published OpenAPI document against the running server: schemathesis generates requests
from /openapi.json for every operation and checks that each answer is one the document
promises (status code, content type, body schema) and never a server error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from hindsight.config import Config
from hindsight.monitor import Monitor
from tests.service.test_app import TOKEN, Server, collapse_rows


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a store with data, a run and open alerts: the pages have content."""
    from hindsight.config import parse_config

    store = tmp_path_factory.mktemp("openapi") / "store"
    config: Config = parse_config({
        "model": "openapi", "store": str(store),
        "columns": {"id": "request_id", "timestamp": "served_at", "prediction": "predicted",
                    "label": "actual", "label_timestamp": "actual_at"},
        "segments": ["country", "tier"], "min_samples": 20,
        "service": {"max_body_bytes": 200_000, "max_rows": 1000},
    }, source="test.yaml")
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        rows, labels = collapse_rows()
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        monitor.run(date(2026, 1, 15))
        server = Server(monitor, TOKEN)
        yield server
        server.stop()


def operations_answer_as_promised(url: str, token: str, examples: int) -> list[str]:
    """Generated requests to every operation the service's spec documents, each answer
    checked against the spec; the operations tested."""
    auth = {"Authorization": f"Bearer {token}"}
    api = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json", headers=auth).json())
    tested = []
    for found in api.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_promised(case: schemathesis.Case) -> None:
            # Rows valid one by one can still be refused together (two predictions for one
            # id, or an id stored earlier with another prediction): no JSON Schema says so,
            # so "schema-valid data is accepted" cannot hold for ingest. Every other check
            # does: documented status codes, content types and bodies, no server error.
            case.call_and_validate(base_url=url, headers=auth,
                                   excluded_checks=[positive_data_acceptance])

        answers_as_promised()
        tested.append(operation.label)
    return tested


@pytest.mark.slow
def test_every_answer_is_one_the_spec_promises(live: Server) -> None:
    tested = operations_answer_as_promised(live.url, TOKEN, examples=30)
    assert len(tested) >= 9, tested


def test_the_spec_documents_refusals_and_hides_nothing_it_serves(live: Server) -> None:
    spec = httpx.get(f"{live.url}/openapi.json",
                     headers={"Authorization": f"Bearer {TOKEN}"}).json()
    post = spec["paths"]["/v1/predictions"]["post"]
    assert {"200", "401", "413", "422", "429"} <= set(post["responses"])
    assert set(spec["paths"]) >= {"/v1/predictions", "/v1/labels", "/v1/alerts", "/metrics",
                                  "/", "/segments", "/drift", "/versions", "/healthz"}
