"""Revenue counts what happened after the invoice, on SQLite and PostgreSQL: paid invoices
stay in revenue, late usage shows as adjustments, credit notes as credited, and every
group's figures are sums of their parts to the cent."""

import dataclasses
import datetime as dt
from decimal import Decimal as D

from freezegun import freeze_time
from sqlalchemy import select

from billing.catalog.models import LatePolicy
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.db import table_of
from billing.invoicing import payments
from billing.invoicing.models import CreditNoteOutcome, Invoice
from billing.metering import service as metering_service
from billing.pipeline import close_due
from billing.reports import service as reports
from tests.metering.helpers import add_customer, event, update_customers

GRACE = dt.timedelta(hours=1)


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def send(engine, catalog, events, now):
    with engine.begin() as connection:
        return metering_service.ingest(
            connection=connection, catalog=catalog, raw_events=events, now=now
        )


def test_paid_adjusted_and_credited_invoices_add_up(engine, session, catalog):
    amend = dataclasses.replace(catalog, late_usage=LatePolicy(True, dt.timedelta(days=10)))
    add_customer(session)
    update_customers(session.connection(), created_at=at("2026-10-01 00:00"))
    session.commit()
    send(engine, amend, [event("a", 1_100_000, at="2026-10-20T10:00:00Z")], at("2026-10-21"))
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, amend, at("2026-11-01 01:00"), GRACE)
    # October's 5.00 is paid; 100,000 late events re-price October (+5.00 on November's)
    invoices = table_of(Invoice)
    with engine.begin() as connection:
        october = connection.execute(select(invoices.c.id)).scalar_one()
        payments.apply_event(
            connection, invoice_id=october, event=payments.PaymentEvent.PAID, at=at("2026-11-02")
        )
    send(engine, amend, [event("b", 100_000, at="2026-10-30T10:00:00Z")], at("2026-11-02"))
    send(
        engine,
        amend,
        [event("c", 20_000, "session_replay", at="2026-11-15T10:00:00Z")],
        at("2026-11-16"),
    )
    with freeze_time("2026-12-01 01:00"):
        close_due(engine, amend, at("2026-12-01 01:00"), GRACE)
    with engine.begin() as connection:
        november = connection.execute(
            select(invoices.c.id).where(invoices.c.id != october)
        ).scalar_one()
        # 20,000 recordings: 5,000 free, 10,000 x 0.005 + 5,000 x 0.004 = 70.00; credit 10.00
        create_credit_note(
            connection,
            amend,
            november,
            reason="replays of a test project",
            lines=[LineRequest(line=1, amount=D("10.00"))],
            outcome=CreditNoteOutcome.REDUCE_DUE,
            actor="finance",
            now=at("2026-12-02"),
        )
    with engine.connect() as connection:
        groups, total = reports.revenue(connection, "product", None, None)
        by_month, month_total = reports.revenue(connection, "month", None, None)
    assert (total.list_amount, total.adjustments, total.amount_due) == (
        D("75.00"),
        D("5.00"),
        D("80.00"),
    )
    assert (total.credited, total.net, len(total.invoices)) == (D("10.00"), D("70.00"), 2)
    replay = groups["session_replay"]
    assert (replay.amount_due, replay.credited, replay.net) == (D("70.00"), D("10.00"), D("60.00"))
    assert groups["product_analytics"].adjustments == D("5.00")
    # the adjustment bills October's usage on November's invoice: months are invoice periods
    assert (by_month["2026-10"].amount_due, by_month["2026-11"].amount_due) == (
        D("5.00"),
        D("75.00"),
    )
    for group in [*groups.values(), *by_month.values(), total, month_total]:
        parts = (
            group.list_amount
            - group.discounts
            + group.adjustments
            + group.commitments
            - group.credits_applied
        )
        assert parts == group.amount_due
        assert group.net == group.amount_due - group.credited
    # The listing (JSON and CSV) shows each invoice's credited total, summed exactly
    with engine.begin() as connection:
        for amount in ("0.10", "0.20"):
            create_credit_note(
                connection,
                amend,
                november,
                reason="rounding test",
                lines=[LineRequest(line=1, amount=D(amount))],
                outcome=CreditNoteOutcome.REDUCE_DUE,
                actor="finance",
                now=at("2026-12-03"),
            )
    rows = {row.id: row for row in reports.stream_invoices(engine, reports.InvoiceFilter())}
    assert (rows[november].credited, rows[october].credited) == ("10.30", "0.00")
    assert rows[october].paid_at.startswith("2026-11-02")
    assert rows[november].paid_at == ""
