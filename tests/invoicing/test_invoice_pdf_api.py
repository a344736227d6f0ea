"""GET /v1/invoices/{invoice_id}/pdf: the same access as the JSON (own invoices for a customer
key, any for staff; by id or number), a PDF attachment named after the number, with the
figures the JSON answers; and the due date, paid state and re-issue numbers in the JSON."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from pypdf import PdfReader
from sqlmodel import Session

from billing.app import create_app
from billing.invoicing import payments
from billing.invoicing.pdf import money
from billing.pipeline import close_due
from billing.settings import Settings
from tests.api.helpers import ev, send
from tests.conftest import TIERS, bearer
from tests.metering.helpers import update_customers


def text_of(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def closed(mid_month, api, engine, catalog, keys, customer_keys):
    """cust_1's period closed into an invoice (1,200,000 events and 10,000 recordings, 35.00
    due; the customer renamed in Greek); its JSON, read with the finance key."""
    send(api, keys["ingest"], [ev("a", 1_200_000), ev("b", 10_000, "session_replay")])
    with Session(engine) as session:
        connection = session.connection()
        update_customers(connection, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        update_customers(connection, "cust_1", name="Ωmega Α.Ε.", email="ap@omega.test")
        session.commit()
    end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # mid_month's period ends here
    with freeze_time(end + dt.timedelta(hours=2)):  # never ahead of the clock
        close_due(engine, catalog, end + dt.timedelta(hours=2), dt.timedelta(hours=1))
    listed = api.get("/v1/customers/cust_1/invoices", headers=bearer(keys["finance"])).json()
    current = next(i for i in listed["invoices"] if i["period_end"] == end.isoformat())
    found = api.get(f"/v1/invoices/{current['id']}", headers=bearer(keys["finance"]))
    return found.json()


def test_the_customer_downloads_its_invoice_as_a_pdf_by_id_or_number(api, closed, customer_keys):
    own = bearer(customer_keys["cust_1"])
    for reference in (closed["id"], closed["number"]):
        answer = api.get(f"/v1/invoices/{reference}/pdf", headers=own)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/pdf"
        disposition = answer.headers["content-disposition"]
        assert disposition == f'attachment; filename="{closed["number"]}.pdf"'
        assert answer.headers["cache-control"] == "no-store"
        text = text_of(answer.content)
        assert closed["number"] in text
        assert f"Amount due (the sum of the lines) {money(closed['amount_due'], 'USD')}" in text
        assert money(closed["amount_due"], "USD") == "35.00 USD"
        assert f"Due date {closed['due_date']}" in text
        assert "Ωmega Α.Ε." in text
        assert "ap@omega.test" in text
        assert "Billing period 2026-11-01 to 2026-11-30" in text
        for line in closed["lines"]:
            assert line["description"] in text
            assert money(line["amount"], "USD").removesuffix(" USD") in text
        assert sum(D(line["amount"]) for line in closed["lines"]) == D(closed["amount_due"])
        assert closed["id"] not in text
        assert "inv_" not in text


def test_another_customers_invoice_is_refused_as_the_json_is_and_unknown_is_404(
    api, closed, customer_keys, keys
):
    other = bearer(customer_keys["cust_2"])
    for reference in (closed["id"], closed["number"]):
        pdf = api.get(f"/v1/invoices/{reference}/pdf", headers=other)
        json = api.get(f"/v1/invoices/{reference}", headers=other)
        assert (pdf.status_code, json.status_code) == (403, 403)
        assert pdf.json() == json.json()  # the JSON error body, not a PDF
        assert pdf.json()["code"] == "forbidden"
    for path in ("/v1/invoices/INV-999999/pdf", "/v1/invoices/inv_nope/pdf"):
        missing = api.get(path, headers=bearer(keys["finance"]))
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
    assert api.get(f"/v1/invoices/{closed['number']}/pdf").status_code == 401
    ingest = api.get(f"/v1/invoices/{closed['number']}/pdf", headers=bearer(keys["ingest"]))
    assert ingest.status_code == 403  # a role that reads no invoice


def test_staff_keys_download_any_invoice(api, closed, keys):
    for role in ("finance", "admin"):
        answer = api.get(f"/v1/invoices/{closed['number']}/pdf", headers=bearer(keys[role]))
        assert answer.status_code == 200
        assert closed["number"] in text_of(answer.content)


def test_the_due_date_is_the_issue_day_plus_the_terms(api, closed, engine, catalog, keys):
    issued = dt.datetime.fromisoformat(closed["issued_at"]).date()
    assert closed["due_date"] == (issued + dt.timedelta(days=30)).isoformat()
    for changes, days in (
        ({"stripe_days_until_due": 14}, 14),
        ({"stripe_collection_method": "charge_automatically"}, 0),
    ):
        settings = Settings(tiers_dir=TIERS, database_url="sqlite://", scheduler=False, **changes)
        with TestClient(create_app(settings, catalog, engine)) as other:
            read = other.get(f"/v1/invoices/{closed['id']}", headers=bearer(keys["finance"]))
            pdf = other.get(f"/v1/invoices/{closed['id']}/pdf", headers=bearer(keys["finance"]))
        due = (issued + dt.timedelta(days=days)).isoformat()
        assert read.json()["due_date"] == due
        assert f"Due date {due}" in text_of(pdf.content)


def test_a_paid_invoice_says_when(api, closed, engine, keys):
    paid_at = dt.datetime.fromisoformat(closed["issued_at"]) + dt.timedelta(days=3)
    with engine.begin() as connection:
        payments.apply_event(
            connection, invoice_id=closed["id"], event=payments.PaymentEvent.PAID, at=paid_at
        )
    read = api.get(f"/v1/invoices/{closed['id']}", headers=bearer(keys["finance"])).json()
    assert read["status"] == "paid"
    assert read["due_date"] == closed["due_date"]  # the terms it was issued on
    text = text_of(
        api.get(f"/v1/invoices/{closed['id']}/pdf", headers=bearer(keys["finance"])).content
    )
    assert f"Status Paid on {paid_at.date().isoformat()}" in text
    assert "Please pay" not in text


def test_void_and_reissue_name_each_other_by_number(api, closed, keys):
    finance = bearer(keys["finance"])
    body = {"reason": "duplicate usage from a replay", "reissue": True}
    answer = api.post(f"/v1/invoices/{closed['number']}/void", json=body, headers=finance)
    assert answer.status_code == 200, answer.text
    voided, reissued = answer.json()["voided"], answer.json()["reissued"]
    assert (voided["due_date"], voided["replaced_by"]) == (None, reissued["id"])
    assert voided["replaced_by_number"] == reissued["number"]
    assert (reissued["replaces"], reissued["replaces_number"]) == (closed["id"], closed["number"])
    assert reissued["due_date"] is not None
    read = api.get(f"/v1/invoices/{closed['id']}", headers=finance).json()
    assert read["replaced_by_number"] == reissued["number"]

    void_text = text_of(api.get(f"/v1/invoices/{closed['number']}/pdf", headers=finance).content)
    assert "VOID: this invoice is cancelled and nothing is due." in void_text
    assert f"It is replaced by invoice {reissued['number']}." in void_text
    assert "Reason: duplicate usage from a replay" in void_text
    assert "Please pay" not in void_text
    new_text = text_of(api.get(f"/v1/invoices/{reissued['number']}/pdf", headers=finance).content)
    assert f"Replaces {closed['number']} (void)" in new_text
    assert "VOID" not in new_text
    assert "inv_" not in void_text + new_text
