"""Finance reports reconcile with the invoices to the cent, as JSON and as streamed CSV."""

import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
from freezegun import freeze_time
from sqlalchemy import text
from sqlmodel import Session

from billing.commitments import service as commitments
from billing.corrections.void import void
from billing.metering import service as metering_service
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import bearer
from tests.metering.helpers import add_customer, event, update_customers

OCT = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)


@pytest.fixture
def invoiced(engine, catalog):
    """Four customers over October and November; one invoice voided."""
    with Session(engine) as session:
        for customer in ("a", "b", "c", "d"):
            add_customer(session, customer)
        update_customers(session.connection(), created_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
        update_customers(session.connection(), "b", discount_percent=D(15), discount_reason="x")
        commitments.start(session.connection(), catalog, "c", D(3000), 1, OCT)
        set_cap(session.connection(), catalog, "d", "product_analytics", D(1), OCT)
        for month, day in ((10, 20), (11, 10)):
            at = dt.datetime(2026, month, day, 12, tzinfo=dt.UTC)
            batch = [
                event(f"{c}-{p}-{month}", q * month, p, customer=c, at=at.isoformat())
                for c, p, q in (
                    ("a", "product_analytics", 200_000),
                    ("a", "session_replay", 1_500),
                    ("b", "product_analytics", 150_000),
                    ("c", "session_replay", 2_000),
                    ("d", "product_analytics", 150_000),
                )
            ]
            metering_service.ingest(
                connection=session.connection(), catalog=catalog, raw_events=batch, now=at
            )
        session.commit()
    with freeze_time("2026-12-01 02:00"):  # a close never runs ahead of the real clock
        close_due(
            engine, catalog, dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC), dt.timedelta(hours=1)
        )
    with engine.begin() as connection:
        first_a = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'a' ORDER BY number LIMIT 1")
        ).scalar_one()
        void(connection, catalog, first_a, reason="test", actor="test", now=OCT, reissue=True)
    with engine.connect() as connection:
        return {
            r.id: (r.status, D(r.amount_due), r.customer_id)
            for r in connection.execute(
                text("SELECT id, status, amount_due, customer_id FROM invoice")
            )
        }


def test_invoice_listing_as_json_and_csv(api, keys, invoiced):
    staff = bearer(keys["finance"])
    listed = api.get("/v1/reports/invoices", headers=staff).json()["invoices"]
    assert {row["id"] for row in listed} == set(invoiced)
    numbers = [int(row["number"].split("-")[1]) for row in listed]
    assert numbers == list(range(1, len(invoiced) + 1))
    response = api.get("/v1/reports/invoices?format=csv", headers=staff)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows == listed
    total = sum(D(r["amount_due"]) for r in rows if r["status"] == "finalized")
    assert total == sum(amount for status, amount, _ in invoiced.values() if status == "finalized")
    voided = api.get("/v1/reports/invoices?status=void", headers=staff).json()["invoices"]
    assert [row["customer"] for row in voided] == ["a"]
    november = api.get("/v1/reports/invoices?from=2026-11&to=2026-11&customer=b", headers=staff)
    assert [row["period_start"] for row in november.json()["invoices"]] == ["2026-11-01"]


@pytest.mark.parametrize("group_by", ["product", "customer", "month"])
def test_revenue_reconciles_to_the_invoices(api, keys, invoiced, group_by):
    report = api.get(
        f"/v1/reports/revenue?group_by={group_by}", headers=bearer(keys["finance"])
    ).json()
    finalized = sum(amount for status, amount, _ in invoiced.values() if status == "finalized")
    total = report["total"]
    assert D(total["amount_due"]) == finalized
    for name in ("list", "discounts", "commitments", "credits_applied", "amount_due"):
        assert sum(D(g[name]) for g in report["groups"]) == D(total[name]), name
    assert D(total["list"]) - D(total["discounts"]) + D(total["commitments"]) - D(
        total["credits_applied"]
    ) == D(total["amount_due"])
    if group_by == "customer":
        by_customer = {g["key"]: D(g["amount_due"]) for g in report["groups"]}
        for customer in by_customer:
            assert by_customer[customer] == sum(
                amount
                for status, amount, who in invoiced.values()
                if status == "finalized" and who == customer
            )


