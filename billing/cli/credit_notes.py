"""`billing credit-notes`: issue a credit note against an invoice, list an invoice's notes
(docs/invoicing.md, "Credit notes")."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from pydantic_core import PydanticCustomError

from billing.cli.common import TiersOption, fail, load_tiers, open_session
from billing.corrections.calculate import LineRequest
from billing.invoicing.models import CreditNoteOutcome
from billing.money import format_amount
from billing.parsing import parse_amount, parse_quantity

app = typer.Typer(help="Credit notes: issue one against an invoice, list an invoice's.")


def _line(text: str) -> LineRequest:
    """`N` (the whole line), `N:AMOUNT` (part of its amount) or `N:qty=Q` (Q units re-priced)."""
    position, _, part = text.partition(":")
    if not position.isdigit():
        raise fail(f"--line: LINE, LINE:AMOUNT or LINE:qty=QUANTITY, got {text!r}")
    try:
        if part.startswith("qty="):
            return LineRequest(line=int(position), quantity=parse_quantity(part[4:]))
        amount: Decimal | None = parse_amount(part) if part else None
    except PydanticCustomError as error:
        raise fail(f"--line {text}: {error.message()}") from None
    return LineRequest(line=int(position), amount=amount)


@app.command("create")
def credit_notes_create(
    invoice: Annotated[str, typer.Argument(help="the invoice's number (INV-000123) or id")],
    reason: Annotated[str, typer.Option(help="why, shown to the customer")],
    line: Annotated[
        list[str],
        typer.Option(
            help="LINE (the whole line), LINE:AMOUNT or LINE:qty=QUANTITY; repeat for more"
        ),
    ],
    outcome: Annotated[
        str, typer.Option(help="reduce_due | credit_balance | refund")
    ] = CreditNoteOutcome.REDUCE_DUE.value,
    tiers: TiersOption = None,
) -> None:
    """Issue a credit note against an open or paid invoice; prints its number and total."""
    import datetime as dt

    from billing.corrections.credit_notes import create_credit_note
    from billing.invoicing.service import resolve_invoice_id

    try:
        chosen = CreditNoteOutcome(outcome)
    except ValueError:
        raise fail(f"--outcome: reduce_due, credit_balance or refund, not {outcome!r}") from None
    lines = [_line(text) for text in line]
    catalog = load_tiers(tiers)
    with open_session() as session:
        connection = session.connection()
        note = create_credit_note(
            connection,
            catalog,
            resolve_invoice_id(connection, invoice),
            reason=reason,
            lines=lines,
            outcome=chosen,
            actor="cli",
            now=dt.datetime.now(dt.UTC),
        )
    credited = format_amount(note.total, note.currency)
    typer.echo(f"{note.number}: {credited} {note.currency} credited on {invoice} ({chosen})")


@app.command("list")
def credit_notes_list(
    invoice: Annotated[str, typer.Argument(help="the invoice's number (INV-000123) or id")],
) -> None:
    """An invoice's credit notes, in number order."""
    from billing.invoicing import service as invoices
    from billing.settings import get_settings

    with open_session() as session:
        connection = session.connection()
        found = invoices.get_invoice(
            connection,
            invoices.resolve_invoice_id(connection, invoice),
            due_days=get_settings().invoice_due_days,
        )
    if not found.credit_notes:
        typer.echo(f"{found.number}: no credit notes")
        return
    for note in found.credit_notes:
        typer.echo(
            f"{note.number}  {note.issued_at[:10]}  {note.total:>12} {note.currency}  "
            f"{note.outcome:<14} {note.reason}"
        )
    typer.echo(
        f"{found.number}: credited {found.credited_total}, still owed {found.amount_remaining}"
    )
