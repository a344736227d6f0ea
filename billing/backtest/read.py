"""Usage records of closed periods, read from the database (for `billing tiers diff
--backtest` and `billing usage export`).

One record per customer, product and closed period whose usage invoice (not void) starts
in the month range: the running total the close priced, the cap it was bound by
(billing/caps/service.cap_bound, as the close reads it), the discount the invoice was
priced with, and what invoices billed for it (the usage and discount lines of the period's
invoice, plus adjustment lines of late usage on later invoices).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.backtest.records import UsageRecord
from billing.caps.service import cap_bound
from billing.customers.service import read_customer
from billing.db import table_of
from billing.invoicing.carried import standing
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, LineKind
from billing.metering.store import usage_table
from billing.money import round_to_billing_unit

ZERO = Decimal(0)


def plain(value: Decimal) -> Decimal:
    """`value` without the trailing zeros of its column's scale (PostgreSQL's NUMERIC(38, 12)
    gives 15000.000000000000), never in exponent form: 15000."""
    return Decimal(format(value.normalize(), "f"))


def month_start(month: str) -> dt.datetime:
    """The first instant (UTC) of a YYYY-MM month; ValueError for anything else."""
    try:
        parsed = dt.datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"not a month (YYYY-MM): {month!r}") from None
    return parsed.replace(tzinfo=dt.UTC)


def month_after(month: str) -> dt.datetime:
    """The first instant (UTC) after a YYYY-MM month."""
    start = month_start(month)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def closed_records(connection: Connection, first: str, last: str) -> list[UsageRecord]:
    """The records of closed periods starting in months `first`..`last` (YYYY-MM, both
    inclusive), ordered by customer, period start and product. ValueError for a bad range."""
    start, end = month_start(first), month_after(last)
    if end <= start:
        raise ValueError(f"the range {first}..{last} ends before it starts")
    invoices, lines, usage = table_of(Invoice), table_of(InvoiceLine), usage_table()
    issued = connection.execute(
        select(
            invoices.c.id,
            invoices.c.customer_id,
            invoices.c.period_start,
            invoices.c.period_end,
            invoices.c.discount_percent,
            invoices.c.currency,
        )
        .where(invoices.c.kind == InvoiceKind.USAGE)
        .where(standing(invoices))
        .where(invoices.c.period_start >= start, invoices.c.period_start < end)
    ).all()
    if not issued:
        return []
    by_period = {(row.customer_id, row.period_start): row for row in issued}
    billed: dict[tuple[str, dt.datetime, str], Decimal] = defaultdict(lambda: ZERO)
    own = connection.execute(
        select(invoices.c.customer_id, invoices.c.period_start, lines.c.product, lines.c.amount)
        .join(lines, lines.c.invoice_id == invoices.c.id)
        .where(invoices.c.kind == InvoiceKind.USAGE)
        .where(standing(invoices))
        .where(invoices.c.period_start >= start, invoices.c.period_start < end)
        .where(lines.c.kind.in_([LineKind.USAGE, LineKind.DISCOUNT]))
    )
    for line in own:
        billed[(line.customer_id, line.period_start, line.product)] += line.amount
    late = connection.execute(
        select(invoices.c.customer_id, lines.c.corrects_period, lines.c.product, lines.c.amount)
        .join(lines, lines.c.invoice_id == invoices.c.id)
        .where(standing(invoices))
        .where(lines.c.kind == LineKind.ADJUSTMENT)
        .where(lines.c.corrects_period >= start, lines.c.corrects_period < end)
    )
    for line in late:
        billed[(line.customer_id, line.corrects_period, line.product)] += line.amount
    rows = connection.execute(
        select(
            usage.c.customer_id,
            usage.c.period_start,
            usage.c.product,
            usage.c.quantity,
            usage.c.limit_quantity,
            usage.c.over_limit_quantity,
            usage.c.cap_amount,
            usage.c.amended,
        )
        .where(usage.c.period_start >= start, usage.c.period_start < end)
        .order_by(usage.c.customer_id, usage.c.period_start, usage.c.product)
    )
    records: list[UsageRecord] = []
    for row in rows:
        invoice = by_period.get((row.customer_id, row.period_start))
        if invoice is None:  # not closed
            continue
        cap = None
        if row.cap_amount is not None:
            cap = cap_bound(
                connection, row.customer_id, row.product, invoice.period_start, invoice.period_end
            )
        key = (row.customer_id, row.period_start, row.product)
        records.append(
            UsageRecord(
                customer=row.customer_id,
                period_start=row.period_start,
                product=row.product,
                accepted=plain(row.quantity),
                limit=None if row.limit_quantity is None else plain(row.limit_quantity),
                over_limit=plain(row.over_limit_quantity),
                cap=None if cap is None else round_to_billing_unit(cap, invoice.currency),
                discount_percent=(
                    plain(invoice.discount_percent)
                    if invoice.discount_percent is not None
                    else read_customer(connection, row.customer_id).discount_for(row.period_start)
                ),
                invoiced=(
                    round_to_billing_unit(billed[key], invoice.currency) if key in billed else None
                ),
                pending=bool(row.amended),
            )
        )
    return records
