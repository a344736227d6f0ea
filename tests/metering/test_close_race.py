"""A batch in flight when its period ends and the period close runs: every event it
acknowledges is on that period's invoice, or refused `period_closed`, never written into an
invoiced period unseen (PostgreSQL, where ingestion and the close run side by side).

The batch is held half-way (another transaction holds one of its event ids, so it waits to
store it) while the close of the period is started.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import select, text

from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.metering import service as metering_service
from billing.metering import store
from billing.pipeline import close_due
from tests.metering.helpers import add_customer, event, update_customers, waiting_backend

PA = "product_analytics"
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # October ends
GRACE = dt.timedelta(hours=1)
OCTOBER = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def _october_quantity(engine) -> D:
    """The product_analytics quantity every standing invoice bills for October."""
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    query = (
        select(lines.c.quantity)
        .join(invoices, lines.c.invoice_id == invoices.c.id)
        .where(invoices.c.customer_id == "cust_1", invoices.c.status != "void")
        .where(lines.c.product == PA, lines.c.kind.in_(["usage", "adjustment"]))
        .where(
            (lines.c.corrects_period == OCTOBER)
            | ((lines.c.corrects_period.is_(None)) & (invoices.c.period_start == OCTOBER))
        )
    )
    with engine.connect() as connection:
        return sum((row.quantity for row in connection.execute(query)), D(0))


def _race(engine, catalog, clock, at: str) -> metering_service.IngestResult:
    """October bills 1,000 events already stored; a batch of 100 more, dated `at` in October,
    reads its customers, then waits to store its event while October is closed."""
    with engine.begin() as connection:
        update_customers(connection, "cust_1", created_at=OCTOBER)
        metering_service.ingest(
            connection=connection,
            catalog=catalog,
            raw_events=[event("a", 1000, at="2026-10-20T10:00:00Z")],
            now=dt.datetime(2026, 10, 21, tzinfo=dt.UTC),
        )
    late = event("b", 100, at=at)
    holder = engine.connect()
    holder.begin()
    stamp = dt.datetime.fromisoformat(at)
    store.insert_events(holder, [("b", "cust_1", PA, D(100), stamp, OCTOBER, None)], END)
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    answers: list = []
    batch = threading.Thread(
        target=lambda: answers.append(
            metering_service.ingest_batch(
                engine=engine, catalog=catalog, raw_events=[late], clock=clock
            )
        )
    )
    close = threading.Thread(
        target=lambda: close_due(engine, catalog, END + GRACE, GRACE, processes=1)
    )
    batch.start()
    try:
        batch_pid = waiting_backend(engine, holder_pid).pid  # read its customer, waits for "b"
        close.start()
        # the close finishes, or waits for the batch
        waiting_backend(engine, batch_pid, 20, unless=close)
        holder.rollback()  # "b" is the batch's to store
    finally:
        holder.close()
        batch.join(30)
        if close.ident is not None:  # started
            close.join(30)
    assert not batch.is_alive()
    assert not close.is_alive()
    return answers[0]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_batch_read_just_before_its_period_ends_is_on_the_invoice(engine, session, catalog):
    add_customer(session)
    # the batch's clock reads 30 seconds before October ends: within the horizon, so the
    # batch holds its customer, and the close waits for it to commit
    answer = _race(engine, catalog, lambda: END - dt.timedelta(seconds=30), "2026-10-31T23:59:00Z")
    assert answer.accepted == 1
    assert _october_quantity(engine) == D(1100)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_batch_outrun_by_its_period_end_runs_again_and_is_refused(engine, session, catalog):
    add_customer(session)
    # the batch starts ten minutes before October ends (its customer is not held) and is
    # still running an hour after, when October has been closed: it runs again, and its late
    # event is refused (late usage policy reject), never stored into the invoiced October
    readings = iter([END - dt.timedelta(minutes=10)])
    answer = _race(engine, catalog, lambda: next(readings, END + GRACE), "2026-10-31T23:49:00Z")
    assert (answer.accepted, [r.error for r in answer.rejected]) == (0, ["period_closed"])
    assert _october_quantity(engine) == D(1000)
    with engine.connect() as connection:
        stored = store.read_stored(connection, ["b"])
    assert stored == {}  # the refused event is not kept
