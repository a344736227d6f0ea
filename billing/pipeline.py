"""The period pipeline: one order for each customer and period, whatever job runs first.

    close the period's usage -> draw credit -> release the next period's credit
                             -> end (expire or roll over) a term whose last period closed

The close job and the commitments job both go through `advance`, under the customer's lock,
so which of them runs first, or how often, never changes what an invoice draws or what
expires (docs/invoicing.md, "The period pipeline"). The close never runs ahead of the real
clock (invoicing/close.py `due_period`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Connection, Engine

from billing.caps.service import read_cap_history_ahead
from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.credits.ledger import cache_without_entries
from billing.customers.periods import Period
from billing.customers.service import CustomerRecord, lock_customer, lock_customers
from billing.invoicing.close import (
    close_next,
    due_customers,
    due_period,
    move_closed,
    move_closed_all,
)
from billing.invoicing.issue import InvoiceWrites, Issued, Queued
from billing.metering.store import read_breakdowns_ahead
from billing.metering.usage import read_for_close
from billing.money import ZERO
from billing.notifications.events import cache_subscribers
from billing.parallel import run_chunks

CUSTOMERS_PER_TRANSACTION = 200
# NOTE: a spawned process takes about a second to start; below this many transactions the
# close is done before it could help
PARALLEL_FROM_CHUNKS = 10


@dataclass
class Advanced:
    """What advancing one customer did: invoices issued, commitment steps taken."""

    issued: list[Issued | Queued] = field(default_factory=list)
    moved: list[commitments.Outcome] = field(default_factory=list)


def advance(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    has_commitment: bool = True,
    locked: CustomerRecord | None = None,
    moves: dict[str, dt.datetime] | None = None,
    writes: InvoiceWrites | None = None,
) -> Advanced:
    """Run one customer's pipeline as far as `now` allows, in the caller's transaction.

    `has_commitment=False` (the caller knows there is none running) skips the commitment
    steps; `locked`: the customer as the caller read it under its lock in this
    transaction (else it is locked here); `moves`: where a customer without commitment
    leaves its new `closed_through`, for the caller to write with the others' before it
    commits (`move_closed_all`; nothing in this transaction reads it back meanwhile: the
    loop below carries it); `writes`: where a customer without commitment queues its
    invoices, for the caller to write with the others' before it commits (the queue is
    written here first when a later period of the customer is due: its close reads what
    the earlier invoice billed). NotFound for an unknown customer.
    """
    customer = locked if locked is not None else lock_customer(connection, customer_id)
    closed = customer.closed_through
    done = Advanced()
    while True:
        if has_commitment:
            outcome = commitments.run_for_customer(connection, catalog, customer_id, now)
            if outcome is not None and (outcome.invoices or outcome.entries):
                done.moved.append(outcome)
        queue = writes if not has_commitment else None
        if queue is None:
            step: tuple[Issued | Queued, Period] | None = close_next(
                connection, catalog, customer, closed, now, grace
            )
        else:
            if done.issued and len(queue) and due_period(customer, closed, now, grace):
                queue.write(connection)  # a later period: its late usage reads this invoice
            step = close_next(connection, catalog, customer, closed, now, grace, writes=queue)
        if step is None:
            return done
        invoice, period = step
        done.issued.append(invoice)
        closed = period.end
        if moves is not None and not has_commitment:
            moves[customer_id] = closed
        else:  # a commitment's steps read the customer again
            move_closed(connection, customer_id, closed)


@dataclass
class CloseReport:
    """What a run of the pipeline did across customers."""

    customers: int = 0
    invoices: int = 0
    amount_due: Decimal = ZERO
    moved: list[commitments.Outcome] = field(default_factory=list)

    def add(self, other: CloseReport) -> None:
        """Count another run's customers, invoices, amounts and commitment steps in this."""
        self.customers += other.customers
        self.invoices += other.invoices
        self.amount_due += other.amount_due
        self.moved.extend(other.moved)

    def __str__(self) -> str:
        return f"{self.invoices} invoices for {self.customers} customers"


def _run(
    engine: Engine,
    catalog: Catalog,
    candidates: list[str],
    now: dt.datetime,
    grace: dt.timedelta,
) -> CloseReport:
    """The pipeline for `candidates`, CUSTOMERS_PER_TRANSACTION customers per transaction, in
    this process."""
    report = CloseReport()
    for start in range(0, len(candidates), CUSTOMERS_PER_TRANSACTION):
        chunk = candidates[start : start + CUSTOMERS_PER_TRANSACTION]
        report.add(_close_chunk(engine, (catalog, now, grace), chunk))
    return report


