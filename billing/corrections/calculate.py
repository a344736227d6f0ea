"""What a credit note credits, line by line. Pure: no I/O (docs/invoicing.md, "Credit notes").

An invoice line can be credited until its net amount is used up: a usage line's net is its
amount less its discount line (and, on a re-issued invoice, less what other invoices billed
of its period: its negative adjustment line; such a line is credited by amount only); a
commitment line's is its amount (less, for a running
commitment, the credit already used: see corrections/credit_notes.py). A request credits a
line by `amount` (money), by `quantity` (units fewer: the line re-priced by the pricing core
with `quantity` fewer units than it has left, at the invoice's plan and discount, and the
exact difference of the two rounded line totals credited), or, with neither, all that is
left of it. Every amount is rounded to the currency's billing unit, as invoice lines are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.caps.quota import line_total
from billing.errors import CreditExceedsInvoice, InvalidAmount, InvalidCreditNoteLine
from billing.invoicing.credit_notes import NoteLineIn
from billing.invoicing.models import LineKind
from billing.money import (
    EXACT,
    ZERO,
    billing_digits,
    format_amount,
    fraction_digits,
    group_quantity,
)
from billing.pricing.plan import PricePlan


@dataclass(frozen=True, slots=True, kw_only=True)
class LineRequest:
    """One line of a credit note request: the invoice line's position and how much of it."""

    line: int
    amount: Decimal | None = None
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLineView:
    """An issued invoice line, as stored."""

    position: int
    kind: str
    product: str | None
    description: str
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Creditable:
    """What is left to credit of one invoice line: money and (usage lines) units."""

    position: int
    kind: str
    product: str | None
    description: str
    amount_left: Decimal
    quantity_left: Decimal
    # False for a usage line part of whose units other invoices billed (a re-issue's
    # negative adjustment): re-pricing a quantity of it is not what this invoice charged
    by_quantity: bool = True


def creditable_lines(
    lines: Sequence[InvoiceLineView], credited: Iterable[NoteLineIn]
) -> dict[int, Creditable]:
    """The creditable lines of an invoice (usage and commitment lines) and what is left of
    each after the notes already issued (`credited`: their lines)."""
    net: dict[int, Decimal] = {}
    elsewhere: set[int] = set()
    found: dict[int, InvoiceLineView] = {}
    last_usage: dict[str | None, int] = {}
    for line in lines:
        if line.kind in (LineKind.USAGE, LineKind.COMMITMENT):
            found[line.position] = line
            net[line.position] = line.amount
            if line.kind == LineKind.USAGE:
                last_usage[line.product] = line.position
        elif line.kind == LineKind.DISCOUNT and line.product in last_usage:
            position = last_usage[line.product]
            net[position] = EXACT.add(net[position], line.amount)
        elif line.kind == LineKind.ADJUSTMENT and line.quantity < 0 and line.product in last_usage:
            # a replacement's units billed elsewhere: its usage line charged this much less
            position = last_usage[line.product]
            net[position] = EXACT.add(net[position], line.amount)
            elsewhere.add(position)
    amount_used: dict[int, Decimal] = {}
    quantity_used: dict[int, Decimal] = {}
    for note_line in credited:
        position = note_line.invoice_line
        amount_used[position] = EXACT.add(amount_used.get(position, ZERO), note_line.amount)
        if note_line.quantity is not None:
            quantity_used[position] = EXACT.add(
                quantity_used.get(position, ZERO), note_line.quantity
            )
    return {
        position: Creditable(
            position=position,
            kind=line.kind,
            product=line.product,
            description=line.description,
            amount_left=EXACT.subtract(net[position], amount_used.get(position, ZERO)),
            quantity_left=EXACT.subtract(line.quantity, quantity_used.get(position, ZERO)),
            by_quantity=position not in elsewhere,
        )
        for position, line in found.items()
    }


