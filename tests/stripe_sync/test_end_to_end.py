"""A month end to end, with freezegun walking the clock: three customers (one capped, one
with a commitment, one with a percentage discount), a month of events, the close, Stripe
(invoices sent, then paid), and Stripe's webhook saying paid. Every figure is checked to
the cent."""

import datetime as dt
from decimal import Decimal as D

from freezegun import freeze_time
from sqlalchemy import select

from billing.commitments import service as commitments
from billing.credits import ledger
from billing.invoicing.models import Invoice
from billing.metering import service as metering_service
from billing.pipeline import close_due
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from billing.stripe_sync.webhook import apply_event
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, update_customers


def now():
    return dt.datetime.now(dt.UTC)


def events(customer, product, quantities, day):
    at = dt.datetime(2026, 10, day, 12, tzinfo=dt.UTC).isoformat()
    return [
        {
            "id": f"{customer}-{product}-{day}-{i}",
            "customer": customer,
            "product": product,
            "quantity": q,
            "timestamp": at,
        }
        for i, q in enumerate(quantities)
    ]


class StripeEvent:
    def __init__(self, event_id, kind, invoice_id):
        self.id, self.type = event_id, kind
        self.data = type("Data", (), {"object": type("Obj", (), {"id": invoice_id})()})()


def test_a_month_from_events_to_paid(engine, session, catalog, stripe_api):
    with freeze_time("2026-10-01 00:05:00"):
        for customer in ("capped", "committed", "discounted"):
            add_customer(session, customer)
        update_customers(session.connection(), created_at=now())
        update_customers(
            session.connection(), "discounted", discount_percent=D(15), discount_reason="non-profit"
        )
        set_cap(session.connection(), catalog, "capped", "product_analytics", D(10), now())
        started = commitments.start(session.connection(), catalog, "committed", D(3000), 1, now())
        session.commit()
        assert started.invoices[0].amount_due == D("2700.00")
    for day, batch in (
        (3, events("capped", "product_analytics", [600_000, 599_999], 3)),
        (9, events("capped", "product_analytics", [100, 5], 9)),  # 100 crosses; 5 is over
        (12, events("committed", "session_replay", [12_000, 8_000], 12)),
        (20, events("discounted", "product_analytics", [1_500_000, 500_000], 20)),
    ):
        with freeze_time(f"2026-10-{day:02d} 13:00:00"):
            result = metering_service.ingest(
                connection=session.connection(), catalog=catalog, raw_events=batch, now=now()
            )
            session.commit()
            assert result.rejected == []
            if day == 9:
                assert result.over_limit == ["capped-product_analytics-9-1"]
    session.close()
    with freeze_time("2026-11-01 01:00:00"):
        assert close_due(engine, catalog, now(), dt.timedelta(hours=1)).invoices == 3
        with engine.connect() as connection:
            rows = connection.execute(select(Invoice.__table__).order_by("number")).all()
        figures = {
            r.customer_id if r.kind == "usage" else "commitment": (
                r.number,
                r.subtotal,
                r.discount_total,
                r.credits_applied,
                r.amount_due,
            )
            for r in rows
        }
        assert figures == {
            "commitment": (1, D("2700.00"), D("0"), D("0"), D("2700.00")),
            # 1,000,000 free + 200,000 x $0.00005 (billed 1,200,000 of 1,200,099)
            "capped": (2, D("10.00"), D("0"), D("0"), D("10.00")),
            # 5,000 free + 10,000 x $0.005 + 5,000 x $0.004 = $70.00, all from credit
            "committed": (3, D("70.00"), D("0"), D("70.00"), D("0.00")),
            # 1,000,000 free + 1,000,000 x $0.00005 = $50.00, 15 % off
            "discounted": (4, D("50.00"), D("7.50"), D("0"), D("42.50")),
        }
        with engine.connect() as connection:
            # 250.00 - 70.00 drawn by October, then November's 250.00 released once October closed
            assert ledger.balance(connection, "committed") == D("430.00")
        client = make_client("sk_test_emulator", stripe_api.base)
        report = sync_due(engine, client, now())
        assert report.synced == 3  # the 0.00 invoice stays home
        totals = sorted(i["total"] for i in stripe_api.invoices.values())
        assert totals == [1000, 4250, 270000]
        assert sorted(stripe_api.sent) == sorted(stripe_api.invoices)  # each one sent
        for invoice in stripe_api.invoices.values():  # the customers pay
            paid = client.v1.invoices.pay(invoice["id"], params={"paid_out_of_band": True})
            assert (paid.status, paid.amount_paid) == ("paid", invoice["total"])
        with engine.begin() as connection:
            for index, invoice in enumerate(stripe_api.invoices.values()):
                event = StripeEvent(f"evt_{index}", "invoice.paid", invoice["id"])
                assert apply_event(connection, catalog, event, now()).outcome == "recorded"
        with engine.connect() as connection:
            states = connection.execute(select(InvoiceSync.__table__.c.status)).scalars().all()
        assert sorted(states) == ["paid", "paid", "paid"]
