"""The installed `billing serve`, quoted over real HTTP on a free port."""

import os

import pytest

from tests.catalog.test_loader import INVALID
from tests.servers import billing_cli, post_json, running_server

pytestmark = pytest.mark.slow


def test_billing_serve_quotes_over_real_http():
    with running_server() as base:
        status, data = post_json(
            f"{base}/v1/quote", {"usage": {"product_analytics": 3000000}, "at": "2026-11-01"}
        )
        assert status == 200
        assert data["total"] == "84.30"
        status, error = post_json(f"{base}/v1/quote", {"usage": {"product_analytics": -1}})
        assert status == 422
        assert error["field"] == "usage.product_analytics"


def test_the_service_refuses_to_start_on_an_invalid_tier_directory():
    result = billing_cli(
        "serve", "--port", "1", "--tiers", str(INVALID / "three_mistakes"), timeout=30
    )
    assert result.returncode == 1
    assert "3 problem(s)" in result.stderr
    assert "thing.toml: colour: unknown key 'colour'" in result.stderr
    assert "versions[0].tiers[1].up_to: up_to must be strictly increasing" in result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory"])
def test_serve_and_worker_refuse_an_in_memory_database(command, url):
    # each thread of the process would open its own empty database (and SQLAlchemy's pool
    # for one closes another thread's connection under it: the server died with SIGSEGV)
    result = billing_cli(command, env={**os.environ, "BILLING_DATABASE_URL": url}, timeout=30)
    assert result.returncode == 1
    assert f"BILLING_DATABASE_URL={url} is an in-memory SQLite database" in result.stderr
    assert "sqlite:///./billing.db" in result.stderr