def _close_chunk(
    engine: Engine, context: tuple[Catalog, dt.datetime, dt.timedelta], chunk: list[str]
) -> CloseReport:
    """One transaction of the pipeline: `chunk`'s customers (module-level: a spawned process
    of `run_chunks` runs it too)."""
    catalog, now, grace = context
    report = CloseReport()
    with engine.begin() as connection:
        # NOTE: one statement each per chunk, not per customer: the chunk's customers
        # locked (in id order), their webhook endpoints, their commitments, which of
        # them never had credit (their balance is zero without a read), and at the end
        # their new closed_through
        locked = lock_customers(connection, chunk)
        cache_subscribers(connection)
        committed = commitments.customers_with_commitments(connection, chunk)
        cache_without_entries(connection, chunk)
        # and the usage (and breakdowns) of the period each customer without commitment
        # closes, read ahead; their invoices queued and written together at the end
        _read_ahead(connection, catalog, locked, committed, now, grace)
        writes = InvoiceWrites()
        moves: dict[str, dt.datetime] = {}
        for customer_id in chunk:
            if customer_id in committed and len(writes):
                # numbers follow the order customers are closed in: the queue is
                # numbered before this customer's invoices, issued one by one
                writes.write(connection)
            done = advance(
                connection,
                catalog,
                customer_id,
                now,
                grace,
                has_commitment=customer_id in committed,
                locked=locked.get(customer_id),
                moves=moves,
                writes=writes,
            )
            if done.issued:
                report.customers += 1
                report.invoices += len(done.issued)
                report.amount_due += sum((i.amount_due for i in done.issued), ZERO)
            report.moved.extend(done.moved)
        writes.write(connection)
        move_closed_all(connection, moves)
    return report


def _read_ahead(
    connection: Connection,
    catalog: Catalog,
    locked: dict[str, CustomerRecord],
    committed: set[str],
    now: dt.datetime,
    grace: dt.timedelta,
) -> None:
    """Read (and lock) in one statement the running totals of the period each locked customer
    without commitment closes next; in two, their caps' history (for the cap bound of a
    capped line); and their breakdowns when a product has dimensions:
    each customer's close then reads them without a statement of its own. The rows of
    customers with a commitment are locked in the same statement, not kept (their close
    reads them after their commitment's steps): every customer's rows are locked in
    customer order, the order ingestion locks them in, so the two never deadlock."""
    starts: dict[str, dt.datetime] = {}
    for customer_id, customer in locked.items():
        period = due_period(customer, customer.closed_through, now, grace)
        if period is not None:
            starts[customer_id] = period.start
    read_for_close(connection, starts, lock=True, lock_only=committed)
    read_cap_history_ahead(connection, [c for c in starts if c not in committed])
    if any(product.dimensions for product in catalog.products.values()):
        read_breakdowns_ahead(
            connection, {c: start for c, start in starts.items() if c not in committed}
        )


def default_close_processes(engine: Engine) -> int:
    """Processes of the close when BILLING_CLOSE_PROCESSES is unset: 2 on PostgreSQL, whose
    transactions run side by side; 1 on SQLite, which has one writer at a time."""
    return 2 if engine.dialect.name == "postgresql" else 1


def close_due(
    engine: Engine,
    catalog: Catalog,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    processes: int | None = None,
    per_transaction: int = CUSTOMERS_PER_TRANSACTION,
) -> CloseReport:
    """The close job: every customer with a period due, `per_transaction` customers per
    transaction, in id order. `processes` (None: `default_close_processes`): with more than
    one, and at least PARALLEL_FROM_CHUNKS transactions to run, the transactions run side
    by side in this process and `processes - 1` spawned ones (billing/parallel.py); a
    chunk's customers are still numbered in id order, consecutive chunks in the order they
    commit. On SQLite the close always runs in this process. A script of yours that calls
    this with more than one process starts its work under `if __name__ == "__main__":`
    (multiprocessing's rule for spawned processes, which import the caller's main module)."""
    with engine.begin() as connection:
        candidates = due_customers(connection, now, grace)
    chunks = [
        candidates[start : start + per_transaction]
        for start in range(0, len(candidates), per_transaction)
    ]
    if processes is None:
        processes = default_close_processes(engine)
    if engine.dialect.name != "postgresql" or len(chunks) < PARALLEL_FROM_CHUNKS:
        processes = 1
    parts = run_chunks(engine, (catalog, now, grace), chunks, _close_chunk, processes=processes)
    report = CloseReport()
    for part in parts:
        report.add(part)
    return report


def run_commitments(
    engine: Engine, catalog: Catalog, now: dt.datetime, grace: dt.timedelta
) -> CloseReport:
    """The commitments job: every customer with a running commitment (closing what is due
    on the way, so the order stays the pipeline's)."""
    with engine.begin() as connection:
        candidates = sorted(commitments.customers_with_commitments(connection))
    return _run(engine, catalog, candidates, now, grace)