def credit_lines(
    requests: Sequence[LineRequest],
    lines: Mapping[int, Creditable],
    *,
    plans: Mapping[str, PricePlan],
    discount_percent: Decimal,
    currency: str,
    number: str,
) -> list[NoteLineIn]:
    """The note's lines for `requests` against what is left of `lines` (by position).

    `plans` prices usage lines by product (the plan of the invoice's period); `number` names
    the invoice in messages. Raises InvalidCreditNoteLine (unknown or repeated line, both an
    amount and a quantity, a quantity on a commitment line), InvalidAmount (not positive, or
    more decimals than the currency has) and CreditExceedsInvoice (more than is left).
    """
    made: list[NoteLineIn] = []
    seen: set[int] = set()
    known = ", ".join(str(p) for p in sorted(lines)) or "none"
    for index, request in enumerate(requests):
        field = f"lines.{index}"
        line = lines.get(request.line)
        if line is None:
            raise InvalidCreditNoteLine(
                f"{number} has no creditable line {request.line} (creditable lines: {known})",
                field=f"{field}.line",
            )
        if request.line in seen:
            raise InvalidCreditNoteLine(
                f"line {request.line} appears twice: credit it once", field=f"{field}.line"
            )
        seen.add(request.line)
        if request.amount is not None and request.quantity is not None:
            raise InvalidCreditNoteLine(
                "give an amount or a quantity, not both", field=f"{field}.quantity"
            )
        if request.quantity is not None:
            amount = _by_quantity(request.quantity, line, plans, discount_percent, currency, field)
            quantity: Decimal | None = request.quantity
            description = f"{line.description}: {group_quantity(request.quantity)} fewer"
        elif request.amount is not None:
            amount, quantity = request.amount, None
            _check_amount(amount, currency, f"{field}.amount")
            description = f"{line.description}: {format_amount(amount, currency)} credited"
        else:
            amount, quantity = line.amount_left, None
            description = f"{line.description}: credited in full"
        if amount <= 0:
            raise CreditExceedsInvoice(
                f"line {line.position} has nothing left to credit", field=f"{field}.line"
            )
        if amount > line.amount_left:
            raise CreditExceedsInvoice(
                f"line {line.position} has {format_amount(line.amount_left, currency)} "
                f"{currency} left to credit; this asks for {format_amount(amount, currency)}",
                field=f"{field}.amount" if request.amount is not None else f"{field}.quantity",
            )
        made.append(
            NoteLineIn(
                invoice_line=line.position,
                description=description[:500],
                amount=amount,
                quantity=quantity,
            )
        )
    if not made:
        raise InvalidCreditNoteLine("a credit note needs at least one line", field="lines")
    return made


def _check_amount(amount: Decimal, currency: str, field: str) -> None:
    if amount <= 0:
        raise InvalidAmount(f"a credited amount is more than 0, got {amount:f}", field=field)
    digits = billing_digits(currency)
    if fraction_digits(amount) > digits:
        raise InvalidAmount(
            f"{currency} amounts have at most {digits} decimal places, got {amount:f}", field=field
        )


def _by_quantity(
    quantity: Decimal,
    line: Creditable,
    plans: Mapping[str, PricePlan],
    discount_percent: Decimal,
    currency: str,
    field: str,
) -> Decimal:
    if line.kind != LineKind.USAGE or line.product is None:
        raise InvalidCreditNoteLine(
            f"line {line.position} is not a usage line: credit it by amount",
            field=f"{field}.quantity",
        )
    if not line.by_quantity:
        raise InvalidCreditNoteLine(
            f"line {line.position}: other invoices billed part of its units (late usage): "
            "credit it by amount",
            field=f"{field}.quantity",
        )
    if quantity <= 0 or quantity > line.quantity_left:
        raise CreditExceedsInvoice(
            f"line {line.position} has {group_quantity(line.quantity_left)} units left to "
            f"credit; this asks for {group_quantity(quantity)}",
            field=f"{field}.quantity",
        )
    plan = plans[line.product]
    before = line_total(plan, line.quantity_left, discount_percent)
    after = line_total(plan, EXACT.subtract(line.quantity_left, quantity), discount_percent)
    return EXACT.subtract(before, after)
