"""The webhook-endpoint API: who may make, see and change which endpoint; what is refused
and why; the secret shown once; deliveries with the detail for admins and a reason for
customers."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from tests.api.helpers import make_customer
from tests.conftest import bearer

URL = "https://hooks.example.com/billing"


def customer_key(engine, customer):
    with Session(engine) as session:
        key, _ = create_key(
            connection=session.connection(), role=Role.CUSTOMER, customer_id=customer, name="t"
        )
        session.commit()
    return bearer(key)


def test_admins_and_customers_manage_the_endpoints_they_own(api, engine, keys):
    admin = bearer(keys["admin"])
    for customer in ("acme", "globex"):
        make_customer(api, keys, customer)
    acme, globex = customer_key(engine, "acme"), customer_key(engine, "globex")

    made = api.post(
        "/v1/webhook-endpoints", json={"url": URL, "events": ["invoice.paid"]}, headers=acme
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["customer"] == "acme"  # a customer key makes its own
    assert endpoint["secret"].startswith("whsec_")
    shown = api.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=acme).json()
    assert shown["secret"] is None  # shown once
    everyone = api.post(
        "/v1/webhook-endpoints", json={"url": URL, "events": ["*"]}, headers=admin
    ).json()
    assert everyone["customer"] is None  # an admin endpoint: every customer's events

    assert [
        e["id"] for e in api.get("/v1/webhook-endpoints", headers=acme).json()["endpoints"]
    ] == [endpoint["id"]]
    assert api.get("/v1/webhook-endpoints", headers=globex).json()["endpoints"] == []
    assert len(api.get("/v1/webhook-endpoints", headers=admin).json()["endpoints"]) == 2
    for method, path in (
        ("get", ""),
        ("post", "/disable"),
        ("post", "/test"),
        ("get", "/deliveries"),
        ("delete", ""),
    ):
        refused = api.request(
            method, f"/v1/webhook-endpoints/{endpoint['id']}{path}", headers=globex
        )
        assert refused.status_code == 403, (method, path)
    assert api.get(f"/v1/webhook-endpoints/{everyone['id']}", headers=acme).status_code == 403
    foreign = api.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": ["*"], "customer": "globex"},
        headers=acme,
    )
    assert foreign.status_code == 403
    assert api.get("/v1/webhook-endpoints/we_nope", headers=admin).status_code == 404

    rotated = api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={}, headers=acme
    ).json()
    assert rotated["secret"] not in (None, endpoint["secret"])
    assert rotated["previous_secret_expires_at"] is not None
    disabled = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/disable", headers=acme).json()
    assert disabled["status"] == "disabled"
    enabled = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/enable", headers=acme).json()
    assert enabled["status"] == "enabled"
    test = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=acme)
    assert (test.status_code, test.json()["type"], test.json()["status"]) == (
        202,
        "ping",
        "pending",
    )
    deliveries = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=acme)
    assert [d["type"] for d in deliveries.json()["deliveries"]] == ["ping"]
    gone = api.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=acme)
    assert (gone.status_code, gone.json()) == (200, {"id": endpoint["id"], "deleted": True})
    assert api.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=admin).status_code == 404


def test_bad_endpoints_are_refused_with_the_field_named(api, engine, keys):
    admin = bearer(keys["admin"])
    make_customer(api, keys, "acme")
    for body, status, field in (
        ({"url": URL, "events": ["invoice.payd"]}, 422, "events.0"),
        ({"url": URL, "events": []}, 422, "events"),
        ({"url": "http://127.0.0.1/hook", "events": ["*"]}, 422, "webhook_url"),
        ({"url": "http://169.254.169.254/latest", "events": ["*"]}, 422, "webhook_url"),
        ({"url": "ftp://example.com", "events": ["*"]}, 422, "webhook_url"),
        ({"url": URL, "events": ["*"], "customer": "nobody"}, 404, "customer"),
        ({"url": URL, "events": ["*"], "colour": "red"}, 422, "colour"),
    ):
        answer = api.post("/v1/webhook-endpoints", json=body, headers=admin)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["field"] == field, (body, answer.json())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM webhook_endpoint")).scalar() == 0
    ingest = bearer(keys["ingest"])
    assert api.get("/v1/webhook-endpoints", headers=ingest).status_code == 403
    assert api.get("/v1/webhook-endpoints").status_code == 401
