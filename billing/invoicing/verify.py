"""Re-deriving a period invoice from what it was priced with (`billing invoices verify`;
docs/pricing-changes.md, "Verifiable invoices").

A period invoice records the SHA-256 of the tier files it was priced with and its priced
inputs: the discount, the billed quantity of each product and the prepaid credit drawn.
Verifying re-prices each product with the public quote code (pricing/quote.quote_line, the
code behind POST /v1/quote) under a tier directory, compares every usage and discount line,
the credits line and the invoice's figures, and reports the first difference.
Adjustment lines (late usage of earlier periods) are summed into the figures but not
re-derived here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.catalog import Catalog
from billing.db import table_of
from billing.invoicing.calculate import LineIn, totals
from billing.invoicing.models import Invoice, InvoiceLine, InvoiceStatus, LineKind
from billing.invoicing.numbers import display_number
from billing.invoicing.service import resolve_invoice_id
from billing.money import format_amount, format_quantity
from billing.pricing.quote import quote_line

ZERO = Decimal(0)


@dataclass(slots=True)
class Verdict:
    """The outcome: `differences` in the order found (empty: the invoice matches), the
    number of lines re-derived, and both digests (the recorded one may be None for an
    invoice issued before digests were kept: it then cannot be verified)."""

    number: str
    recorded_digest: str | None
    digest: str
    lines: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences and self.recorded_digest is not None


def verify_invoice(connection: Connection, catalog: Catalog, reference: str) -> Verdict:
    """Re-derive the invoice `reference` (its number INV-000123 or its id) under `catalog`.
    NotFound for an unknown invoice."""
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    invoice_id = resolve_invoice_id(connection, reference)
    row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).one()
    verdict = Verdict(display_number(row.series, row.number), row.catalog_digest, catalog.digest)
    if row.status == InvoiceStatus.VOID:
        verdict.differences.append(
            f"void: the invoice was voided ({row.void_reason or 'no reason given'}); its "
            "re-issue, if any, is the one that bills the period"
        )
    if row.priced_inputs is None:
        verdict.differences.append(
            "not verifiable: the invoice does not record what it was priced with (issued "
            "before invoices kept it, or not a period invoice)"
        )
        return verdict
    currency = row.currency

    def money(amount: Decimal) -> str:
        return format_amount(amount, currency)

    inputs = json.loads(row.priced_inputs)
    start = dt.datetime.fromisoformat(inputs["period_start"])
    discount = Decimal(inputs["discount_percent"])
    stored = list(
        connection.execute(
            select(lines).where(lines.c.invoice_id == invoice_id).order_by(lines.c.position)
        )
    )
    seen: set[int] = set()
    for item in inputs["usage"]:
        product, quantity = item["product"], Decimal(item["quantity"])
        if product not in catalog.products:
            verdict.differences.append(f"{product}: not in the tier files {catalog.directory}")
            continue
        plan = catalog.plan_for_period(product, start, row.customer_id)
        expected = quote_line(product, plan, quantity, discount)
        usage = [line for line in stored if line.kind == LineKind.USAGE and line.product == product]
        if len(usage) != 1:
            verdict.differences.append(f"{product}: {len(usage)} usage lines, expected 1")
            continue
        [line] = usage
        seen.add(line.position)
        verdict.lines += 1
        if line.quantity != quantity:
            verdict.differences.append(
                f"line {line.position} ({product}): quantity {format_quantity(line.quantity)}, "
                f"priced {format_quantity(quantity)}"
            )
        if line.amount != expected.subtotal:
            verdict.differences.append(
                f"line {line.position} ({product}): amount {money(line.amount)}, re-derived "
                f"{money(expected.subtotal)}"
            )
        discounts = [
            line for line in stored if line.kind == LineKind.DISCOUNT and line.product == product
        ]
        shown = sum((line.amount for line in discounts), ZERO)
        seen.update(line.position for line in discounts)
        verdict.lines += len(discounts)
        if shown != -expected.discount:
            verdict.differences.append(
                f"{product}: discount {money(shown)}, re-derived {money(-expected.discount)}"
            )
    for line in stored:
        if line.kind in (LineKind.USAGE, LineKind.DISCOUNT) and line.position not in seen:
            verdict.differences.append(
                f"line {line.position} ({line.product}): {line.kind} line not in the priced inputs"
            )
    credits = sum((line.amount for line in stored if line.kind == LineKind.CREDITS), ZERO)
    if -credits != Decimal(inputs["credits_applied"]):
        verdict.differences.append(
            f"credits line {money(credits)}, credit drawn {inputs['credits_applied']}"
        )
    figures = totals(
        [
            LineIn(
                kind=LineKind(line.kind),
                description=line.description,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                amount=line.amount,
                product=line.product,
            )
            for line in stored
        ],
        row.currency,
    )
    for name in ("subtotal", "discount_total", "total", "credits_applied", "amount_due"):
        if getattr(figures, name) != getattr(row, name):
            verdict.differences.append(
                f"{name}: {money(getattr(row, name))} on the invoice, "
                f"{money(getattr(figures, name))} as "
                "the sum of its lines"
            )
    return verdict
