"""Applying a customer's prepaid credit to a finished invoice total (docs/discounts.md).

Modelled on Lago's applied-prepaid-credit service: the invoice is priced and discounted
first, line by line (billing/invoicing/calculate.py); then credit covers
`min(available, total)` and the rest is due. The draw, and what is left carrying forward,
are written to the ledger in the caller's transaction, under the customer's lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection

from billing.credits import ledger
from billing.credits.models import EntryKind
from billing.customers.periods import Period
from billing.money import EXACT, ZERO


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """Credit applied to one invoice (major units of the catalogue's currency): how much,
    what is left due, and the balance that carries forward."""

    credits_applied: Decimal
    due: Decimal
    carried_forward: Decimal


def apply_credits(
    connection: Connection,
    *,
    customer_id: str,
    total: Decimal,
    period: Period,
    currency: str,
    now: dt.datetime,
    reference: str | None = None,
    record: bool = True,
) -> Applied:
    """Apply available credit to a period's invoice `total` (rounded, after discounts).

    With `record` the draw and the carry-forward are written to the ledger (the caller
    holds the customer's lock: customers.service.lock_customer); without, nothing is
    written (the upcoming invoice, a preview).
    """
    available = ledger.balance(connection, customer_id)
    applied = max(ZERO, min(available, total))  # a total below zero draws nothing
    carried = EXACT.subtract(available, applied)
    if record and applied > 0:
        ledger.append(
            connection,
            customer_id,
            EntryKind.DRAW,
            -applied,
            now,
            reference=reference,
            period_start=period.start,
            note=f"usage of period {period.label}",
        )
    if record and carried > 0:
        ledger.append(
            connection,
            customer_id,
            EntryKind.CARRY_FORWARD,
            ZERO,
            now,
            period_start=period.start,
            note=f"{carried:,.2f} {currency} unspent in {period.label} carries forward",
        )
    return Applied(
        credits_applied=applied, due=EXACT.subtract(total, applied), carried_forward=carried
    )
