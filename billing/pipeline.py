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

from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.customers.service import lock_customer
from billing.invoicing.close import close_next, due_customers, move_closed
from billing.invoicing.issue import Issued
from billing.money import ZERO
from billing.notifications.events import cache_subscribers

CUSTOMERS_PER_TRANSACTION = 200


@dataclass
class Advanced:
    """What advancing one customer did: invoices issued, commitment steps taken."""

    issued: list[Issued] = field(default_factory=list)
    moved: list[commitments.Outcome] = field(default_factory=list)


def advance(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    has_commitment: bool = True,
) -> Advanced:
    """Run one customer's pipeline as far as `now` allows, in the caller's transaction.

    `has_commitment=False` (the caller knows there is none running) skips the commitment
    steps. NotFound for an unknown customer.
    """
    customer = lock_customer(connection, customer_id)
    closed = customer.closed_through
    done = Advanced()
    while True:
        if has_commitment:
            outcome = commitments.run_for_customer(connection, catalog, customer_id, now)
            if outcome is not None and (outcome.invoices or outcome.entries):
                done.moved.append(outcome)
        step = close_next(connection, catalog, customer, closed, now, grace)
        if step is None:
            return done
        invoice, period = step
        done.issued.append(invoice)
        closed = period.end
        move_closed(connection, customer_id, closed)


@dataclass
class CloseReport:
    """What a run of the pipeline did across customers."""

    customers: int = 0
    invoices: int = 0
    amount_due: Decimal = ZERO
    moved: list[commitments.Outcome] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.invoices} invoices for {self.customers} customers"


def _run(
    engine: Engine,
    catalog: Catalog,
    candidates: list[str],
    now: dt.datetime,
    grace: dt.timedelta,
) -> CloseReport:
    report = CloseReport()
    for start in range(0, len(candidates), CUSTOMERS_PER_TRANSACTION):
        chunk = candidates[start : start + CUSTOMERS_PER_TRANSACTION]
        with engine.begin() as connection:
            cache_subscribers(connection)  # one read of the webhook endpoints per chunk
            committed = commitments.customers_with_commitments(connection, chunk)
            for customer_id in chunk:
                done = advance(
                    connection,
                    catalog,
                    customer_id,
                    now,
                    grace,
                    has_commitment=customer_id in committed,
                )
                if done.issued:
                    report.customers += 1
                    report.invoices += len(done.issued)
                    report.amount_due += sum((i.amount_due for i in done.issued), ZERO)
                report.moved.extend(done.moved)
    return report


def close_due(
    engine: Engine, catalog: Catalog, now: dt.datetime, grace: dt.timedelta
) -> CloseReport:
    """The close job: every customer with a period due, CUSTOMERS_PER_TRANSACTION customers
    per transaction."""
    with engine.begin() as connection:
        candidates = due_customers(connection, now, grace)
    return _run(engine, catalog, candidates, now, grace)


def run_commitments(
    engine: Engine, catalog: Catalog, now: dt.datetime, grace: dt.timedelta
) -> CloseReport:
    """The commitments job: every customer with a running commitment (closing what is due
    on the way, so the order stays the pipeline's)."""
    with engine.begin() as connection:
        candidates = sorted(commitments.customers_with_commitments(connection))
    return _run(engine, catalog, candidates, now, grace)
