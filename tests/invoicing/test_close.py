"""Closing periods into invoices on SQLite and PostgreSQL: figures to the cent, once only,
immutable, late events refused, concurrent closers making one invoice."""

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from billing.credits import ledger
from billing.customers.models import Customer
from billing.customers.service import lock_customer
from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import run_together
from tests.metering.helpers import add_customer, event, update_customers
from tests.metering.helpers import ingest as ingest_now

GRACE = dt.timedelta(hours=1)
OCT = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)
NOV_1 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def created(session, customer="cust_1", at=dt.datetime(2026, 10, 15, tzinfo=dt.UTC)):
    """A customer created in mid-October, so October is its first period."""
    add_customer(session, customer)
    update_customers(session.connection(), customer, created_at=at)
    session.commit()


def ingest(session, catalog, events, now=OCT):
    """Ingest in October by default (tests.metering.helpers.ingest)."""
    return ingest_now(session, catalog, events, now)


def invoices(session):
    table = table_of(Invoice)
    return list(session.connection().execute(select(table).order_by(table.c.number)))


def lines(session, invoice_id):
    table = table_of(InvoiceLine)
    query = select(table).where(table.c.invoice_id == invoice_id).order_by(table.c.position)
    return [(r.kind, r.product, r.amount) for r in session.connection().execute(query)]


def at_oct(event_id, quantity, product="product_analytics"):
    return event(event_id, quantity, product, at="2026-10-20T10:00:00Z")


def with_october_usage(session, catalog, quantity, customers=("a", "b", "c")):
    """Customers created in October, each with one event of `quantity` analytics events."""
    for customer in customers:
        created(session, customer)
        ingest(
            session,
            catalog,
            [event(f"{customer}1", quantity, customer=customer, at="2026-10-20T10:00:00Z")],
        )


def test_a_period_closes_once_after_the_grace(engine, session, catalog):
    created(session)
    ingest(session, catalog, [at_oct("a", 1_200_000), at_oct("b", 10_000, "session_replay")])
    assert close_due(engine, catalog, NOV_1 + dt.timedelta(minutes=59), GRACE).invoices == 0
    report = close_due(engine, catalog, NOV_1 + GRACE, GRACE)
    assert (report.invoices, report.amount_due) == (1, D("35.00"))
    assert close_due(engine, catalog, NOV_1 + GRACE, GRACE).invoices == 0  # idempotent
    [invoice] = invoices(session)
    assert (invoice.series, invoice.number, invoice.kind, invoice.status) == (
        "INV",
        1,
        "usage",
        "finalized",
    )
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (D("35.00"),) * 3
    # 1,000,000 free + 200,000 x $0.00005; 5,000 free + 5,000 x $0.005
    assert lines(session, invoice.id) == [
        ("usage", "product_analytics", D("10.00")),
        ("usage", "session_replay", D("25.00")),
    ]
    late = ingest(session, catalog, [at_oct("late", 5)], now=NOV_1 + 2 * GRACE)
    assert [r.error for r in late.rejected] == ["period_closed"]
    # Descriptions read the same on both engines (PostgreSQL's NUMERIC keeps trailing zeros).
    table = table_of(InvoiceLine)
    described = session.connection().execute(
        select(table.c.description).where(table.c.invoice_id == invoice.id)
    )
    assert sorted(described.scalars()) == [
        "Product analytics: 1,200,000 events",
        "Session replay: 10,000 recordings",
    ]


def test_cap_discount_and_credits_on_one_invoice(engine, session, catalog):
    created(session)
    update_customers(session.connection(), discount_percent=D(20), discount_reason="non-profit")
    # with 20 % off, $8.00 buys $10.00 of list: 1,200,000 events
    set_cap(session.connection(), catalog, "cust_1", "product_analytics", D("8.00"), OCT)
    ledger.append(session.connection(), "cust_1", "grant", D("5.00"), OCT, note="test credit")
    session.commit()
    answer = ingest(session, catalog, [at_oct("a", 1_199_999), at_oct("b", 100), at_oct("c", 1)])
    assert answer.over_limit == ["c"]
    close_due(engine, catalog, NOV_1 + GRACE, GRACE)
    [invoice] = invoices(session)
    assert lines(session, invoice.id) == [
        ("usage", "product_analytics", D("10.00")),  # billed 1,200,000 of 1,200,099
        ("discount", "product_analytics", D("-2.00")),
        ("capped", "product_analytics", D("0")),  # the other 99: accepted, shown, not billed
        ("credits", None, D("-5.00")),
    ]
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (
        D("10.00"),
        D("2.00"),
        D("8.00"),
    )
    assert (invoice.credits_applied, invoice.amount_due) == (D("5.00"), D("3.00"))
    assert ledger.balance(session.connection(), "cust_1") == 0


