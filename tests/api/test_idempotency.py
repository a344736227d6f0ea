"""Idempotency-Key on money-creating requests, with Stripe's semantics, on SQLite and
PostgreSQL: a retry answers the first answer and creates nothing; the same key with another
body is idempotency_error; a failed request stores nothing; keys belong to one API key;
concurrent identical requests over real HTTP create one thing."""

import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select

from billing.db import table_of
from billing.errors import IdempotencyError
from billing.idempotency import service as idempotency
from billing.invoicing.models import Invoice
from tests.conftest import TIERS, bearer, run_together
from tests.servers import Server, billing_ok, cli_database

BASE = "/v1/customers/cust_1"
START = {"credit": "30000", "years": 1}


def invoices_of(engine, customer="cust_1"):
    with engine.connect() as connection:
        table = table_of(Invoice)
        return connection.execute(
            select(func.count()).select_from(table).where(table.c.customer_id == customer)
        ).scalar_one()


def test_a_retry_answers_the_first_answer_and_creates_nothing(engine, api, customer_keys):
    own = {**bearer(customer_keys["cust_1"]), "Idempotency-Key": "start-2026-11"}
    body = {"credit": "30000", "years": 1}
    first = api.post(f"{BASE}/commitment", json=body, headers=own)
    again = api.post(f"{BASE}/commitment", json={"years": 1, "credit": "30000"}, headers=own)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert invoices_of(engine) == 1
    topup = {**own, "Idempotency-Key": "topup-1"}
    topped = [api.post(f"{BASE}/commitment/topup", json={"credit": "1000"}, headers=topup)]
    topped.append(api.post(f"{BASE}/commitment/topup", json={"credit": "1000"}, headers=topup))
    assert [t.status_code for t in topped] == [200, 200]
    assert topped[0].json() == topped[1].json()
    assert invoices_of(engine) == 2  # the commitment's and one top-up


def test_the_same_key_with_another_request_is_refused(engine, api, customer_keys):
    own = {**bearer(customer_keys["cust_1"]), "Idempotency-Key": "k1"}
    assert api.post(f"{BASE}/commitment", json=START, headers=own).status_code == 201
    other = api.post(f"{BASE}/commitment", json={"credit": "40000", "years": 1}, headers=own)
    assert other.status_code == 422
    assert (other.json()["code"], other.json()["field"]) == ("idempotency_error", "Idempotency-Key")
    elsewhere = api.post(f"{BASE}/commitment/topup", json={"credit": "30000"}, headers=own)
    assert elsewhere.json()["code"] == "idempotency_error"  # another path, the same key
    assert invoices_of(engine) == 1


def test_a_failed_request_stores_nothing_and_keys_belong_to_one_api_key(
    engine, api, customer_keys, keys
):
    own = {**bearer(customer_keys["cust_1"]), "Idempotency-Key": "k2"}
    too_small = api.post(f"{BASE}/commitment", json={"credit": "100", "years": 1}, headers=own)
    assert too_small.status_code == 422
    started = api.post(f"{BASE}/commitment", json=START, headers=own)
    assert started.status_code == 201  # the failed request did not keep the key
    other_key = {**bearer(customer_keys["cust_2"]), "Idempotency-Key": "k2"}
    theirs = api.post("/v1/customers/cust_2/commitment", json=START, headers=other_key)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["invoices"][0]["number"] == "INV-000002"  # a second commitment
    assert (invoices_of(engine, "cust_1"), invoices_of(engine, "cust_2")) == (1, 1)
    for bad in ("", "x" * 256):
        refused = api.post(
            f"{BASE}/commitment/topup",
            json={"credit": "1000"},
            headers={**bearer(customer_keys["cust_1"]), "Idempotency-Key": bad},
        )
        assert (refused.status_code, refused.json()["field"]) == (422, "Idempotency-Key")


