"""Credit notes as records: numbering and writing one, reading an invoice's notes.

A credit note is written once, numbered gaplessly in its own series (`CN-000001`, the same
counter table as invoices), and never changed: triggers refuse any update or delete, and a
line beyond the count it was written with (docs/invoicing.md, "Credit notes"). What a note
may credit, and what it does with the money, is decided by billing/corrections.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, insert, select

from billing.db import table_of
from billing.invoicing.models import CreditNote, CreditNoteLine, CreditNoteOutcome
from billing.invoicing.numbers import display_number, next_number
from billing.money import EXACT, ZERO

SERIES = "CN"
_NOTES = table_of(CreditNote)
_LINES = table_of(CreditNoteLine)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteLineIn:
    """One line of a note: what it credits from invoice line `invoice_line` (a position),
    in units (`quantity`, when the note re-prices a quantity) and money (`amount`, positive,
    rounded to the billing unit)."""

    invoice_line: int
    description: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteRecord:
    """A stored credit note with its lines."""

    id: str
    number: str
    invoice_id: str
    customer_id: str
    currency: str
    reason: str
    outcome: CreditNoteOutcome
    total: Decimal
    issued_at: dt.datetime
    issued_by: str
    lines: tuple[NoteLineIn, ...]


def write_note(
    connection: Connection,
    *,
    invoice_id: str,
    customer_id: str,
    currency: str,
    reason: str,
    outcome: CreditNoteOutcome,
    lines: Sequence[NoteLineIn],
    actor: str,
    now: dt.datetime,
) -> NoteRecord:
    """Number and write a credit note in the caller's transaction; its total is the sum of
    its lines."""
    total = EXACT.plus(sum((line.amount for line in lines), ZERO))
    note_id = "cn_" + secrets.token_hex(8)
    number = next_number(connection, SERIES, customer_id=customer_id, document_id=note_id)
    connection.execute(
        insert(_NOTES),
        {
            "id": note_id,
            "series": SERIES,
            "number": number,
            "invoice_id": invoice_id,
            "customer_id": customer_id,
            "currency": currency,
            "reason": reason,
            "outcome": outcome,
            "total": total,
            "line_count": len(lines),
            "issued_at": now,
            "issued_by": actor,
        },
    )
    connection.execute(
        insert(_LINES),
        [
            {
                "customer_id": customer_id,
                "credit_note_id": note_id,
                "position": position,
                "invoice_line": line.invoice_line,
                "description": line.description,
                "quantity": line.quantity,
                "amount": line.amount,
            }
            for position, line in enumerate(lines, start=1)
        ],
    )
    return NoteRecord(
        id=note_id,
        number=display_number(SERIES, number),
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=currency,
        reason=reason,
        outcome=outcome,
        total=total,
        issued_at=now,
        issued_by=actor,
        lines=tuple(lines),
    )


def notes_of(connection: Connection, invoice_ids: Sequence[str]) -> dict[str, list[NoteRecord]]:
    """The credit notes of these invoices, by invoice id, in number order."""
    if not invoice_ids:
        return {}
    rows = list(
        connection.execute(
            select(_NOTES)
            .where(_NOTES.c.invoice_id.in_(list(invoice_ids)))
            .order_by(_NOTES.c.number)
        )
    )
    lines: dict[str, list[NoteLineIn]] = defaultdict(list)
    if rows:
        for line in connection.execute(
            select(_LINES)
            .where(_LINES.c.credit_note_id.in_([row.id for row in rows]))
            .order_by(_LINES.c.credit_note_id, _LINES.c.position)
        ):
            lines[line.credit_note_id].append(
                NoteLineIn(
                    invoice_line=line.invoice_line,
                    description=line.description,
                    amount=line.amount,
                    quantity=line.quantity,
                )
            )
    found: dict[str, list[NoteRecord]] = defaultdict(list)
    for row in rows:
        found[row.invoice_id].append(
            NoteRecord(
                id=row.id,
                number=display_number(row.series, row.number),
                invoice_id=row.invoice_id,
                customer_id=row.customer_id,
                currency=row.currency,
                reason=row.reason,
                outcome=CreditNoteOutcome(row.outcome),
                total=row.total,
                issued_at=row.issued_at,
                issued_by=row.issued_by,
                lines=tuple(lines[row.id]),
            )
        )
    return dict(found)


def resolve_note_id(connection: Connection, reference: str) -> str | None:
    """Our id of the note `reference` names: its id (cn_...) or its number (CN-000001)."""
    if reference.startswith(f"{SERIES}-") and reference[len(SERIES) + 1 :].isdigit():
        query = select(_NOTES.c.id).where(
            _NOTES.c.series == SERIES, _NOTES.c.number == int(reference[len(SERIES) + 1 :])
        )
    else:
        query = select(_NOTES.c.id).where(_NOTES.c.id == reference)
    found = connection.execute(query).scalar()
    return None if found is None else str(found)
