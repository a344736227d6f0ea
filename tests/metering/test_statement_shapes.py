"""On PostgreSQL the statements ingestion repeats for every batch have one text whatever the
batch's size: a list of customers or values is one array parameter sent as
`IN (SELECT unnest(...))`, never `IN ($1 ... $n)`, so the driver's prepared statement (and
its generic plan) is reused rather than one per batch size (issue 20; docs/benchmarks.md);
that generic plan joins the values by primary key, where one of `id = ANY($1)` compared
every customer row with the whole array (2.4 ms against 0.4 ms for 100 of 1,000
customers)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event as sa_event

from billing.metering import service as metering_service
from tests.metering.helpers import add_customer

NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_batches_of_any_size_send_the_same_statements(engine, session, catalog, database_url):
    for number in range(5):
        add_customer(session, f"c{number}")

    def batch(size: int, tag: str) -> set[str]:
        seen: set[str] = set()

        def record(conn, cursor, statement, parameters, context, executemany):
            seen.add(statement)

        events = [
            {
                "id": f"{tag}{n}",
                "customer": f"c{n % 5}",
                "product": "product_analytics",
                "quantity": 1,
                "timestamp": (NOW - dt.timedelta(seconds=n + 1)).isoformat(),
            }
            for n in range(size)
        ]
        sa_event.listen(engine, "before_cursor_execute", record)
        try:
            with engine.begin() as connection:
                answer = metering_service.ingest(
                    connection=connection, catalog=catalog, raw_events=events, now=NOW
                )
        finally:
            sa_event.remove(engine, "before_cursor_execute", record)
        assert answer.accepted == size
        return seen

    texts = [batch(2, "a"), batch(5, "b")]
    reads = [{s for s in seen if "customer.billing_anchor_day" in s} for seen in texts]
    assert reads[0]
    assert reads[0] == reads[1]
    assert all("IN (SELECT unnest(" in s for s in reads[0])
