"""The credit ledger: append-only, one row per movement of a customer's available credit.

Every entry carries its signed `amount` and the `balance_after` it leaves, so the balance
is always the sum of the amounts (a test checks it after every operation). Callers hold
the customer's row lock (`lock_customer`) for the whole transaction, so two movements of
one customer's credit never interleave.

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

from billing.commitments.models import CreditEntry
from billing.customers.models import Customer
from billing.db import table_of
from billing.errors import NotFound
from billing.money import EXACT, ZERO

# NOTE: statements built once: a period close runs them for every customer.
_CUSTOMERS = table_of(Customer)
_ENTRIES = table_of(CreditEntry)
_READ = select(_CUSTOMERS).where(_CUSTOMERS.c.id == bindparam("id"))
# FOR NO KEY UPDATE: serializes closes, commitment changes and late events (FOR SHARE)
# on the customer, but not the FOR KEY SHARE locks that inserting events and usage rows
# take through their foreign keys, so ingestion never waits for (or deadlocks with) a close.
_LOCK = _READ.with_for_update(key_share=True)
_BALANCE = (
    select(_ENTRIES.c.balance_after)
    .where(_ENTRIES.c.customer_id == bindparam("customer"))
    .order_by(_ENTRIES.c.id.desc())
    .limit(1)
)
_APPEND = insert(_ENTRIES)


def lock_customer(connection: Connection, customer_id: str) -> Any:
    """The customer's row, locked until the transaction ends (PostgreSQL); 404 if missing.

    SQLite needs no row lock: every writing transaction there holds the database lock.
    """
    query = _LOCK if connection.dialect.name == "postgresql" else _READ
    row = connection.execute(query, {"id": customer_id}).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return row


def balance(connection: Connection, customer_id: str) -> Decimal:
    """The customer's available credit: the balance left by the latest entry."""
    found = connection.execute(_BALANCE, {"customer": customer_id}).scalar()
    return ZERO if found is None else found


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    amount: Decimal
    balance_after: Decimal
    note: str


def append(
    connection: Connection,
    customer_id: str,
    kind: str,
    amount: Decimal,
    now: dt.datetime,
    *,
    commitment_id: str | None = None,
    reference: str | None = None,
    period_start: dt.datetime | None = None,
    note: str = "",
) -> Entry:
    """Record one movement; the caller holds the customer's lock."""
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
    table = table_of(CreditEntry)
    query = select(table).where(table.c.customer_id == customer_id).order_by(table.c.id)
    return list(connection.execute(query))
