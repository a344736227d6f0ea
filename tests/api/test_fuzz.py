"""Schemathesis against the served OpenAPI schema, every operation, with a valid admin key,
on SQLite and on PostgreSQL (which refuses text SQLite stores, such as a NUL character): no
answer is a 5xx, and every 4xx carries the {"code", "message", "field"} error body."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import TIERS, _postgres_schema
from tests.servers import Server, billing_ok, cli_database

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request, tmp_path_factory):
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'b.db'}")
    else:
        for url in _postgres_schema(request.getfixturevalue("postgres_url")):
            yield from _serve(url)


def _serve(url):
    env = cli_database(url)
    key = billing_ok("keys", "create", "--role", "admin", env=env)
    server = Server(TIERS, url)
    server.env.update({"BILLING_QUOTE_RATE_PER_MINUTE": "0", "BILLING_SCHEDULER": "0"})
    server.start()
    yield server.base, key
    server.stop()


def check(case, base: str, key: str) -> None:
    response = case.call(base_url=base, headers={"Authorization": f"Bearer {key}"})
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), where
        assert {"code", "message", "field"} <= body.keys(), f"{where}: {body}"
        assert isinstance(body["code"], str), where
        assert body["code"], where
        assert isinstance(body["message"], str), where
        assert body["message"], where


def test_no_5xx_and_every_4xx_has_the_error_shape(served):
    base, key = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every route of the API is in the schema
    examples = int(os.environ.get("BILLING_FUZZ_EXAMPLES", "25"))
    for operation in operations:

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            check(case, base, key)

        fuzz()
