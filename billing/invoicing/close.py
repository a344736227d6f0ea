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
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, overload

from sqlalchemy import Connection, bindparam, or_, select, update

from billing.caps.quota import billed_quantity, line_total
from billing.caps.service import cap_bound
from billing.catalog import Catalog
from billing.credits.draw import apply_credits
from billing.customers.models import Customer
from billing.customers.periods import Period, period_for
from billing.customers.service import CustomerRecord, lock_customer
from billing.db import table_of
from billing.invoicing.calculate import (
    BilledUsage,
    LineIn,
    Parts,
    Totals,
    totals,
    usage_lines,
    with_breakdowns,
    with_credits,
)
from billing.invoicing.carried import NOTHING, Carried, adjusted_by, carried, standing
from billing.invoicing.issue import InvoiceWrites, Issued, Queued, issue_invoice
from billing.invoicing.models import Invoice, InvoiceKind, LineKind
from billing.metering.store import read_breakdowns
from billing.metering.usage import PeriodUsage, mark_invoiced, period_usage, usage_for_close
from billing.money import EXACT, ZERO, format_amount, format_quantity, group_quantity
from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import charge

SHORTEST_PERIOD = dt.timedelta(days=28)


@dataclass(frozen=True, slots=True)
class Draft:
    """A period's invoice before it is numbered: its lines, their figures, and what it
    carries of each running-totals row (product, period start, units billed in all, units
    shown capped in all) for `mark_invoiced`."""

    customer_id: str
    period: Period
    lines: tuple[LineIn, ...]
    totals: Totals
    marks: tuple[tuple[str, dt.datetime, Decimal, Decimal], ...]


