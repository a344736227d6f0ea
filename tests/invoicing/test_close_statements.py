"""The close's cost is its statements per invoice on PostgreSQL (a round trip each: issue
20). Counted, not timed: closing customers with usage in several products sends at most
SIX kinds of statement per invoice, each once (usage with its late rows in one read,
breakdowns, the invoice number with its document_number row, invoice, lines, the invoice
email). Once per chunk of customers, not per invoice: the customers' locks, which of them
ever had credit (the others' balance is zero without a read), the webhook endpoints, and
the customers' new closed_through (one executemany)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import event as sa_event

from billing.notifications import endpoints
from billing.pipeline import close_due
from tests.metering.helpers import add_customer, ingest

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
CUSTOMERS = 12
SIX = 6


def _closed(engine, session, catalog, *, endpoint: bool) -> Counter[str]:
    """Close October for CUSTOMERS customers; each statement sent, by its first words."""
    for number in range(CUSTOMERS):
        add_customer(session, f"c{number:02}", billing_start=OCT)
    events = [
        {
            "id": f"e{number}{product}",
            "customer": f"c{number:02}",
            "product": product,
            "quantity": 1_000 * (number + 1),
            "timestamp": "2026-10-10T00:00:00Z",
        }
        for number in range(CUSTOMERS)
        for product in ("product_analytics", "session_replay", "surveys")
    ]
    ingest(session, catalog, events, now=dt.datetime(2026, 10, 11, tzinfo=dt.UTC))
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
        sent[" ".join(statement.split()[:3])] += 1

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        report = close_due(
            engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.timedelta(hours=1)
        )
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert report.invoices == CUSTOMERS
    return sent


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_close_sends_at_most_six_statements_per_invoice(engine, session, catalog):
    sent = _closed(engine, session, catalog, endpoint=False)
    per_invoice = {text: n for text, n in sent.items() if n >= CUSTOMERS - 1}
    assert len(per_invoice) <= SIX, sent
    for once in (
        "SELECT customer.id, customer.billing_anchor_day,",
        "SELECT DISTINCT credit_entry.customer_id",
        "UPDATE customer SET",
    ):
        assert sent[once] == 1, sent
    # each at most once per invoice (the number series also starts once per run)
    assert max(per_invoice.values()) <= CUSTOMERS + 1, sent


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_webhook_endpoints_are_read_once_per_chunk_not_per_invoice(engine, session, catalog):
    sent = _closed(engine, session, catalog, endpoint=True)
    assert sum(n for text, n in sent.items() if "webhook_endpoint" in text) == 1, sent
    # every invoice's event still reaches the endpoint
    assert sent["INSERT INTO webhook_delivery"] >= CUSTOMERS, sent
