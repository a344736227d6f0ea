"""Closing billing periods into finalized invoices (docs/invoicing.md).

For each customer whose next period ended more than the grace ago, one transaction:
lock the customer (so a second closer, or a late event, waits), lock the period's running
totals, price each product at the version in force at the period start with the cap
applied (billed = min(accepted, limit_quantity)), discount each line, draw credits,
number and write the invoice, and move `closed_through` to the period end. Running it
twice closes nothing twice: the second run finds `closed_through` already moved.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from billing.caps.accounts import Account, plan_for_period
from billing.caps.limits import billed_quantity
from billing.catalog import Catalog
from billing.commitments import ledger
from billing.commitments.service import Drawdown, UsageLine, draw_for_period
from billing.customers.models import Customer
from billing.customers.periods import Period, period_for
from billing.db import session_scope, table_of
from billing.invoicing.issue import Issued, LineIn, issue_invoice
from billing.metering.store import usage_table
from billing.money import ZERO, format_quantity, group_quantity
from billing.pricing.charge import ChargeResult, charge

CUSTOMERS_PER_TRANSACTION = 200
SHORTEST_PERIOD = dt.timedelta(days=28)


@dataclass(frozen=True, slots=True)
class Draft:
    """An invoice before it is numbered: the lines and the drawdown they come from."""

    customer_id: str
    period: Period
    lines: tuple[LineIn, ...]
    drawdown: Drawdown


def next_period(
    anchor_day: int, closed_through: dt.datetime | None, created_at: dt.datetime
) -> Period:
    """The customer's first period not closed yet."""
    return period_for(anchor_day, closed_through if closed_through is not None else created_at)


def _breakdown(result: ChargeResult) -> str:
    return json.dumps(
        [
            {
                "from": format_quantity(t.lower),
                "up_to": None if t.up_to is None else format_quantity(t.up_to),
                "quantity": format_quantity(t.quantity),
                "unit_price": format_quantity(t.unit_price),
                "flat_fee": format_quantity(t.flat_fee),
                "amount": format_quantity(t.amount),
            }
            for t in result.tiers
        ],
        separators=(",", ":"),
    )


_USAGE = usage_table()
_READ_USAGE = (
    select(_USAGE.c.product, _USAGE.c.quantity, _USAGE.c.limit_quantity)
    .where(_USAGE.c.customer_id == bindparam("customer"))
    .where(_USAGE.c.period_start == bindparam("start"))
    .order_by(_USAGE.c.product)
)
_LOCK_USAGE = _READ_USAGE.with_for_update()
_CUSTOMERS = table_of(Customer)
_MOVE_CLOSED = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer"))
    .values(closed_through=bindparam("through"))
)


def _usage(connection: Connection, customer_id: str, period: Period, lock: bool) -> list[Any]:
    locking = lock and connection.dialect.name == "postgresql"
    query = _LOCK_USAGE if locking else _READ_USAGE
    return list(connection.execute(query, {"customer": customer_id, "start": period.start}))


def draft(
    connection: Connection,
    catalog: Catalog,
    account: Account,
    period: Period,
    now: dt.datetime,
    *,
    record: bool,
    invoice_id: str | None = None,
) -> Draft:
    """The invoice of `period`; with `record`, its credit draw is written to the ledger."""
    currency = catalog.currency
    discount = account.discount_for(period.start)
    priced: list[tuple[str, Decimal, ChargeResult]] = []
    for row in _usage(connection, account.id, period, lock=record):
        if row.product not in catalog.products:
            continue
        billed = billed_quantity(row.quantity, row.limit_quantity)
        if billed <= 0:
            continue
        result = charge(plan_for_period(catalog, row.product, period.start), billed)
        priced.append((row.product, billed, result))
    drawdown = draw_for_period(
        connection,
        customer_id=account.id,
        period=period,
        lines=[UsageLine(product, result.amount) for product, _, result in priced],
        discount_percent=discount,
        currency=currency,
        now=now,
        reference=invoice_id,
        record=record,
        locked=record,  # close_customer holds the customer's lock
    )
    lines: list[LineIn] = []
    for (product, billed, result), drawn in zip(priced, drawdown.lines, strict=True):
        item = catalog.products[product]
        lines.append(
            LineIn(
                f"{item.name}: {group_quantity(billed)} {item.unit}s",
                billed,
                drawn.subtotal,
                drawn.subtotal,
                kind="usage",
                product=product,
                detail=_breakdown(result),
            )
        )
        if drawn.discount:
            lines.append(
                LineIn(
                    f"{item.name}: {discount.normalize():f}% discount",
                    Decimal(1),
                    -drawn.discount,
                    -drawn.discount,
                    kind="discount",
                    product=product,
                )
            )
    if drawdown.credits_applied:
        applied = drawdown.credits_applied
        lines.append(
            LineIn("Prepaid credits applied", Decimal(1), -applied, -applied, kind="credits")
        )
    return Draft(account.id, period, tuple(lines), drawdown)


def issue_period_invoice(
    connection: Connection,
    catalog: Catalog,
    account: Account,
    period: Period,
    now: dt.datetime,
    replaces: str | None = None,
) -> Issued:
    """Draft the period's invoice, draw its credits and issue it, numbered (customer locked)."""
    invoice_id = "inv_" + secrets.token_hex(8)
    made = draft(connection, catalog, account, period, now, record=True, invoice_id=invoice_id)
    return issue_invoice(
        connection,
        customer_id=account.id,
        kind="usage",
        currency=catalog.currency,
        lines=list(made.lines),
        now=now,
        period=(period.start, period.end),
        replaces=replaces,
        invoice_id=invoice_id,
    )


def close_customer(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[Issued]:
    """Close every period of one customer that is due; the invoices made (none if none due)."""
    customer = ledger.lock_customer(connection, customer_id)
    closed_through = customer.closed_through
    issued: list[Issued] = []
    while True:
        period = next_period(customer.billing_anchor_day, closed_through, customer.created_at)
        if period.end + grace > now:
            break
        issued.append(issue_period_invoice(connection, catalog, _account_of(customer), period, now))
        closed_through = period.end
    if issued:
        connection.execute(_MOVE_CLOSED, {"customer": customer_id, "through": closed_through})
    return issued


def _account_of(customer: Any) -> Account:
    """What closing needs of a customer row (limits are on the usage rows already)."""
    return Account(
        id=customer.id,
        anchor_day=customer.billing_anchor_day,
        closed_through=customer.closed_through,
        discount_percent=customer.discount_percent,
        discount_until=customer.discount_until,
        thresholds=(),
        free_allowance_alert=False,
        webhook_url=None,
    )


def due_customers(connection: Connection, now: dt.datetime, grace: dt.timedelta) -> list[str]:
    """Customers that may have a period to close (checked exactly under their lock)."""
    table = table_of(Customer)
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
                    report.amount_due += sum((i.total for i in issued), ZERO)
    return report
