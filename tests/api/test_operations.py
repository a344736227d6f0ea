"""Operational readiness: /readyz, /metrics, request ids, body size limits, the quote rate
limit, CORS closed by default, constant-time key checks."""

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from billing.app import create_app
from billing.db import head_revision
from billing.observability.http import human_bytes
from billing.settings import Settings
from tests.conftest import TIERS, bearer
from tests.metering.helpers import event

QUOTE = {"usage": {"product_analytics": 3000000}}
TOKEN = "metrics-token-for-tests-1234"


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def test_readyz_reports_database_migrations_jobs_and_stripe_lag(api, keys):
    answer = api.get("/readyz", headers=bearer(keys["admin"]))
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["problems"] == []
    assert body["migrations"]["database"] == body["migrations"]["code"] == head_revision()
    assert body["stripe_sync"] == {
        "pending": 0,
        "failed": 0,
        "lag_seconds": 0,
        "state": "off: BILLING_STRIPE_API_KEY is not set",
    }
    assert body["scheduler"].startswith("off")


def test_readyz_is_503_on_a_database_behind_its_migrations(catalog, tmp_path):
    settings = Settings(
        tiers_dir=TIERS,
        database_url=f"sqlite:///{tmp_path / 'b.db'}",
        scheduler=False,
        metrics_token=TOKEN,
    )
    with TestClient(create_app(settings, catalog)) as client:
        bare = client.get("/readyz")
        answer = client.get("/readyz", headers=bearer(TOKEN))
    assert (bare.status_code, bare.json()) == (503, {"status": "not ready"})
    assert answer.status_code == 503
    [problem] = answer.json()["problems"]
    assert "run `billing db upgrade`" in problem


def test_metrics_count_events_by_outcome_and_ingestion_latency(api, keys, session):
    from tests.metering.helpers import add_customer

    add_customer(session, "cust_1")
    before = {
        "accepted": sample("billing_events_total", outcome="accepted", reason=""),
        "rejected": sample("billing_events_total", outcome="rejected", reason="unknown_customer"),
        "duplicate": sample("billing_events_total", outcome="duplicate", reason=""),
        "batches": sample("billing_ingest_seconds_count"),
    }
    batch = [event("m1", 5), event("m2", 5), event("m3", 1, customer="nobody")]
    assert (
        api.post("/v1/events", json={"events": batch}, headers=bearer(keys["ingest"])).json()[
            "accepted"
        ]
        == 2
    )
    api.post("/v1/events", json={"events": batch[:1]}, headers=bearer(keys["ingest"]))
    text = api.get("/metrics", headers=bearer(keys["admin"])).text
    assert "billing_events_total" in text
    assert "billing_ingest_seconds_bucket" in text
    after = sample("billing_events_total", outcome="accepted", reason="")
    assert after - before["accepted"] == 2
    rejected = sample("billing_events_total", outcome="rejected", reason="unknown_customer")
    assert rejected - before["rejected"] == 1
    assert sample("billing_events_total", outcome="duplicate", reason="") - before["duplicate"] == 1
    assert sample("billing_ingest_seconds_count") - before["batches"] == 2


def test_every_answer_carries_a_request_id(client):
    answer = client.get("/healthz")
    assert len(answer.headers["x-request-id"]) == 32
    given = client.get("/healthz", headers={"X-Request-ID": "trace-abc-123"})
    assert given.headers["x-request-id"] == "trace-abc-123"
    odd = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert odd.headers["x-request-id"] != "<script>"  # only safe ids are taken over


