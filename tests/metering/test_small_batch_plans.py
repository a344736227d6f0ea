"""On PostgreSQL, a batch of one event finds its running totals through their key's index,
never by reading the whole table, also under the generic plans psycopg settles on after
five runs of a statement. The statements take whole columns as JSON (db.json_rows), and a
set-returning function over JSON is planned as 100 rows: joined to 3,000 running totals,
that plan read the whole table for each single event (locked, then written: three times).
(Breakdown parts, 1,000 rows here, are read whole before and after: at that size the
planner rightly finds it cheaper.)"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, text

from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.customers.periods import period_for
from billing.db import make_engine
from billing.metering.service import ingest_batch

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
CUSTOMERS = 1_000  # 3,000 running totals: big enough that reading them whole costs more
PRODUCTS = ("product_analytics", "session_replay", "feature_flags")


def _event(number: int, customer: int, product: str) -> dict[str, object]:
    return {
        "id": f"e{number}",
        "customer": f"c{customer:04d}",
        "product": product,
        "quantity": 1,
        "timestamp": (NOW - dt.timedelta(seconds=number)).isoformat(),
        "properties": {"project": f"p{customer % 3}"},
    }


def _scans(connection) -> tuple[int, int]:
    """(sequential scans, index scans) of the running totals, this backend's counts flushed
    first."""
    connection.execute(text("SELECT pg_stat_force_next_flush()"))
    connection.commit()
    connection.execute(text("SELECT pg_stat_clear_snapshot()"))
    rows = connection.execute(
        text(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = 'usage'"
        )
    ).one()
    connection.commit()
    return rows[0], rows[1]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_one_event_reads_its_rows_by_key(database_url, engine, catalog):
    start = period_for(1, NOW).start
    with engine.begin() as connection:
        for number in range(CUSTOMERS):
            customers_service.create_customer(
                connection=connection,
                data=CustomerCreate(
                    id=f"c{number:04d}", name=f"Customer {number}", billing_start=start
                ),
                currency="USD",
            )
    everyone = [
        _event(number, number % CUSTOMERS, PRODUCTS[number // CUSTOMERS])
        for number in range(CUSTOMERS * len(PRODUCTS))
    ]
    result = ingest_batch(engine=engine, catalog=catalog, raw_events=everyone, clock=lambda: NOW)
    assert result.accepted == len(everyone)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE usage, usage_breakdown"))

    generic = make_engine(database_url)  # one connection: calls run one after another
    event.listen(
        generic,
        "connect",
        lambda dbapi, _: dbapi.execute("SET plan_cache_mode = force_generic_plan"),
    )
    try:
        sent = len(everyone)

        def one_event() -> None:
            nonlocal sent
            single = _event(sent, sent % CUSTOMERS, PRODUCTS[sent % len(PRODUCTS)])
            sent += 1
            found = ingest_batch(
                engine=generic, catalog=catalog, raw_events=[single], clock=lambda: NOW
            )
            assert found.accepted == 1

        for _ in range(6):  # psycopg prepares a statement on its fifth run
            one_event()
        with generic.connect() as connection:
            before = _scans(connection)
        for _ in range(4):
            one_event()
        with generic.connect() as connection:
            after = _scans(connection)
    finally:
        generic.dispose()
    assert after[0] == before[0], f"read whole: (sequential, index) {before} -> {after}"
    assert after[1] >= before[1] + 4, f"not read by key: {before} -> {after}"