_CUSTOMERS = table_of(Customer)
_MOVE_CLOSED = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer"))
    .values(closed_through=bindparam("through"))
)
_INVOICES = table_of(Invoice)
_ISSUED_DISCOUNT = (
    select(_INVOICES.c.discount_percent)
    .where(_INVOICES.c.customer_id == bindparam("customer"))
    .where(_INVOICES.c.period_start == bindparam("start"))
    .where(_INVOICES.c.kind == InvoiceKind.USAGE)
    .where(standing())  # a written-off period keeps the discount it was billed at
    .order_by(_INVOICES.c.issued_at.desc())
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class _Priced:
    """A row priced for an invoice: units billed (within what the cap buys at close) and
    units above it (shown, not billed)."""

    billed: Decimal
    cut: Decimal


def _within_cap(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    row: PeriodUsage,
    period: Period,
    discount: Decimal,
) -> _Priced:
    """NOTE: every accepted unit is billed or shown capped, never dropped. Billed: at most the
    limit ingestion enforced (the event that crossed it was accepted in full: the part above
    is capped), and the cap is an invariant at close (docs/spend-caps.md, "At close"): never
    above what the highest cap of its period buys at the discount in force now, whatever
    changed within the period (a removed discount, a new price version)."""
    billed = billed_quantity(row.accepted, row.limit)
    if row.cap_amount is not None:  # capped at the end of the period
        cap = cap_bound(connection, customer_id, row.product, period.start, period.end)
        if cap is not None:
            plan = catalog.plan_for_period(row.product, period.start, customer_id)
            most = max_quantity_within_cap(plan, cap, discount)
            if most is not None:
                billed = min(billed, most)
    return _Priced(billed, row.accepted - billed)


def _keeping_capped(priced: _Priced, held: Carried) -> _Priced:
    """`priced` with the units standing invoices already show as capped kept capped: a line
    is never taken back, so when the cap now buys more (say, a higher discount at a
    re-issue), only units nobody has shown yet are billed. Billed plus capped stays the
    accepted quantity."""
    if held.capped <= priced.cut:
        return priced
    return _Priced(priced.billed - (held.capped - priced.cut), held.capped)


def _capped_line(name: str, unit: str, product: str, cut: Decimal, period: Period) -> LineIn:
    return LineIn(
        kind=LineKind.CAPPED,
        description=(
            f"{name}: {group_quantity(cut)} {unit}s above the spend cap ({period.label}): "
            "not billed"
        ),
        quantity=cut,
        unit_amount=ZERO,
        amount=ZERO,
        product=product,
        corrects_period=period.start,
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
    replacing: str | None = None,
) -> Draft:
    """The invoice of `period`, read straight through: billed usage (after caps), priced at
    the plan of the period, discounted and rounded line by line; adjustment lines for late
    usage of earlier periods; then credit applied to the total. With `record` (the caller
    holds the customer's lock), the usage rows are locked and the credit draw is written
    to the ledger.

    `replacing` (a voided invoice of this period) drafts its replacement, which carries the
    same scope re-priced (docs/invoicing.md, "Voiding an unpaid invoice"): the period in
    full, less what other standing invoices already billed of it as late usage (a negative
    adjustment line), and the late usage of earlier periods the voided invoice adjusted,
    nothing else (other late usage waits for the next close)."""
    currency = catalog.currency
    discount = customer.discount_for(period.start)
    usage: list[BilledUsage] = []
    capped: list[LineIn] = []
    elsewhere: list[LineIn] = []
    marks: list[tuple[str, dt.datetime, Decimal, Decimal]] = []
    accepted: dict[str, Decimal] = {}
    held = (
        carried(connection, customer.id, period.start, excluding=replacing)
        if replacing is not None
        else {}
    )
    own, late = _usage_rows(connection, customer.id, period.start, replacing, lock=record)
    for row in own:
        product = catalog.products.get(row.product)
        if product is None:
            continue
        accepted[row.product] = row.accepted
        others = held.get(row.product, NOTHING)
        priced = _within_cap(connection, catalog, customer.id, row, period, discount)
        priced = _keeping_capped(priced, others)
        if replacing is not None:
            # NOTE: a re-issue may bill late usage still waiting (the row is amended): the
            # row is marked so the next close does not adjust it. A first close needs no
            # mark (its rows are not amended; adjustments sum the standing lines), and
            # skipping it spares a statement per invoice.
            marks.append((row.product, period.start, priced.billed, priced.cut))
        if priced.cut > others.capped:
            cut = priced.cut - others.capped
            capped.append(_capped_line(product.name, product.unit, row.product, cut, period))
        plan = catalog.plan_for_period(row.product, period.start, customer.id)
        if others.units or others.amount:
            # NOTE: a replacement never gives back money another invoice billed: when that
            # is more than the whole period now costs (a discount raised since), the
            # product's net on the replacement is 0.00, never below (docs/invoicing.md)
            back = min(others.amount, line_total(plan, priced.billed, discount))
            elsewhere.append(
                _billed_elsewhere(product.name, product.unit, row.product, others, back, period)
            )
        if priced.billed <= 0:
            continue
        usage.append(
            BilledUsage(
                product=row.product,
                name=product.name,
                unit=product.unit,
                quantity=priced.billed,
                charge=charge(plan, priced.billed),
            )
        )
    lines = [
        *usage_lines(usage, discount_percent=discount, currency=currency),
        *elsewhere,
        *capped,
    ]
    if any(catalog.products[p].dimensions for p in accepted):
        found = read_breakdowns(connection, customer.id, period.start)
        parts = {
            key: Parts(
                [(name, quantity) for name, quantity, _ in found.get(key, [])],
                accepted[key],
                catalog.products[key].dimensions,
            )
            for key in accepted
            if catalog.products[key].dimensions
        }
        lines = list(with_breakdowns(lines, parts, currency))
    for row in late:
        made, mark = _adjustment(connection, catalog, customer, row, excluding=replacing)
        lines.extend(made)
        marks.append(mark)
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
    final = with_credits(lines, applied.credits_applied)
    return Draft(customer.id, period, final, totals(final, currency), tuple(marks))


def _billed_elsewhere(
    name: str, unit: str, product: str, others: Carried, back: Decimal, period: Period
) -> LineIn:
    """The negative adjustment of a replacement invoice: the units other standing invoices
    already billed of its period (late usage adjusted there), so the period is billed
    once, and `back`, the amount they billed (at most what the replacement bills of the
    product: it never goes below 0.00)."""
    return LineIn(
        kind=LineKind.ADJUSTMENT,
        description=(
            f"{name}, period {period.label}: -{group_quantity(others.units)} {unit}s "
            "already billed as late usage on other invoices"
        ),
        quantity=-others.units,
        unit_amount=-back,
        amount=-back,
        product=product,
        corrects_period=period.start,
    )


def _usage_rows(
    connection: Connection,
    customer_id: str,
    start: dt.datetime,
    replacing: str | None,
    *,
    lock: bool,
) -> tuple[list[PeriodUsage], list[PeriodUsage]]:
    """The period's own rows, and the rows of earlier periods its invoice adjusts: at a
    close, every row with late usage (both read in one statement); at a re-issue, the rows
    the voided invoice adjusted (whether or not they moved since)."""
    if replacing is None:
        return usage_for_close(connection, customer_id, start, lock=lock)
    own = period_usage(connection, customer_id, start, lock=lock)
    rows: list[PeriodUsage] = []
    for product, earlier in adjusted_by(connection, replacing):
        for row in period_usage(connection, customer_id, earlier, lock=lock):
            if row.product == product:
                rows.append(row)
    return own, rows


def _adjustment(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    row: PeriodUsage,
    *,
    excluding: str | None = None,
) -> tuple[list[LineIn], tuple[str, dt.datetime, Decimal, Decimal]]:
    """Late usage of a closed period: the exact difference between the period re-priced with
    it and what the standing invoices carry of it (billing/invoicing/carried.py; `excluding`
    the invoice being replaced), at that period's plan, caps and discount
    (docs/invoicing.md, "Late usage")."""
    period = period_for(customer.anchor_day, row.period_start)
    product = catalog.products.get(row.product)
    if product is None:
        return [], (row.product, row.period_start, row.invoiced, row.capped)
    issued = connection.execute(
        _ISSUED_DISCOUNT, {"customer": customer.id, "start": row.period_start}
    ).scalar()
    discount = issued if issued is not None else customer.discount_for(period.start)
    others = carried(connection, customer.id, row.period_start, excluding=excluding).get(
        row.product, NOTHING
    )
    priced = _keeping_capped(
        _within_cap(connection, catalog, customer.id, row, period, discount), others
    )
    plan = catalog.plan_for_period(row.product, period.start, customer.id)
    # NOTE: an adjustment bills late usage and never gives money back: when the period
    # re-priced costs less than the standing invoices billed of it (a discount raised
    # before a re-issue, say), it bills 0.00; a refund is a credit note, issued on purpose
    amount = max(ZERO, EXACT.subtract(line_total(plan, priced.billed, discount), others.amount))
    units = EXACT.subtract(priced.billed, others.units)
    lines: list[LineIn] = []
    if units or amount:
        sign = "+" if units >= 0 else "-"
        lines.append(
            LineIn(
                kind=LineKind.ADJUSTMENT,
                description=(
                    f"{product.name}, period {period.label}: {sign}{group_quantity(abs(units))} "
                    f"{product.unit}s of late usage"
                ),
                quantity=units,
                unit_amount=amount,
                amount=amount,
                product=row.product,
                corrects_period=period.start,
            )
        )
    more_cut = EXACT.subtract(priced.cut, others.capped)
    if more_cut > 0:
        lines.append(_capped_line(product.name, product.unit, row.product, more_cut, period))
    return lines, (row.product, row.period_start, priced.billed, priced.cut)


def issue_period_invoice(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    period: Period,
    now: dt.datetime,
    replaces: str | None = None,
) -> Issued:
    """Draft the period's invoice, draw its credits and issue it, numbered (customer locked).
    A re-issue (`replaces`, a voided invoice of the period) carries the voided invoice's
    scope re-priced (`draft`, `replacing`)."""
    invoice_id = "inv_" + secrets.token_hex(8)
    made = draft(
        connection,
        catalog,
        customer,
        period,
        now,
        record=True,
        invoice_id=invoice_id,
        replacing=replaces,
    )
    issued = issue_invoice(
        connection, **_invoice_of(made, catalog, customer, now, invoice_id), replaces=replaces
    )
    mark_invoiced(connection, customer.id, list(made.marks))
    return issued


def queue_period_invoice(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    period: Period,
    now: dt.datetime,
    writes: InvoiceWrites,
) -> Queued:
    """`issue_period_invoice` (a first close, not a re-issue) with the invoice queued in
    `writes`: numbered and written with the others of the queue when the caller writes it.
    Its credit draw and usage marks are written now, in the caller's transaction."""
    invoice_id = "inv_" + secrets.token_hex(8)
    made = draft(connection, catalog, customer, period, now, record=True, invoice_id=invoice_id)
    queued = writes.add(**_invoice_of(made, catalog, customer, now, invoice_id))
    mark_invoiced(connection, customer.id, list(made.marks))
    return queued


def _invoice_of(
    made: Draft, catalog: Catalog, customer: CustomerRecord, now: dt.datetime, invoice_id: str
) -> dict[str, Any]:
    """The usage invoice of a draft, as `issue_invoice` and `InvoiceWrites.add` take it."""
    discount = customer.discount_for(made.period.start)
    return {
        "customer_id": customer.id,
        "kind": InvoiceKind.USAGE,
        "currency": catalog.currency,
        "lines": made.lines,
        "now": now,
        "period": (made.period.start, made.period.end),
        "invoice_id": invoice_id,
        "discount_percent": discount,
        "catalog_digest": catalog.digest or None,
        "priced_inputs": priced_inputs(made, discount, catalog.currency),
    }


def priced_inputs(made: Draft, discount: Decimal, currency: str) -> str:
    """What the invoice of `made` was priced with, as JSON (docs/pricing-changes.md,
    "Verifiable invoices"): the period start, the percentage discount, the billed quantity
    of each usage line by product, and the prepaid credit drawn (major units, as strings)."""
    usage = [
        {"product": line.product, "quantity": format_quantity(line.quantity)}
        for line in made.lines
        if line.kind == LineKind.USAGE
    ]
    return json.dumps(
        {
            "period_start": made.period.start.isoformat().replace("+00:00", "Z"),
            "discount_percent": format_quantity(discount),
            "usage": usage,
            "credits_applied": format_amount(made.totals.credits_applied, currency),
        },
        sort_keys=True,
    )


def due_period(
    customer: CustomerRecord,
    closed_through: dt.datetime | None,
    now: dt.datetime,
    grace: dt.timedelta,
) -> Period | None:
    """The customer's next period if it is due at `now`: ended, and the grace passed, also
    by the real clock (a close never runs ahead of it: docs/invoicing.md, "The clock")."""
    period = customer.next_period(closed_through)
    if period.end + grace > min(now, dt.datetime.now(dt.UTC)):
        return None
    return period


@overload
def close_next(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    closed_through: dt.datetime | None,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    writes: None = None,
) -> tuple[Issued, Period] | None: ...


@overload
def close_next(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    closed_through: dt.datetime | None,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    writes: InvoiceWrites,
) -> tuple[Queued, Period] | None: ...


def close_next(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRecord,
    closed_through: dt.datetime | None,
    now: dt.datetime,
    grace: dt.timedelta,
    *,
    writes: InvoiceWrites | None = None,
) -> tuple[Issued | Queued, Period] | None:
    """Close the customer's next period if it is due (the caller holds the customer's lock
    and moves `closed_through`); the invoice (queued in `writes` when given:
    `queue_period_invoice`) and the period, or None."""
    period = due_period(customer, closed_through, now, grace)
    if period is None:
        return None
    if writes is not None:
        return queue_period_invoice(connection, catalog, customer, period, now, writes), period
    return issue_period_invoice(connection, catalog, customer, period, now), period


def move_closed(connection: Connection, customer_id: str, through: dt.datetime) -> None:
    """Record that the customer's periods are closed up to `through` (exclusive)."""
    connection.execute(_MOVE_CLOSED, {"customer": customer_id, "through": through})


def move_closed_all(connection: Connection, moves: dict[str, dt.datetime]) -> None:
    """`move_closed` for many customers (customer -> through), in one executemany."""
    if moves:
        connection.execute(
            _MOVE_CLOSED,
            [{"customer": customer, "through": through} for customer, through in moves.items()],
        )


def close_customer(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[Issued]:
    """Close every period of one customer that is due; the invoices made (none if none due).
    (The period pipeline, billing/pipeline.py, interleaves this with commitment credit.)"""
    customer = lock_customer(connection, customer_id)
    closed_through = customer.closed_through
    issued: list[Issued] = []
    while (
        closed := close_next(connection, catalog, customer, closed_through, now, grace)
    ) is not None:
        invoice, period = closed
        issued.append(invoice)
        closed_through = period.end
    if issued and closed_through is not None:
        move_closed(connection, customer_id, closed_through)
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