def test_reports_are_for_finance_and_admin_only(api, keys, invoiced):
    assert api.get("/v1/reports/revenue", headers=bearer(keys["ingest"])).status_code == 403
    assert api.get("/v1/reports/invoices", headers=bearer(keys["admin"])).status_code == 200
    bad = api.get("/v1/reports/invoices?from=2026-13", headers=bearer(keys["finance"]))
    assert (bad.status_code, bad.json()["field"]) == (422, "from")
    assert api.get("/v1/reports/caps", headers=bearer(keys["ingest"])).status_code == 403
    assert api.get("/v1/reports/caps", headers=bearer(keys["finance"])).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "0000-01"}, "from"), ({"to": "2026-00"}, "to"), ({"from": "26-01"}, "query.from")],
)
def test_months_out_of_range_are_refused_not_500(api, keys, params, field):
    """Found by the fuzzer: year 0 reached datetime() and answered 500."""
    answer = api.get("/v1/reports/revenue", params=params, headers=bearer(keys["finance"]))
    assert answer.status_code == 422
    assert answer.json()["field"] == field


def test_the_last_month_there_is_has_no_month_after_it(api, keys):
    answer = api.get(
        "/v1/reports/revenue", params={"to": "9999-12"}, headers=bearer(keys["finance"])
    )
    assert answer.status_code == 200


def test_the_caps_report_lists_each_pair_limited_in_its_current_period(api, keys):
    """Seeded through the API with the clock frozen: who is limited now, by which cap, with
    the figures; a pair under its cap and a pair limited in a closed-off month are absent."""
    admin = bearer(keys["admin"])

    def put_cap(customer, product, amount):
        url = f"/v1/customers/{customer}/spend-caps/{product}"
        answer = api.put(url, json={"amount": amount}, headers=admin)
        assert answer.status_code == 200, answer.text

    def send(customer, product, quantities, at):
        events = [
            event(f"{customer}-{product}-{at[:10]}-{i}", q, product, customer=customer, at=at)
            for i, q in enumerate(quantities)
        ]
        answer = api.post("/v1/events", json={"events": events}, headers=admin)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with freeze_time("2026-10-05 09:00:00"):
        for customer in ("acme", "globex", "initech", "umbrella"):
            made = api.post("/v1/customers", json={"id": customer, "name": customer}, headers=admin)
            assert made.status_code == 201, made.text
        put_cap("umbrella", "product_analytics", "1.00")  # limited in October only
        send("umbrella", "product_analytics", [1_100_000], "2026-10-05T08:00:00Z")
    with freeze_time("2026-11-24 12:00:00"):
        at = "2026-11-24T11:00:00Z"
        put_cap("acme", "product_analytics", "1.00")  # $1 buys 1,020,000 events
        crossing = send("acme", "product_analytics", [1_000_000, 30_000, 5, 7], at)
        assert (crossing["accepted"], crossing["over_limit"]) == (
            2,
            ["acme-product_analytics-2026-11-24-2", "acme-product_analytics-2026-11-24-3"],
        )
        put_cap("acme", "session_replay", "10.00")  # not reached: absent
        send("acme", "session_replay", [4_000], at)
        put_cap("globex", "session_replay", "0")  # only the 5,000 free recordings
        send("globex", "session_replay", [4_000, 2_000, 1], at)
        put_cap("initech", "product_analytics", "50.00")  # not reached: absent
        send("initech", "product_analytics", [1_500_000], at)
        report = api.get("/v1/reports/caps", headers=bearer(keys["finance"]))
    assert report.status_code == 200, report.text
    assert report.json()["caps_hit"] == [
        {
            "customer": "acme",
            "product": "product_analytics",
            "period_start": "2026-11-01",
            "cap": "1",
            "limit_quantity": "1020000",
            "accepted_quantity": "1030000",
            "over_limit_events": "2",
        },
        {
            "customer": "globex",
            "product": "session_replay",
            "period_start": "2026-11-01",
            "cap": "0",
            "limit_quantity": "5000",
            "accepted_quantity": "6000",
            "over_limit_events": "1",
        },
    ]
