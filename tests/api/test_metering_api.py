"""Customers, events and usage over the API, on SQLite and PostgreSQL, with access control."""

import json

import pytest

from tests.api.helpers import ev, make_customer, send
from tests.conftest import bearer
from tests.metering.helpers import event


def test_customers_are_created_read_and_listed(api, keys):
    created = make_customer(api, keys, email="ops@example.com", billing_anchor_day=15)
    assert created["billing_anchor_day"] == 15
    assert created["currency"] == "USD"
    assert created["created_at"]
    got = api.get("/v1/customers/cust_1", headers=bearer(keys["finance"])).json()
    assert got["email"] == "ops@example.com"
    listed = api.get("/v1/customers", headers=bearer(keys["finance"])).json()
    assert [c["id"] for c in listed] == ["cust_1"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"id": "cust_1", "name": "Again"}, 409, "id"),
        ({"id": "c2", "name": "X", "billing_anchor_day": 29}, 422, "billing_anchor_day"),
        ({"id": "c2", "name": "X", "billing_anchor_day": 0}, 422, "billing_anchor_day"),
        ({"id": "c 2", "name": "X"}, 422, "id"),
        ({"id": "c2", "name": ""}, 422, "name"),
        ({"id": "c2", "name": "X", "currency": "EUR"}, 422, "currency"),
        ({"id": "c2", "name": "X", "plan": "gold"}, 422, "plan"),
        ({"id": "c2", "name": "X", "billing_start": "2999-01-01T00:00:00Z"}, 422, "billing_start"),
        ({"id": "c2", "name": "X", "billing_start": "1970-01-01T00:00:00Z"}, 422, "billing_start"),
        ({"id": "c2", "name": "X", "billing_start": "2026-10-01T00:00:00"}, 422, "billing_start"),
    ],
)
def test_bad_customers_are_refused_naming_the_field(api, keys, body, status, field):
    make_customer(api, keys)
    response = api.post("/v1/customers", json=body, headers=bearer(keys["admin"]))
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


def test_billing_starts_where_asked_and_usage_before_it_is_refused(api, keys):
    """A customer created now starts billing at the period of sign-up; one imported with a
    billing start in the past is billed from there. Usage before the start is refused with
    before_billing_start, never acknowledged and left unbilled."""
    signed_up = make_customer(api, keys, "new")
    imported = make_customer(api, keys, "old", billing_start="2026-06-15T09:00:00+02:00")
    assert imported["billing_start"].startswith("2026-06-15T07:00:00")
    assert signed_up["billing_start"] < signed_up["created_at"]  # the month's start
    events = [
        event("o1", 1, customer="old", at="2026-06-15T06:59:59Z"),
        event("o2", 1, customer="old", at="2026-06-15T07:00:00Z"),
        event("n1", 1, customer="new", at="2026-06-15T07:00:00Z"),
    ]
    body = send(api, keys["ingest"], events).json()
    assert body["accepted"] == 1
    assert [(r["id"], r["error"]) for r in body["rejected"]] == [
        ("o1", "before_billing_start: billing starts at 2026-06-15T07:00:00Z"),
        ("n1", f"before_billing_start: billing starts at {signed_up['billing_start']}"),
    ]


def test_ingestion_answers_after_commit_and_usage_reads_the_totals(mid_month, api, keys):
    make_customer(api, keys)
    events = [ev("e1", 5), ev("e2", "2.5"), ev("e3", product="session_replay"), ev("bad", -1)]
    response = send(api, keys["ingest"], events)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 3
    assert body["duplicates"] == 0
    assert body["over_limit"] == []
    assert body["rejected"] == [
        {
            "index": 3,
            "id": "bad",
            "error": "invalid: quantity: quantity must be a non-negative number, got -1",
        }
    ]
    retry = send(api, keys["ingest"], events).json()
    assert (retry["accepted"], retry["duplicates"]) == (0, 3)
    usage = api.get("/v1/customers/cust_1/usage", headers=bearer(keys["finance"])).json()
    assert usage["products"] == [
        {
            "product": "product_analytics",
            "quantity": "7.5",
            "events": 2,
            "duplicates": 2,
            "rejected": 0,
        },
        {"product": "session_replay", "quantity": "1", "events": 1, "duplicates": 1, "rejected": 0},
    ]


