"""The period close in several processes (issue 20): the same invoices as a close in one,
each customer closed once, the numbers gapless; a chunk's error is raised, never lost."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text

from billing import pipeline
from billing.parallel import run_chunks
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, ingest

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
CLOSE_AT = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
CUSTOMERS = 60
PER_TRANSACTION = 5  # 12 transactions: over PARALLEL_FROM_CHUNKS


def _customers(session, catalog, prefix: str) -> None:
    """CUSTOMERS customers billed from October, each with its own October usage; every
    third one capped, so some lines are bounded by a cap."""
    for n in range(CUSTOMERS):
        add_customer(session, f"{prefix}{n:02}", billing_start=OCT)
    events = [
        {
            "id": f"{prefix}{n}{product}",
            "customer": f"{prefix}{n:02}",
            "product": product,
            "quantity": 37_000 * (n + 1),
            "timestamp": "2026-10-10T00:00:00Z",
        }
        for n in range(CUSTOMERS)
        for product in ("product_analytics", "session_replay", "surveys")
    ]
    ingest(session, catalog, events, now=dt.datetime(2026, 10, 11, tzinfo=dt.UTC))
    for n in range(0, CUSTOMERS, 3):
        set_cap(
            session.connection(),
            catalog,
            f"{prefix}{n:02}",
            "session_replay",
            Decimal("25"),
            dt.datetime(2026, 10, 12, tzinfo=dt.UTC),
        )
    session.commit()


def _invoices(session, prefix: str) -> dict[str, tuple]:
    """Each customer's invoice: its number and figures, and its lines' figures."""
    rows = session.execute(
        text(
            "SELECT customer_id, id, number, subtotal, total, amount_due FROM invoice "
            "WHERE customer_id LIKE :prefix ORDER BY customer_id"
        ),
        {"prefix": f"{prefix}%"},
    ).all()
    found: dict[str, tuple] = {}
    for customer, invoice_id, number, subtotal, total, due in rows:
        assert customer[len(prefix) :] not in found, f"{customer} invoiced twice"
        lines = session.execute(
            text(
                "SELECT position, product, quantity, amount, detail FROM invoice_line "
                "WHERE customer_id = :customer AND invoice_id = :invoice ORDER BY position"
            ),
            {"customer": customer, "invoice": invoice_id},
        ).all()
        found[customer[len(prefix) :]] = (
            number,
            (Decimal(subtotal), Decimal(total), Decimal(due)),
            [(p, product, Decimal(q), Decimal(a), detail) for p, product, q, a, detail in lines],
        )
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_close_in_two_processes_bills_what_a_close_in_one_does(engine, session, catalog):
    _customers(session, catalog, "one_")
    alone = close_due(
        engine, catalog, CLOSE_AT, GRACE, processes=1, per_transaction=PER_TRANSACTION
    )
    _customers(session, catalog, "two_")
    side_by_side = close_due(
        engine, catalog, CLOSE_AT, GRACE, processes=2, per_transaction=PER_TRANSACTION
    )

    assert alone.invoices == side_by_side.invoices == CUSTOMERS
    assert alone.customers == side_by_side.customers == CUSTOMERS
    assert alone.amount_due == side_by_side.amount_due > 0
    one, two = _invoices(session, "one_"), _invoices(session, "two_")
    assert sorted(one) == sorted(two) == [f"{n:02}" for n in range(CUSTOMERS)]
    for key in one:
        assert one[key][1:] == two[key][1:], key  # the same figures and lines
    assert sum(figures[2] for _, figures, _ in two.values()) == side_by_side.amount_due
    # numbers: gapless across both runs, each used once; within a transaction of the
    # close in two processes, consecutive in customer order
    numbers = sorted(number for found in (one, two) for number, _, _ in found.values())
    assert numbers == list(range(1, 2 * CUSTOMERS + 1))
    for start in range(0, CUSTOMERS, PER_TRANSACTION):
        chunk = [two[f"{n:02}"][0] for n in range(start, start + PER_TRANSACTION)]
        assert chunk == list(range(chunk[0], chunk[0] + PER_TRANSACTION)), chunk
    # closing again, in two processes, bills nothing twice
    again = close_due(
        engine, catalog, CLOSE_AT, GRACE, processes=2, per_transaction=PER_TRANSACTION
    )
    assert again.invoices == 0
    assert _invoices(session, "two_") == two


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_close_with_few_transactions_stays_in_this_process(engine, session, catalog):
    """Below PARALLEL_FROM_CHUNKS transactions no process is started: the test's own
    statement listener sees every transaction's invoices written."""
    _customers(session, catalog, "few_")
    sent: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.replace('"', "").split()[:3]))

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        report = close_due(engine, catalog, CLOSE_AT, GRACE, processes=2, per_transaction=7)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert report.invoices == CUSTOMERS
    transactions = -(-CUSTOMERS // 7)
    assert transactions < pipeline.PARALLEL_FROM_CHUNKS
    assert sent.count("INSERT INTO invoice") == transactions, sent


def _record(engine, context: str, chunk: list[str]) -> list[str]:
    """A chunk's task for run_chunks (module-level: a spawned worker imports it): write the
    chunk's items in a transaction, refusing an item named "bad" after writing the others."""
    with engine.begin() as connection:
        for item in chunk:
            connection.execute(
                text("INSERT INTO parallel_probe (item) VALUES (:item)"), {"item": item}
            )
        if "bad" in chunk:
            raise ValueError(f"{context}: a bad item")
    return [f"{context}:{item}:{os.getpid()}" for item in chunk]


def _probe(engine) -> list[str]:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS parallel_probe (item text)"))
        return sorted(connection.execute(text("SELECT item FROM parallel_probe")).scalars())


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_chunks_run_once_each_and_answer_in_their_order(engine):
    _probe(engine)
    chunks = [[f"i{n:02}a", f"i{n:02}b"] for n in range(8)]
    results = run_chunks(engine, "ctx", chunks, _record, processes=3)
    answered = [[item.rsplit(":", 1)[0] for item in result] for result in results]
    assert answered == [[f"ctx:{a}", f"ctx:{b}"] for a, b in chunks]
    # the first two chunks went to the two workers before this process took the third
    pids = [{int(item.rsplit(":", 1)[1]) for item in result} for result in results]
    assert all(len(pid) == 1 for pid in pids)
    assert os.getpid() not in pids[0] | pids[1]
    assert os.getpid() in set().union(*pids[2:])
    assert _probe(engine) == sorted(item for chunk in chunks for item in chunk)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_failing_chunk_is_raised_and_its_transaction_rolled_back(engine):
    _probe(engine)
    chunks = [[f"i{n:02}"] for n in range(6)] + [["x", "bad"]] + [[f"j{n:02}"] for n in range(6)]
    with pytest.raises(ValueError, match="ctx: a bad item"):
        run_chunks(engine, "ctx", chunks, _record, processes=2)
    stored = _probe(engine)
    assert "x" not in stored  # the failed chunk wrote nothing
    assert "bad" not in stored
    assert len(stored) == len(set(stored))  # no chunk ran twice
    assert {f"i{n:02}" for n in range(6)} <= set(stored)  # chunks dealt before it ran