def test_voids_and_credit_notes_take_a_key(engine, api, customer_keys, keys):
    own = bearer(customer_keys["cust_1"])
    [invoice] = api.post(f"{BASE}/commitment", json=START, headers=own).json()["invoices"]
    finance = {**bearer(keys["finance"]), "Idempotency-Key": "note-1"}
    note = {"reason": "goodwill", "outcome": "reduce_due", "lines": [{"line": 1, "amount": "10"}]}
    notes = [
        api.post(f"/v1/invoices/{invoice['id']}/credit-notes", json=note, headers=finance)
        for _ in range(2)
    ]
    assert [n.status_code for n in notes] == [201, 201], notes[0].text
    assert notes[0].json() == notes[1].json()
    listed = api.get(f"/v1/invoices/{invoice['id']}/credit-notes", headers=bearer(keys["finance"]))
    assert len(listed.json()["credit_notes"]) == 1
    theirs = bearer(customer_keys["cust_2"])
    started = api.post("/v1/customers/cust_2/commitment", json=START, headers=theirs).json()
    [other] = started["invoices"]
    void = {**bearer(keys["finance"]), "Idempotency-Key": "void-1"}
    voids = [
        api.post(f"/v1/invoices/{other['id']}/void", json={"reason": "typo"}, headers=void)
        for _ in range(2)
    ]
    assert [v.status_code for v in voids] == [200, 200], voids[0].text
    assert voids[0].json() == voids[1].json()
    assert voids[1].headers["Idempotent-Replayed"] == "true"
    # without the key, a second void is refused: the replay above did not void twice
    again = api.post(
        f"/v1/invoices/{other['id']}/void", json={"reason": "typo"}, headers=bearer(keys["finance"])
    )
    assert (again.status_code, again.json()["code"]) == (409, "invoice_not_finalized")


def test_keys_expire_after_a_day(engine):
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    with engine.begin() as connection:
        assert idempotency.claim(connection, "key:1", "k", "print-a", now) is None
        idempotency.complete(connection, "key:1", "k", 201, {"id": "x"}, now)
    with engine.begin() as connection:
        stored = idempotency.claim(connection, "key:1", "k", "print-a", now)
        assert stored == idempotency.Stored(201, {"id": "x"})
        with pytest.raises(IdempotencyError):
            idempotency.claim(connection, "key:1", "k", "print-b", now)
    # after 24 hours the key is new again (another request may use it)
    day = now + idempotency.RETENTION
    with engine.begin() as connection:
        assert idempotency.claim(connection, "key:1", "k", "print-b", day) is None
    assert idempotency.purge(engine, day + idempotency.RETENTION) == 1


def test_a_request_that_fails_leaves_its_key_unclaimed(engine):
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)

    def failing_request():
        with engine.begin() as connection:
            assert idempotency.claim(connection, "key:1", "k", "print-a", now) is None
            raise RuntimeError("the request failed after claiming")

    with pytest.raises(RuntimeError):
        failing_request()
    with engine.begin() as connection:
        assert idempotency.claim(connection, "key:1", "k", "print-b", now) is None


@pytest.fixture
def served(database_url):
    env = cli_database(database_url)
    billing_ok("customers", "create", "cust_1", "--name", "One", env=env)
    key = billing_ok("keys", "create", "--role", "customer", "--customer", "cust_1", env=env)
    server = Server(TIERS, database_url)
    server.env.update({"BILLING_SCHEDULER": "0"})
    server.start()
    yield server.base, key
    server.stop()


def post(base, key, path, body, idempotency_key):
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_eight_concurrent_identical_top_ups_make_one_invoice(served, engine):
    base, key = served
    status, _ = post(base, key, f"{BASE}/commitment", START, "start")
    assert status == 201
    answers = []
    lock = threading.Lock()

    def top_up():
        found = post(base, key, f"{BASE}/commitment/topup", {"credit": "1000"}, "topup-once")
        with lock:
            answers.append(found)

    run_together(top_up, [()] * 8, timeout=120)
    assert [status for status, _ in answers] == [200] * 8, answers
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert invoices_of(engine) == 2  # the commitment's invoice and one top-up