def test_every_missed_period_gets_its_own_invoice_and_quiet_ones_a_zero_invoice(
    engine, session, catalog
):
    created(session)
    ingest(session, catalog, [at_oct("a", 1_100_000)])
    with freeze_time("2027-01-02"):  # a close never runs ahead of the real clock
        report = close_due(engine, catalog, dt.datetime(2027, 1, 2, tzinfo=dt.UTC), GRACE)
    assert report.invoices == 3  # October, November, December
    assert [(i.period_start.month, i.amount_due) for i in invoices(session)] == [
        (10, D("5.00")),
        (11, D("0.00")),
        (12, D("0.00")),
    ]


def test_finalized_invoices_cannot_be_edited_or_deleted(engine, session, catalog):
    created(session)
    ingest(session, catalog, [at_oct("a", 1_200_000)])
    close_due(engine, catalog, NOV_1 + GRACE, GRACE)
    [invoice] = invoices(session)
    session.commit()
    for statement in (
        f"UPDATE invoice SET amount_due = '0' WHERE id = '{invoice.id}'",
        f"DELETE FROM invoice_line WHERE invoice_id = '{invoice.id}'",
        f"UPDATE invoice_line SET amount = '0' WHERE invoice_id = '{invoice.id}'",
        f"DELETE FROM invoice WHERE id = '{invoice.id}'",
    ):
        with engine.connect() as connection, pytest.raises(DBAPIError) as refused:
            connection.execute(text(statement))
        assert "immutable" in str(refused.value)
    with engine.begin() as connection:  # finalized -> void is the one change allowed
        void = "UPDATE invoice SET status = 'void', void_reason = 'test' WHERE id = :id"
        connection.execute(text(void), {"id": invoice.id})
    with engine.connect() as connection, pytest.raises(DBAPIError):
        connection.execute(
            text(f"UPDATE invoice SET status = 'finalized' WHERE id = '{invoice.id}'")
        )


def test_two_closers_at_once_make_one_invoice(engine, session, catalog):
    with_october_usage(session, catalog, 1_500_000)
    barrier = threading.Barrier(2)
    made = []

    def closer():
        barrier.wait()
        made.append(close_due(engine, catalog, NOV_1 + GRACE, GRACE).invoices)

    run_together(closer, [(), ()], timeout=60)
    assert sum(made) == 3  # however the two interleaved
    numbers = [i.number for i in invoices(session)]
    assert numbers == [1, 2, 3]  # one invoice per customer, numbers without gaps
    session.close()
    with Session(engine) as fresh:
        customers = fresh.connection().execute(select(table_of(Customer).c.closed_through))
        assert {c.closed_through for c in customers} == {NOV_1}


def test_a_late_event_waits_for_a_close_in_progress_then_is_refused(engine, session, catalog):
    """The close holds the customer's row; a late event waits and then sees the new end."""
    from billing.metering.service import ingest_batch

    created(session)
    ingest(session, catalog, [at_oct("a", 10)])
    session.close()
    closer = engine.connect()
    closing = closer.begin()
    lock_customer(closer, "cust_1")
    update_customers(closer, closed_through=NOV_1)
    answers = []
    late = threading.Thread(
        target=lambda: answers.append(
            ingest_batch(engine=engine, catalog=catalog, raw_events=[at_oct("late", 5)])
        )
    )
    late.start()
    late.join(timeout=1)
    assert late.is_alive()  # waiting for the close, not racing past it
    closing.commit()
    closer.close()
    late.join(timeout=30)
    assert [r.error for r in answers[0].rejected] == ["period_closed"]


@pytest.mark.slow
def test_two_close_processes_at_once_make_one_invoice_per_customer(
    engine, session, catalog, database_url
):
    """Two `billing invoices close` processes on one database (row locks, not luck)."""
    import os
    import subprocess

    from tests.conftest import TIERS
    from tests.servers import BILLING

    customers = [f"c{n:02d}" for n in range(40)]
    for customer in customers:
        created(session, customer)
    batch = [event(f"{c}-1", 1_100_000, customer=c, at="2026-10-20T10:00:00Z") for c in customers]
    ingest(session, catalog, batch)
    session.close()
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    command = [str(BILLING), "invoices", "close", "--as-of", (NOV_1 + GRACE).isoformat()]
    closers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [closer.communicate(timeout=120) for closer in closers]
    assert [closer.returncode for closer in closers] == [0, 0], outputs
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT customer_id, COUNT(*) FROM invoice GROUP BY customer_id")
        ).all()
        numbers = (
            connection.execute(text("SELECT number FROM invoice ORDER BY number")).scalars().all()
        )
    assert dict(rows) == dict.fromkeys(customers, 1)
    assert numbers == list(range(1, len(customers) + 1))  # no gaps, no repeats
