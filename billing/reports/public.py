"""Finance report answers: the invoice listing (JSON rows and CSV columns are one shape),
revenue per group, and the caps hit. Every figure is an exact string."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sized
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import Field

from billing.money import format_exact
from billing.public import Day, MoneyText, PublicModel, QuantityText, Timestamp


class RevenueRecord(Protocol):
    """A group's sums (reports.service.Revenue)."""

    @property
    def list_amount(self) -> Decimal: ...
    @property
    def discounts(self) -> Decimal: ...
    @property
    def adjustments(self) -> Decimal: ...
    @property
    def commitments(self) -> Decimal: ...
    @property
    def credits_applied(self) -> Decimal: ...
    @property
    def amount_due(self) -> Decimal: ...
    @property
    def credited(self) -> Decimal: ...
    @property
    def net(self) -> Decimal: ...
    @property
    def invoices(self) -> Sized: ...


class InvoiceReportRow(PublicModel):
    """One invoice in the listing; its fields are the CSV columns, in order."""

    number: str = Field(examples=["INV-000123"])
    id: str
    customer: str
    kind: str = Field(description="usage | commitment")
    status: str = Field(description="finalized | payment_failed | paid | uncollectible | void")
    period_start: Day | Literal[""] = Field(description='"" for an invoice without a period')
    period_end: Day | Literal[""]
    currency: str
    subtotal: MoneyText
    discount_total: MoneyText
    total: MoneyText
    credits_applied: MoneyText
    amount_due: MoneyText
    credited: MoneyText = Field(description="credit notes against it, in all")
    paid_at: Timestamp | Literal[""] = Field(description='"" while unpaid')
    sync_status: str = Field(
        description="the Stripe sync state; not_synced or nothing_due before the first sync"
    )
    issued_at: Timestamp


COLUMNS = tuple(InvoiceReportRow.model_fields)


class InvoiceReportPublic(PublicModel):
    invoices: list[InvoiceReportRow] = Field(description="oldest number first")


class RevenueFiguresPublic(PublicModel):
    """One group's figures; each is a sum of invoice line amounts."""

    list_: MoneyText = Field(alias="list", description="usage lines at list price")
    discounts: MoneyText
    adjustments: MoneyText = Field(description="late usage of earlier periods")
    commitments: MoneyText = Field(description="commitment (prepaid credit) lines")
    credits_applied: MoneyText
    amount_due: MoneyText = Field(
        description="list - discounts + adjustments + commitments - credits_applied"
    )
    credited: MoneyText = Field(description="credit notes against these invoices")
    net: MoneyText = Field(description="amount_due - credited")
    invoices: int = Field(description="how many invoices the figures come from")


class GroupKey(PublicModel):
    key: str = Field(
        description="the product (or (commitments), (credits)), the customer, or the month"
    )


# NOTE: pydantic lays out inherited fields from the last base to the first: key, then figures.
class RevenueGroupPublic(RevenueFiguresPublic, GroupKey):
    """One group's key and figures."""


class RevenuePublic(PublicModel):
    """Billings (what issued invoices charge, not cash collected) per group and in total."""

    group_by: str = Field(description="product | customer | month | dimension")
    basis: str = Field(
        "service",
        description="service: invoices dated by the month their billing period starts; "
        "issued: by the month they were issued",
    )
    currency: str
    groups: list[RevenueGroupPublic] = Field(description="by key")
    total: RevenueFiguresPublic


class CapHitRow(PublicModel):
    """A customer x product pair limited by its cap in the current period."""

    customer: str
    product: str
    period_start: Day
    cap: QuantityText | Literal[""] = Field(description="the cap amount, exact")
    limit_quantity: QuantityText
    accepted_quantity: QuantityText
    over_limit_events: str = Field(pattern=r"^\d+$", description="events refused over the cap")


class CapsReportPublic(PublicModel):
    caps_hit: list[CapHitRow]


def _figures(item: RevenueRecord, currency: str) -> dict[str, object]:
    return {
        "list": format_exact(item.list_amount, currency),
        "discounts": format_exact(item.discounts, currency),
        "adjustments": format_exact(item.adjustments, currency),
        "commitments": format_exact(item.commitments, currency),
        "credits_applied": format_exact(item.credits_applied, currency),
        "amount_due": format_exact(item.amount_due, currency),
        "credited": format_exact(item.credited, currency),
        "net": format_exact(item.net, currency),
        "invoices": len(item.invoices),
    }


def revenue_public(
    group_by: str,
    currency: str,
    groups: Mapping[str, RevenueRecord],
    total: RevenueRecord,
    basis: str = "service",
) -> RevenuePublic:
    """Revenue per group and in total, as `GET /v1/reports/revenue` answers it."""
    return RevenuePublic(
        group_by=group_by,
        basis=basis,
        currency=currency,
        groups=[
            RevenueGroupPublic.model_validate({"key": key, **_figures(item, currency)})
            for key, item in groups.items()
        ],
        total=RevenueFiguresPublic.model_validate(_figures(total, currency)),
    )


def csv_lines(rows: Iterator[InvoiceReportRow]) -> Iterator[str]:
    """CSV text, a header then a line per row, produced as the rows arrive."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump())
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
