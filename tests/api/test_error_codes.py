"""Each cause of a refusal answers its own code (docs/errors.md), over real HTTP where the API
reaches it, and from the service where only the CLI or the pages do."""

import datetime as dt

import pytest
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from billing.errors import InvalidLinkLifetime, KeyNeedsCustomer, KeyTakesNoCustomer
from billing.web import signin
from tests.conftest import bearer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BASE = "/v1/customers/cust_1"

REFUSALS = [
    ("GET", f"{BASE}/usage?period=2026-13", "admin", None, 422, "invalid_period", "period"),
    ("GET", "/v1/reports/invoices?from=2026-13", "finance", None, 422, "invalid_month", "from"),
    (
        "GET",
        "/v1/reports/invoices?from=2026-10&to=2026-09",
        "finance",
        None,
        422,
        "reversed_range",
        "to",
    ),
    (
        "PUT",
        f"{BASE}/discount",
        "admin",
        {"percent": "15", "reason": "  "},
        422,
        "missing_reason",
        "reason",
    ),
    (
        "PUT",
        f"{BASE}/discount",
        "admin",
        {"percent": "15", "reason": "non-profit", "until": "2020-01-01"},
        422,
        "date_in_past",
        "until",
    ),
    (
        "PUT",
        f"{BASE}/alert-settings",
        "cust_1",
        {"thresholds": None},
        422,
        "null_not_allowed",
        "thresholds",
    ),
    (
        "PUT",
        f"{BASE}/alert-settings",
        "cust_1",
        {"thresholds": [str(n) for n in range(1, 12)]},
        422,
        "too_many_items",
        "thresholds",
    ),
    (
        "PUT",
        f"{BASE}/alert-settings",
        "cust_1",
        {"thresholds": ["0"]},
        422,
        "invalid_threshold",
        "thresholds.0",
    ),
    (
        "PUT",
        f"{BASE}/alert-settings",
        "cust_1",
        {"webhook_url": "ftp://example.com"},
        422,
        "webhook_url_not_allowed",
        "webhook_url",
    ),
    (
        "POST",
        "/v1/customers",
        "admin",
        {"id": "c2", "name": "X", "currency": "EUR"},
        422,
        "currency_mismatch",
        "currency",
    ),
    (
        "POST",
        "/v1/customers",
        "admin",
        {"id": "cust_1", "name": "Again"},
        409,
        "customer_exists",
        "id",
    ),
    (
        "PUT",
        f"{BASE}/spend-caps/product_analytics",
        "cust_1",
        {"amount": "10.005"},
        422,
        "invalid_amount",
        "amount",
    ),
    (
        "POST",
        f"{BASE}/commitment",
        "cust_1",
        {"credit": "0", "years": 1},
        422,
        "invalid_amount",
        "credit",
    ),
]


@pytest.mark.parametrize(("method", "path", "who", "body", "status", "code", "field"), REFUSALS)
def test_each_refusal_answers_its_own_code(
    api,
    keys,
    customer_keys,
    method,
    path,
    who,
    body,
    status,
    code,
    field,
):
    key = customer_keys.get(who) or keys[who]
    response = api.request(method, path, json=body, headers=bearer(key))
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["field"] == field


def test_a_running_commitment_is_a_conflict_with_its_own_code(api, customer_keys):
    own = bearer(customer_keys["cust_1"])
    started = api.post(f"{BASE}/commitment", json={"credit": "30000", "years": 1}, headers=own)
    assert started.status_code == 201, started.text
    smaller = api.post(f"{BASE}/commitment", json={"credit": "5000", "years": 1}, headers=own)
    assert (smaller.status_code, smaller.json()["code"]) == (409, "commitment_below_running")
    larger = api.post(f"{BASE}/commitment", json={"credit": "40000", "years": 1}, headers=own)
    assert (larger.status_code, larger.json()["code"]) == (409, "commitment_running")
    assert "topup" in larger.json()["message"]


def test_voids_refused_say_why_in_their_code(api, keys, customer_keys):
    own = bearer(customer_keys["cust_1"])
    started = api.post(f"{BASE}/commitment", json={"credit": "30000", "years": 1}, headers=own)
    [listed] = api.get(f"{BASE}/invoices", headers=own).json()["invoices"]
    assert listed["number"] == started.json()["invoices"][0]["number"]
    void = f"/v1/invoices/{listed['id']}/void"
    finance = bearer(keys["finance"])

    def refused(body):
        answer = api.post(void, json=body, headers=finance)
        return answer.status_code, answer.json()["code"], answer.json()["field"]

    assert refused({"reason": "   "}) == (422, "missing_reason", "reason")
    assert refused({"reason": "typo", "reissue": True}) == (
        422,
        "invoice_not_reissuable",
        "reissue",
    )
    assert api.post(void, json={"reason": "typo"}, headers=finance).status_code == 200
    assert refused({"reason": "typo"}) == (409, "invoice_not_finalized", "invoice")


@pytest.mark.parametrize(
    ("role", "customer", "error"),
    [(Role.CUSTOMER, None, KeyNeedsCustomer), (Role.INGEST, "cust_1", KeyTakesNoCustomer)],
)
def test_a_key_is_bound_to_a_customer_exactly_when_its_role_is_customer(
    engine, role, customer, error
):
    with Session(engine) as session, pytest.raises(error) as refused:
        create_key(connection=session.connection(), role=role, customer_id=customer)
    assert refused.value.field == "customer"


@pytest.mark.parametrize("ttl", [dt.timedelta(0), dt.timedelta(days=7, seconds=1)])
def test_a_sign_in_link_lives_between_a_second_and_seven_days(engine, ttl):
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        secret = signin.load_secret(connection, None, now)
        with pytest.raises(InvalidLinkLifetime) as refused:
            signin.create_link(
                connection, secret, kind=signin.FINANCE, customer_id=None, ttl=ttl, now=now
            )
    assert (refused.value.code, refused.value.field) == ("invalid_link_ttl", "ttl")
