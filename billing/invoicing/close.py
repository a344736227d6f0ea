"""Closing billing periods into finalized invoices (docs/invoicing.md).

For each customer whose next period ended more than the grace ago, one transaction:
lock the customer (so a second closer, or a late event, waits), lock the period's running
totals, price each product at the plan of the period with the cap applied (billed =
min(accepted, limit_quantity)), discount and round each line (invoicing/calculate.py),
apply credit to the total (credits/draw.py), number and write the invoice, and move
`closed_through` to the period end. Running it twice closes nothing twice: the second run
finds `closed_through` already moved.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from billing.catalog import Catalog
from billing.credits.draw import apply_credits
from billing.customers.models import Customer
from billing.customers.periods import Period, period_for
from billing.customers.service import CustomerRecord, lock_customer
from billing.db import session_scope, table_of
from billing.invoicing.calculate import (
    BilledUsage,
    LineIn,
    Totals,
    totals,
    usage_lines,
    with_credits,
)
from billing.invoicing.issue import Issued, issue_invoice
from billing.invoicing.models import InvoiceKind
from billing.metering.usage import billed_usage
from billing.money import ZERO
from billing.pricing.charge import charge

CUSTOMERS_PER_TRANSACTION = 200
SHORTEST_PERIOD = dt.timedelta(days=28)


@dataclass(frozen=True, slots=True)
class Draft:
    """A period's invoice before it is numbered: its lines and their figures."""

    customer_id: str
    period: Period
    lines: tuple[LineIn, ...]
    totals: Totals


def next_period(
    anchor_day: int, closed_through: dt.datetime | None, created_at: dt.datetime
) -> Period:
    """The customer's first period not closed yet."""
    return period_for(anchor_day, closed_through if closed_through is not None else created_at)


_CUSTOMERS = table_of(Customer)
_MOVE_CLOSED = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer"))
    .values(closed_through=bindparam("through"))
)


def draft(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    period: Period,
    now: dt.datetime,
    *,
    record: bool,
    invoice_id: str | None = None,
) -> Draft:
    """The invoice of `period`, read straight through: billed usage (after caps), priced at
    the plan of the period, discounted and rounded line by line, then credit applied to
    the total. With `record` (the caller holds the customer's lock), the usage rows are
    locked and the credit draw is written to the ledger."""
    currency = catalog.currency
    usage = []
    for billed in billed_usage(connection, customer.id, period.start, lock=record):
        product = catalog.products.get(billed.product)
        if product is None or billed.quantity <= 0:
            continue
        plan = catalog.plan_for_period(billed.product, period.start)
        usage.append(
            BilledUsage(
                product=billed.product,
                name=product.name,
                unit=product.unit,
                quantity=billed.quantity,
                charge=charge(plan, billed.quantity),
            )
        )
    lines = usage_lines(
        usage, discount_percent=customer.discount_for(period.start), currency=currency
    )
    applied = apply_credits(
        connection,
        customer_id=customer.id,
        total=totals(lines, currency).total,
        period=period,
        currency=currency,
        now=now,
        reference=invoice_id,
        record=record,
    )
    lines = with_credits(lines, applied.credits_applied)
    return Draft(customer.id, period, lines, totals(lines, currency))


def issue_period_invoice(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    period: Period,
    now: dt.datetime,
    replaces: str | None = None,
) -> Issued:
    """Draft the period's invoice, draw its credits and issue it, numbered (customer locked)."""
    invoice_id = "inv_" + secrets.token_hex(8)
    made = draft(connection, catalog, customer, period, now, record=True, invoice_id=invoice_id)
    return issue_invoice(
        connection,
        customer_id=customer.id,
        kind=InvoiceKind.USAGE,
        currency=catalog.currency,
        lines=made.lines,
        now=now,
        period=(period.start, period.end),
        replaces=replaces,
        invoice_id=invoice_id,
        discount_percent=customer.discount_for(period.start),
    )


def close_customer(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[Issued]:
    """Close every period of one customer that is due; the invoices made (none if none due)."""
    customer = lock_customer(connection, customer_id)
    closed_through = customer.closed_through
    issued: list[Issued] = []
    while True:
        period = next_period(customer.anchor_day, closed_through, customer.created_at)
        if period.end + grace > now:
            break
        issued.append(issue_period_invoice(connection, catalog, customer, period, now))
        closed_through = period.end
    if issued:
        connection.execute(_MOVE_CLOSED, {"customer": customer_id, "through": closed_through})
    return issued


def due_customers(connection: Connection, now: dt.datetime, grace: dt.timedelta) -> list[str]:
    """Customers that may have a period to close (checked exactly under their lock)."""
    table = _CUSTOMERS
    cutoff = now - grace - SHORTEST_PERIOD  # no period ends sooner after the last one
    query = (
        select(table.c.id)
        .where(or_(table.c.closed_through.is_(None), table.c.closed_through <= cutoff))
        .order_by(table.c.id)
    )
    return list(connection.execute(query).scalars())


@dataclass
class CloseReport:
    customers: int = 0
    invoices: int = 0
    amount_due: Decimal = ZERO

    def __str__(self) -> str:
        return f"{self.invoices} invoices for {self.customers} customers"


def close_due(
    engine: Engine, catalog: Catalog, now: dt.datetime, grace: dt.timedelta
) -> CloseReport:
    """Close every due period, CUSTOMERS_PER_TRANSACTION customers per transaction."""
    with session_scope(engine) as session:
        candidates = due_customers(session.connection(), now, grace)
    report = CloseReport()
    for start in range(0, len(candidates), CUSTOMERS_PER_TRANSACTION):
        with session_scope(engine) as session:
            connection = session.connection()
            for customer_id in candidates[start : start + CUSTOMERS_PER_TRANSACTION]:
                issued = close_customer(connection, catalog, customer_id, now, grace)
                if issued:
                    report.customers += 1
                    report.invoices += len(issued)
                    report.amount_due += sum((i.amount_due for i in issued), ZERO)
    return report
