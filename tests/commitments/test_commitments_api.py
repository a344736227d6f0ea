"""Commitments, credits and discounts over the API: shapes, access, bad input, races."""

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from sqlmodel import Session

from billing.commitments import service as commitments
from billing.errors import Conflict
from tests.api.helpers import ev, send
from tests.conftest import bearer, run_together

BASE = "/v1/customers/cust_1"


def test_options_follow_the_run_rate_or_an_override(mid_month, api, keys, customer_keys):
    own = bearer(customer_keys["cust_1"])
    send(api, keys["ingest"], [ev("a", 3_000_000)])  # $84.30 so far this period
    projected = api.get(f"{BASE}/commitment/options", headers=own).json()
    assert projected["basis"] == "current_period"
    assert D(projected["monthly_usage"]) >= D("84.30")
    assert len(projected["options"]) == 12
    override = api.get(f"{BASE}/commitment/options?usage=2500", headers=own).json()
    assert (override["basis"], override["monthly_usage"]) == ("override", "2500.00")
    best = override["recommended"]
    assert best == {"credit": "30000.00", "years": 3}  # 30 % off three years saves most
    chosen = [o for o in override["options"] if o["recommended"]]
    assert len(chosen) == 1
    assert chosen[0]["saving"] == "9000.00"
    nothing = api.get(f"{BASE}/commitment/options?usage=0", headers=own).json()
    assert nothing["recommended"] is None
    bad = api.get(f"{BASE}/commitment/options?usage=abc", headers=own)
    assert (bad.status_code, bad.json()["field"]) == (422, "usage")


def test_a_customer_starts_a_commitment_and_reads_its_ledger(api, customer_keys):
    own = bearer(customer_keys["cust_1"])
    started = api.post(f"{BASE}/commitment", json={"credit": "30000", "years": 1}, headers=own)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["commitment"]["discount_percent"] == "20"
    [invoice] = body["invoices"]
    assert (invoice["number"], invoice["total"]) == ("INV-000001", "24000.00")
    assert [(e["kind"], e["amount"]) for e in body["ledger"]] == [
        ("grant", "0.00"),
        ("release", "2500.00"),
    ]
    assert body["balance"] == "2500.00"
    credits = api.get(f"{BASE}/credits", headers=own).json()
    assert credits["balance"] == "2500.00"
    assert sum(D(e["amount"]) for e in credits["entries"]) == D("2500.00")
    smaller = api.post(f"{BASE}/commitment", json={"credit": "5000", "years": 1}, headers=own)
    assert smaller.status_code == 409
    assert "until 20" in smaller.json()["message"]
    topped = api.post(f"{BASE}/commitment/topup", json={"credit": "1000"}, headers=own)
    assert topped.status_code == 200, topped.text
    assert topped.json()["invoices"][0]["number"] == "INV-000002"
    assert topped.json()["balance"] == "3500.00"
    listed = api.get(f"{BASE}/commitment", headers=own).json()
    assert [c["status"] for c in listed["commitments"]] == ["active"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"credit": "30000", "years": 4}, 422, "years"),
        ({"credit": 30000.5, "years": 1}, 422, "credit"),
        ({"credit": "30000.001", "years": 1}, 422, "credit"),
        ({"credit": "2000", "years": 1}, 422, "credit"),
        ({"credit": "-5", "years": 1}, 422, "credit"),
        ({"credit": "30000"}, 422, "years"),
        ({"credit": "30000", "years": 1, "bracket": 2}, 422, "bracket"),
    ],
)
def test_bad_commitments_are_refused_naming_the_field(
    api,
    customer_keys,
    body,
    status,
    field,
):
    response = api.post(f"{BASE}/commitment", json=body, headers=bearer(customer_keys["cust_1"]))
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    credits = api.get(f"{BASE}/credits", headers=bearer(customer_keys["cust_1"])).json()
    assert credits["entries"] == []  # nothing half-created


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("cust_2", f"{BASE}/commitment", 403),
        ("finance", f"{BASE}/commitment", 403),
        ("admin", "/v1/customers/nobody/commitment", 404),
    ],
)
def test_only_the_customer_or_an_admin_commits(api, keys, customer_keys, who, path, status):
    key = customer_keys.get(who) or keys[who]
    response = api.post(path, json={"credit": "30000", "years": 1}, headers=bearer(key))
    assert response.status_code == status, response.text


def test_a_discount_is_admin_only_and_moves_cap_limits(api, keys, customer_keys):
    own = bearer(customer_keys["cust_1"])
    api.put(f"{BASE}/spend-caps/session_replay", json={"amount": "200"}, headers=own)
    body = {"percent": "20", "reason": "non-profit", "until": "2099-12-31"}
    assert api.put(f"{BASE}/discount", json=body, headers=own).status_code == 403
    answer = api.put(f"{BASE}/discount", json=body, headers=bearer(keys["admin"]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["percent"] == "20"
    caps = api.get(f"{BASE}/spend-caps", headers=own).json()["spend_caps"]
    replay = next(c for c in caps if c["product"] == "session_replay")
    assert (replay["q_max"], replay["limit_quantity"]) == ("70000", "70000")  # $250 of list
    for bad, field in (
        ({"percent": "150", "reason": "x"}, "percent"),
        ({"percent": "-1", "reason": "x"}, "percent"),
        ({"percent": "15"}, "reason"),
        ({"percent": "15", "reason": "x", "until": "2020-01-01"}, "until"),
    ):
        refused = api.put(f"{BASE}/discount", json=bad, headers=bearer(keys["admin"]))
        assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text


def test_two_concurrent_starts_one_wins(engine, catalog, api, customer_keys):
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt(credit):
        with Session(engine) as session:
            barrier.wait()
            try:
                now = dt.datetime.now(dt.UTC)
                commitments.start(session.connection(), catalog, "cust_1", D(credit), 1, now)
                session.commit()
                results.append("won")
            except Conflict:
                session.rollback()
                results.append("409")

    run_together(attempt, [("30000",), ("40000",)], timeout=60)
    assert sorted(results) == ["409", "won"]
    listed = api.get(f"{BASE}/commitment", headers=bearer(customer_keys["cust_1"])).json()
    assert len(listed["commitments"]) == 1
    assert len([i for i in listed["commitments"] if i["status"] == "active"]) == 1
