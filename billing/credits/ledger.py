"""The credit ledger: append-only, one row per movement of a customer's available credit.

Every entry carries its signed `amount` and the `balance_after` it leaves, so the balance
is always the sum of the amounts (a test checks it after every operation). Callers hold
the customer's row lock (`customers.service.lock_customer`) for the whole transaction, so
two movements of one customer's credit never interleave. Amounts are in the catalogue's
currency, major units, rounded to its minor unit.

Kinds:
    grant          a contract year's credit (or a top-up) is bought. With monthly release
                   it adds nothing yet, and says so in its note; with upfront release it
                   adds the whole credit.
    release        one period's share of the year's credit becomes available (monthly).
    draw           a period's usage spends credit (negative).
    carry_forward  what a period left unspent moves on to the next (amount 0: the
                   balance is unchanged, the entry records the hand-over).
    expiry         unused credit at the end of a term (negative).
    rollover       the share of expired credit moved into a renewal (positive).
    reversal       credits drawn by an invoice that was voided, given back (positive).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from billing.credits.models import CreditEntry, EntryKind
from billing.db import table_of
from billing.money import EXACT, ZERO

# NOTE: statements built once: a period close runs them for every customer.
_ENTRIES = table_of(CreditEntry)
_BALANCE = (
    select(_ENTRIES.c.balance_after)
    .where(_ENTRIES.c.customer_id == bindparam("customer"))
    .order_by(_ENTRIES.c.id.desc())
    .limit(1)
)
_APPEND = insert(_ENTRIES)


def balance(connection: Connection, customer_id: str) -> Decimal:
    """The customer's available credit: the balance left by the latest entry."""
    found = connection.execute(_BALANCE, {"customer": customer_id}).scalar()
    return ZERO if found is None else found


@dataclass(frozen=True, slots=True)
class Entry:
    kind: EntryKind
    amount: Decimal
    balance_after: Decimal
    note: str


def append(
    connection: Connection,
    customer_id: str,
    kind: EntryKind,
    amount: Decimal,
    now: dt.datetime,
    *,
    commitment_id: str | None = None,
    reference: str | None = None,
    period_start: dt.datetime | None = None,
    note: str = "",
) -> Entry:
    """Record one movement (signed, in the currency's major units); the caller holds the
    customer's lock. Raises ValueError if the balance would go negative."""
    after = EXACT.add(balance(connection, customer_id), amount)
    if after < 0:
        raise ValueError(f"credit balance of {customer_id} would go negative: {after}")
    connection.execute(
        _APPEND,
        {
            "customer_id": customer_id,
            "commitment_id": commitment_id,
            "kind": kind,
            "amount": amount,
            "balance_after": after,
            "reference": reference,
            "period_start": period_start,
            "note": note,
            "created_at": now,
        },
    )
    return Entry(kind, amount, after, note)


def entries(connection: Connection, customer_id: str) -> list[Any]:
    """The customer's ledger, oldest first."""
    query = select(_ENTRIES).where(_ENTRIES.c.customer_id == customer_id).order_by(_ENTRIES.c.id)
    return list(connection.execute(query))
