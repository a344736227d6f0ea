"""The credit ledger: append-only, one row per movement of a customer's available credit.

Every entry carries its signed `amount` and the `balance_after` it leaves, so the balance
is always the sum of the amounts (a test checks it after every operation). Callers hold
the customer's row lock (`customers.service.lock_customer`) for the whole transaction, so
two movements of one customer's credit never interleave. Amounts are in the catalogue's
currency, major units, rounded to its billing unit (docs/money.md).

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
    reversal       credits drawn by an invoice that was voided, given back (positive), to
                   the pools they were drawn from.
    credit_note    a credit note's amount added to the balance (positive).
    withdrawal     commitment credit taken back when its commitment is cancelled (negative).

Two pools make up the balance. Credit from credit notes (`credit_note_balance_after`) is
money the customer is owed: it never expires. Everything else is commitment credit, which
expires with its term. A draw takes commitment credit first, then credit-note credit (the
credit that would expire goes first); expiry and withdrawal take commitment credit only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from billing.credits.models import CreditEntry, EntryKind
from billing.db import one_of, recalled, remember, table_of
from billing.money import EXACT, ZERO

# NOTE: statements built once: a period close runs them for every customer.
_ENTRIES = table_of(CreditEntry)
_BALANCE = (
    select(_ENTRIES.c.balance_after, _ENTRIES.c.credit_note_balance_after)
    .where(_ENTRIES.c.customer_id == bindparam("customer"))
    .order_by(_ENTRIES.c.id.desc())
    .limit(1)
)
_APPEND = insert(_ENTRIES).returning(_ENTRIES.c.id)


@dataclass(frozen=True, slots=True)
class Balance:
    """A customer's available credit (major units) and the part of it from credit notes."""

    total: Decimal
    from_credit_notes: Decimal

    @property
    def commitment(self) -> Decimal:
        """The part that is commitment credit (it expires with its term)."""
        return EXACT.subtract(self.total, self.from_credit_notes)


_WITH_ENTRIES = "credits.ledger.without_entries"


def cache_without_entries(connection: Connection, customer_ids: list[str]) -> None:
    """Read once, for the rest of the caller's transaction, which of `customer_ids` have no
    ledger entry at all: their balance is then zero without a statement each (the close
    draws credit for every invoice, and most customers never had any). The caller holds
    these customers' locks (customers.service.lock_customers), which every writer of
    their ledger takes first, so no entry appears meanwhile but through `append`, which
    drops the customer from the set."""
    found = select(_ENTRIES.c.customer_id).distinct()
    found = found.where(one_of(connection, _ENTRIES.c.customer_id, customer_ids))
    having = set(connection.execute(found).scalars())
    empty = {customer for customer in customer_ids if customer not in having}
    remember(connection, _WITH_ENTRIES, empty)


def _known_empty(connection: Connection, customer_id: str) -> bool:
    empty = recalled(connection, _WITH_ENTRIES)
    return empty is not None and customer_id in empty


def balances(connection: Connection, customer_id: str) -> Balance:
    """The customer's balance by pool, as left by the latest entry (zero without a read
    for a customer `cache_without_entries` found without entries in this transaction)."""
    if _known_empty(connection, customer_id):
        return Balance(ZERO, ZERO)
    row = connection.execute(_BALANCE, {"customer": customer_id}).first()
    return Balance(ZERO, ZERO) if row is None else Balance(row[0], row[1])


def balance(connection: Connection, customer_id: str) -> Decimal:
    """The customer's available credit: the balance left by the latest entry."""
    return balances(connection, customer_id).total


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry just written: its kind, signed amount and balance after (major
    units), its note, and its row id."""

    kind: EntryKind
    amount: Decimal
    balance_after: Decimal
    note: str
    id: int | None = None


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
    to_credit_notes: Decimal = ZERO,
) -> Entry:
    """Record one movement (signed, in the currency's major units); the caller holds the
    customer's lock. The pool it moves follows from its kind (see the module docstring); a
    reversal says with `to_credit_notes` how much of it goes back to credit-note credit.
    Raises ValueError if a pool would go negative."""
    kind = EntryKind(kind)
    before = balances(connection, customer_id)
    after = EXACT.add(before.total, amount)
    notes = before.from_credit_notes
    if kind is EntryKind.CREDIT_NOTE:
        notes = EXACT.add(notes, amount)
    elif kind is EntryKind.DRAW:
        from_notes = max(EXACT.subtract(-amount, before.commitment), ZERO)
        notes = EXACT.subtract(notes, from_notes)
    elif kind is EntryKind.REVERSAL:
        notes = EXACT.add(notes, to_credit_notes)
    if after < 0 or notes < 0 or notes > after:
        raise ValueError(
            f"credit balance of {customer_id} would leave {after} with {notes} from credit notes"
        )
    empty = recalled(connection, _WITH_ENTRIES)
    if empty is not None:
        empty.discard(customer_id)  # it has one now
    entry_id = connection.execute(
        _APPEND,
        {
            "customer_id": customer_id,
            "commitment_id": commitment_id,
            "kind": kind,
            "amount": amount,
            "balance_after": after,
            "credit_note_balance_after": notes,
            "reference": reference,
            "period_start": period_start,
            "note": note,
            "created_at": now,
        },
    ).scalar_one()
    return Entry(kind, amount, after, note, int(entry_id))


def entries(connection: Connection, customer_id: str) -> list[Any]:
    """The customer's ledger, oldest first."""
    query = select(_ENTRIES).where(_ENTRIES.c.customer_id == customer_id).order_by(_ENTRIES.c.id)
    return list(connection.execute(query))


def drawn_by(connection: Connection, customer_id: str, reference: str) -> Balance:
    """What an invoice (`reference`) drew from the balance: in all, and from credit notes."""
    draws = list(
        connection.execute(
            select(_ENTRIES.c.id, _ENTRIES.c.amount, _ENTRIES.c.credit_note_balance_after).where(
                _ENTRIES.c.customer_id == customer_id,
                _ENTRIES.c.reference == reference,
                _ENTRIES.c.kind == EntryKind.DRAW,
            )
        )
    )
    total = from_notes = ZERO
    for draw in draws:
        before = connection.execute(
            select(_ENTRIES.c.credit_note_balance_after)
            .where(_ENTRIES.c.customer_id == customer_id, _ENTRIES.c.id < draw.id)
            .order_by(_ENTRIES.c.id.desc())
            .limit(1)
        ).scalar()
        total = EXACT.add(total, -draw.amount)
        taken = EXACT.subtract(before or ZERO, draw.credit_note_balance_after)
        from_notes = EXACT.add(from_notes, taken)
    return Balance(total, from_notes)
