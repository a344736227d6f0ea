"""`store.lock_usage` locks running totals in the caller's order in one statement: all of
them with SELECT ... FOR UPDATE when they all exist, or one upsert of all of them when one
is missing (nothing locked before it). A transaction that needs a row another is creating
or holding waits for it and then sees it as committed; nothing is lost or counted twice."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import text

from billing.caps.quota import QuotaState
from billing.customers.periods import period_for
from billing.metering import service as metering_service
from billing.metering import store
from tests.metering.helpers import add_customer, recent, waiting_backend

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
X = ("c1", "product_analytics", START)
Y = ("c1", "session_replay", START)
Z = ("c2", "product_analytics", START)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_existing_rows_are_locked_by_one_select_and_missing_ones_made_by_one_upsert(
    engine, session, monkeypatch
):
    add_customer(session, "c1")
    add_customer(session, "c2")
    with engine.begin() as connection:
        store.lock_usage(connection, [X], NOW)
    # counted where they reach the driver (store's statements go to psycopg's own cursor)
    driver_sent: list[str] = []
    real = store._pg_binary

    def counted(connection, sql, params):
        driver_sent.append(sql.split()[0])
        return real(connection, sql, params)

    monkeypatch.setattr(store, "_pg_binary", counted)
    with engine.begin() as connection:
        found = store.lock_usage(connection, [X], NOW)
        assert driver_sent == ["WITH"]  # all exist: one locking SELECT
        assert set(found) == {X}
        driver_sent.clear()
        found = store.lock_usage(connection, [X, Y, Z], NOW)
        assert driver_sent == ["WITH", "INSERT"]  # Y and Z missing: the upsert of all
        assert set(found) == {X, Y, Z}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("existing", [True, False], ids=["rows exist", "rows are being made"])
def test_a_second_transaction_waits_for_the_rows_and_sees_them_committed(engine, session, existing):
    add_customer(session, "c1")
    add_customer(session, "c2")
    if existing:
        with engine.begin() as connection:
            store.lock_usage(connection, [X, Y, Z], NOW)
    holder = engine.connect()
    holder.begin()
    held = store.lock_usage(holder, [X, Y], NOW)  # Y made here when it did not exist
    moved = {
        key: store.UsageRow(
            totals=store.UsageTotals(events=row.totals.events + 1),
            quota=QuotaState(accepted=row.quota.accepted + Decimal(5)),
        )
        for key, row in held.items()
    }
    store.write_usage(holder, moved, NOW)
    seen: dict = {}
    started = threading.Event()

    def second() -> None:
        with engine.begin() as connection:
            started.set()
            seen.update(store.lock_usage(connection, [X, Y, Z], NOW))

    thread = threading.Thread(target=second)
    thread.start()
    started.wait(10)
    thread.join(0.5)
    assert thread.is_alive()  # waiting for the rows the holder locked (or is making)
    holder.commit()
    holder.close()
    thread.join(30)
    assert not thread.is_alive()
    assert set(seen) == {X, Y, Z}
    assert seen[X].quota.accepted == seen[Y].quota.accepted == Decimal(5)
    assert seen[X].totals.events == seen[Y].totals.events == 1
    assert seen[Z].quota.accepted == 0


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_batch_stores_its_events_before_it_waits_for_the_running_totals(engine, session, catalog):
    """Ids first, then usage keys: a batch whose running totals another transaction holds
    has its events inserted while it waits (batches sharing totals insert side by side),
    and once the totals are free it counts them exactly once."""
    add_customer(session, "c1")
    at = recent()
    key = ("c1", "product_analytics", period_for(1, at).start)
    with engine.begin() as connection:
        store.lock_usage(connection, [key], NOW)
    holder = engine.connect()
    holder.begin()
    store.lock_usage(holder, [key], NOW)
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    stamp = at.isoformat().replace("+00:00", "Z")
    batch = [
        {
            "id": f"side-{n}",
            "customer": "c1",
            "product": "product_analytics",
            "quantity": 2,
            "timestamp": stamp,
        }
        for n in range(3)
    ]
    answers: list = []
    thread = threading.Thread(
        target=lambda: answers.append(
            metering_service.ingest_batch(engine=engine, catalog=catalog, raw_events=batch)
        )
    )
    thread.start()
    try:
        waiting = waiting_backend(engine, holder_pid)
        with engine.connect() as watcher:
            held = watcher.execute(
                text(
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = :pid AND l.mode = 'RowExclusiveLock'"
                ),
                {"pid": waiting.pid},
            ).scalars()
            assert "event_key" in set(held)  # its events are in, uncommitted
        assert "FOR UPDATE" in waiting.query  # and it waits in the lock of the totals
    finally:
        holder.rollback()
        holder.close()
        thread.join(30)
    assert not thread.is_alive()
    assert (answers[0].accepted, answers[0].duplicates) == (3, 0)
    with engine.connect() as connection:
        row = store.lock_usage(connection, [key], NOW)[key]
    assert (row.quota.accepted, row.totals.events) == (Decimal(6), 3)