def test_usage_of_a_named_period(api, keys):
    make_customer(api, keys, billing_anchor_day=10)
    response = api.get("/v1/customers/cust_1/usage?period=2026-10", headers=bearer(keys["admin"]))
    body = response.json()
    assert (body["period"], body["start"], body["end"], body["products"]) == (
        "2026-10",
        "2026-10-10T00:00:00+00:00",
        "2026-11-10T00:00:00+00:00",
        [],
    )
    bad = api.get("/v1/customers/cust_1/usage?period=2026-13", headers=bearer(keys["admin"]))
    assert (bad.status_code, bad.json()["field"]) == (422, "period")


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (b"not json", {"content-type": "application/json"}, 422, "invalid_json"),
        (
            json.dumps({"events": []}).encode(),
            {"content-type": "application/json"},
            422,
            "empty_batch",
        ),
        (
            json.dumps({"events": {}}).encode(),
            {"content-type": "application/json"},
            422,
            "invalid_type",
        ),
        (json.dumps([1]).encode(), {"content-type": "application/json"}, 422, "invalid_type"),
        (
            json.dumps({"events": [], "x": 1}).encode(),
            {"content-type": "application/json"},
            422,
            "unknown_field",
        ),
        (
            json.dumps({"events": [{}]}).encode(),
            {"content-type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            json.dumps({"events": [{"id": str(i)} for i in range(10_001)]}).encode(),
            {"content-type": "application/json"},
            413,
            "too_large",
        ),
        (
            b'{"events": ["' + b"x" * (5 * 1024 * 1024) + b'"]}',
            {"content-type": "application/json"},
            413,
            "too_large",
        ),
    ],
)
def test_bad_batches_are_refused_whole_with_a_clear_status(api, keys, raw, headers, status, code):
    response = api.post("/v1/events", content=raw, headers={**headers, **bearer(keys["ingest"])})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    assert error["message"]
    if status == 413:
        assert "10,000 events and 5 MB" in error["message"]


def test_keys_are_required_and_roles_are_checked(api, keys):
    make_customer(api, keys)
    assert send(api, "bk_nope", [ev("e1")]).status_code == 401
    unauthenticated = api.post("/v1/events", json={"events": [ev("e1")]})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "unauthorized"
    assert send(api, keys["finance"], [ev("e1")]).status_code == 403
    assert (
        api.post(
            "/v1/customers", json={"id": "x", "name": "X"}, headers=bearer(keys["ingest"])
        ).status_code
        == 403
    )
    assert api.get("/v1/customers/cust_1", headers=bearer(keys["ingest"])).status_code == 403


def test_a_customer_key_reads_only_its_own_customer(api, keys, engine):
    from sqlmodel import Session

    from billing.auth.models import Role
    from billing.auth.service import create_key, revoke_key

    make_customer(api, keys, "alice")
    make_customer(api, keys, "bob")
    with Session(engine, expire_on_commit=False) as session:
        alice_key, row = create_key(
            connection=session.connection(), role=Role.CUSTOMER, customer_id="alice"
        )
        session.commit()
    assert api.get("/v1/customers/alice/usage", headers=bearer(alice_key)).status_code == 200
    assert api.get("/v1/customers/bob/usage", headers=bearer(alice_key)).status_code == 403
    assert api.get("/v1/customers/bob", headers=bearer(alice_key)).status_code == 403
    assert api.get("/v1/customers", headers=bearer(alice_key)).status_code == 403
    with Session(engine) as session:
        revoke_key(connection=session.connection(), prefix_or_id=row.prefix)
        session.commit()
    # Verified keys are trusted for key_cache_seconds (2 s by default): still in, then out.
    assert api.get("/v1/customers/alice", headers=bearer(alice_key)).status_code == 200
    api.app.state.key_cache.ttl = 0
    assert api.get("/v1/customers/alice", headers=bearer(alice_key)).status_code == 401


def test_keys_are_stored_only_as_digests(keys, engine):
    from sqlalchemy import text

    with engine.connect() as connection:
        stored = " ".join(
            str(v) for row in connection.execute(text("SELECT * FROM api_key")) for v in row
        )
    for key in keys.values():
        assert key not in stored


def test_events_named_by_event_with_properties_count_as_the_tier_files_say(mid_month, api, keys):
    """The shipped feature flags count a decide call once and a local evaluation ten times
    (pricing_tiers/feature_flags.toml); properties travel with the event, exactly."""
    make_customer(api, keys)
    decide = {**ev("f1", 3), "event": "flag_decide", "properties": {"project": "web"}}
    local = {**ev("f2", "1.5"), "event": "flag_local_evaluation", "properties": {"n": 2.50}}
    for made in (decide, local):
        del made["product"]
    both = {**ev("x1"), "event": "flag_decide"}  # a product and an event: which?
    response = send(api, keys["ingest"], [decide, local, both])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 2,
        "duplicates": 0,
        "over_limit": [],
        "over_limit_products": {},
        "rejected": [
            {
                "index": 2,
                "id": "x1",
                "error": "invalid: event: name a product or an event, not both",
            }
        ],
    }
    retry = {**local, "properties": {"n": "2.5"}}  # a string is not the number 2.5
    assert send(api, keys["ingest"], [retry]).json()["rejected"][0]["error"] == "conflict"
    usage = api.get("/v1/customers/cust_1/usage", headers=bearer(keys["finance"])).json()
    [flags] = usage["products"]
    assert (flags["product"], flags["quantity"], flags["events"]) == ("feature_flags", "18", 2)
