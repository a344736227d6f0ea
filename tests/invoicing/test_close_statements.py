"""The close's cost is its statements on PostgreSQL (a round trip each: issue 20). Counted,
not timed: a chunk of customers (up to CUSTOMERS_PER_TRANSACTION) costs the same fixed
statements whether it makes 3 invoices or 12, each statement once: the customers' locks,
which of them ever had credit, their webhook endpoints, their usage, cap history and
breakdowns read ahead, the invoice numbers and their document_number rows, the invoices,
their lines, their emails, and the customers' new closed_through."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import event as sa_event

from billing.notifications import endpoints
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, ingest

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def _closed(engine, session, catalog, customers: range, *, endpoint: bool) -> Counter[str]:
    """Close October for `customers` (numbers); each statement sent, by its first words."""
    for number in customers:
        add_customer(session, f"c{number:02}", billing_start=OCT)
    events = [
        {
            "id": f"e{number}{product}",
            "customer": f"c{number:02}",
            "product": product,
            "quantity": 1_000 * (number + 1),
            "timestamp": "2026-10-10T00:00:00Z",
            "properties": {"project": f"p{number % 2}"},
        }
        for number in customers
        for product in ("product_analytics", "session_replay", "surveys")
    ]
    ingest(session, catalog, events, now=dt.datetime(2026, 10, 11, tzinfo=dt.UTC))
    for number in customers[::2]:  # every other customer capped: a cap bound per line
        set_cap(
            session.connection(),
            catalog,
            f"c{number:02}",
            "session_replay",
            Decimal("1000"),
            dt.datetime(2026, 10, 12, tzinfo=dt.UTC),
        )
    if endpoint:
        endpoints.create(
            session.connection(),
            url="https://example.com/hook",
            events=["*"],
            customer=None,
            description="all events",
            actor="test",
            now=OCT,
        )
    session.commit()
    sent: Counter[str] = Counter()

    def count(conn, cursor, statement, parameters, context, executemany):
        sent[" ".join(statement.replace('"', "").split()[:3])] += 1

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        report = close_due(
            engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.timedelta(hours=1)
        )
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert report.invoices == len(customers)
    return sent


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_chunk_of_the_close_costs_the_same_statements_for_3_invoices_or_12(
    engine, session, catalog
):
    few = _closed(engine, session, catalog, range(3), endpoint=False)
    more = _closed(engine, session, catalog, range(3, 15), endpoint=False)
    # the first close also starts the number series (one insert, one more bump)
    assert few - more == Counter(
        {"INSERT INTO invoice_series": 1, "UPDATE invoice_series SET": 1}
    ), (few, more)
    assert more - few == Counter(), (few, more)
    assert max(more.values()) == 1, more
    for written in (
        "INSERT INTO invoice",
        "INSERT INTO invoice_line",
        "INSERT INTO email_outbox",
        "INSERT INTO document_number",
        "SELECT usage.customer_id, usage.amended,",
        "SELECT usage_breakdown.customer_id, usage_breakdown.product,",
        "SELECT spend_cap.customer_id, spend_cap.product,",
        "SELECT spend_cap_change.customer_id, spend_cap_change.product,",
    ):
        assert more[written] == 1, (written, more)
    # the candidates, then per chunk: 5 reads before any invoice, 4 reads ahead (usage, cap
    # history in two, breakdowns), 2 for the numbers, 3 writes of invoices, lines and
    # emails, and the customers' closed_through
    assert sum(more.values()) == 15, more


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_webhook_endpoints_are_read_once_per_chunk_not_per_invoice(engine, session, catalog):
    sent = _closed(engine, session, catalog, range(12), endpoint=True)
    assert sum(n for text, n in sent.items() if "webhook_endpoint" in text) == 1, sent
    # every invoice's event still reaches the endpoint
    assert sent["INSERT INTO webhook_delivery"] >= 12, sent
