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

from billing.metering import service as metering_service
from tests.metering.helpers import add_customer

NOW = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_batches_of_any_size_send_the_same_statements(engine, session, catalog, database_url):
    """Batches of seven sizes on one connection: psycopg prepares a statement it has run
    five times, so the customers' read, sent by the driver itself, is prepared once, with
    one text (PostgreSQL's own list of the session's prepared statements shows it)."""
    for number in range(10):
        add_customer(session, f"c{number}")
    sizes = (2, 5, 7, 3, 9, 4, 6)
    with engine.connect() as connection:
        for tag, size in enumerate(sizes):
            events = [
                {
                    "id": f"{tag}-{n}",
                    "customer": f"c{n % 10}",
                    "product": "product_analytics",
                    "quantity": 1,
                    "timestamp": (NOW - dt.timedelta(seconds=n + 1)).isoformat(),
                }
                for n in range(size)
            ]
            with connection.begin():
                answer = metering_service.ingest(
                    connection=connection, catalog=catalog, raw_events=events, now=NOW
                )
            assert answer.accepted == size
        prepared = (
            connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
            .scalars()
            .all()
        )
    reads = [text for text in prepared if "JOIN spend_cap" in text]
    assert len(reads) == 1, prepared
    assert "IN (SELECT unnest($1" in reads[0], reads[0]
    # no statement a batch repeats lists its values one placeholder each
    assert not any("IN ($" in text for text in prepared), prepared