def test_bodies_over_the_limit_are_refused_before_the_route_reads_them(catalog):
    settings = Settings(
        tiers_dir=TIERS, database_url="sqlite://", scheduler=False, max_body_bytes=1000
    )
    with TestClient(create_app(settings, catalog)) as client:
        big = {"usage": {"product_analytics": 1}, "padding": "x" * 2000}
        answer = client.post("/v1/quote", json=big)
        assert answer.status_code == 413
        assert answer.json() == {
            "code": "payload_too_large",
            "message": "the body is over 1,000 bytes: the most a request body may be "
            "(BILLING_MAX_BODY_BYTES)",
            "field": "body",
        }

        def chunks():  # no Content-Length: the limit holds on the stream too
            for _ in range(5):
                yield b'{"usage": {"product_analytics": 1}, "x": "' + b"y" * 300

        streamed = client.post(
            "/v1/quote", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.post("/v1/quote", json=QUOTE).status_code == 200


def _chunked(size):
    """A body of `size` bytes sent without a Content-Length (streamed)."""
    for _ in range(size // 65536):
        yield b"x" * 65536
    yield b"x" * (size % 65536)


EVENTS_413 = "the body is over 5,242,880 bytes (5 MB): at most 10,000 events and 5 MB per request"


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_every_413_quotes_the_limit_applied_to_its_route(catalog, streamed):
    """Issue 17, 6: a body over 10 MB sent to /v1/events was told of a 10,485,760-byte
    limit, while the route takes 5 MB. Each route's 413 quotes its own limit, in bytes and
    in human units, declared or streamed, whatever the default limit is."""
    headers = {"Content-Type": "application/json"}  # refused before any key is asked for
    for default in (1024 * 1024, 10 * 1024 * 1024, 1000):
        settings = Settings(
            tiers_dir=TIERS, database_url="sqlite://", scheduler=False, max_body_bytes=default
        )
        with TestClient(create_app(settings, catalog)) as client:
            for size in (5 * 1024 * 1024 + 1, 11 * 1024 * 1024):
                body = _chunked(size) if streamed else b"x" * size
                answer = client.post("/v1/events", content=body, headers=headers)
                assert answer.status_code == 413, (default, size)
                assert answer.json() == {
                    "code": "too_large",
                    "message": EVENTS_413,
                    "field": "body",
                }
            over_default = default + 1
            body = _chunked(over_default) if streamed else b"x" * over_default
            answer = client.post("/v1/quote", content=body, headers=headers)
            assert answer.status_code == 413, default
            assert answer.json()["code"] == "payload_too_large"
            assert answer.json()["message"].startswith(f"the body is over {default:,} bytes")
    shown = {
        1000: "the body is over 1,000 bytes: ",
        1024 * 1024: "the body is over 1,048,576 bytes (1 MB): ",
        10 * 1024 * 1024: "the body is over 10,485,760 bytes (10 MB): ",
    }
    for default, words in shown.items():
        settings = Settings(
            tiers_dir=TIERS, database_url="sqlite://", scheduler=False, max_body_bytes=default
        )
        with TestClient(create_app(settings, catalog)) as client:
            answer = client.post("/v1/quote", content=b"x" * (default + 1), headers=headers)
            assert answer.json()["message"] == (
                f"{words}the most a request body may be (BILLING_MAX_BODY_BYTES)"
            )


def test_events_take_their_own_5_mb_under_a_smaller_default(catalog):
    settings = Settings(
        tiers_dir=TIERS, database_url="sqlite://", scheduler=False, max_body_bytes=1000
    )
    with TestClient(create_app(settings, catalog)) as client:
        big = {"events": [{"id": f"e{i}", "padding": "x" * 100} for i in range(50)]}
        answer = client.post("/v1/events", json=big)  # 5,000+ bytes, over the default
        assert answer.status_code == 401  # read as far as the key: not a 413


def test_sizes_are_shown_in_bytes_and_binary_units():
    assert human_bytes(1000) == "1,000 bytes"
    assert human_bytes(1024) == "1 KB"
    assert human_bytes(1_500_000) == "1.4 MB"
    assert human_bytes(5 * 1024 * 1024) == "5 MB"
    assert human_bytes(3 * 1024**3) == "3 GB"


def test_the_public_quote_endpoint_is_rate_limited_per_client(catalog):
    settings = Settings(
        tiers_dir=TIERS, database_url="sqlite://", scheduler=False, quote_rate_per_minute=3
    )
    with TestClient(create_app(settings, catalog)) as client:
        assert [client.post("/v1/quote", json=QUOTE).status_code for _ in range(3)] == [200] * 3
        refused = client.post("/v1/quote", json=QUOTE)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        body = refused.json()
        assert (body["code"], body["field"]) == ("rate_limited", None)
        assert "try again in" in body["message"]
        assert client.get("/v1/products").status_code == 200  # only the quote is limited


def test_cors_is_closed_unless_origins_are_named(catalog, client):
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    answer = client.options("/v1/quote", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    assert (
        "access-control-allow-origin"
        not in client.post(
            "/v1/quote", json=QUOTE, headers={"Origin": "https://evil.example"}
        ).headers
    )
    settings = Settings(
        tiers_dir=TIERS,
        database_url="sqlite://",
        scheduler=False,
        cors_origins=["https://app.example"],
    )
    with TestClient(create_app(settings, catalog)) as opened:
        allowed = opened.options(
            "/v1/quote", headers={**preflight, "Origin": "https://app.example"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = opened.options("/v1/quote", headers=preflight)
        assert "access-control-allow-origin" not in refused.headers


def test_probes_need_no_key_and_say_no_more_than_their_status(api):
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_metrics_without_credentials_is_a_401_with_the_error_body(api):
    answer = api.get("/metrics")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json() == {
        "code": "unauthorized",
        "message": "/metrics needs an admin key or BILLING_METRICS_TOKEN: "
        "Authorization: Bearer <token>",
        "field": None,
    }


@pytest.fixture
def with_token(engine, catalog, database_url):
    settings = Settings(
        tiers_dir=TIERS, database_url=database_url, scheduler=False, metrics_token=TOKEN
    )
    with TestClient(create_app(settings, catalog, engine)) as client:
        yield client


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_operational_details_need_an_admin_key_or_the_metrics_token(with_token, keys, path):
    for allowed in (keys["admin"], TOKEN):
        answer = with_token.get(path, headers=bearer(allowed))
        assert answer.status_code == 200, answer.text
        assert ("problems" in answer.json()) if path == "/readyz" else "billing_" in answer.text
    for role in ("finance", "ingest"):
        refused = with_token.get(path, headers=bearer(keys[role]))
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    for wrong in ("bk_not_a_key", TOKEN + "x", TOKEN[:-1]):
        refused = with_token.get(path, headers=bearer(wrong))
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
        assert refused.headers["www-authenticate"] == "Bearer"


def test_the_metrics_token_is_at_least_16_characters():
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(metrics_token="short")
