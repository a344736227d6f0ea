"""Metering answers: what an ingestion did (`POST /v1/events`) and a customer's usage in one
period (`GET /v1/customers/{id}/usage`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from pydantic import Field

from billing.customers.periods import Period
from billing.money import format_quantity
from billing.public import MonthLabel, PublicModel, QuantityText, Timestamp


class UsageRecord(Protocol):
    """One product's running totals in a period."""

    @property
    def product(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def events(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def rejected(self) -> int: ...


class RejectedEventPublic(PublicModel):
    index: int = Field(description="the event's position in the batch, from 0")
    id: str | None
    error: str = Field(
        description="unknown_customer | unknown_product | period_closed | timestamp_in_future"
        " | conflict | invalid: <field>: <reason>"
    )


class IngestPublic(PublicModel):
    """What a batch did; the ingest path renders it by hand (metering.service), for speed."""

    accepted: int = Field(
        description="events stored and counted by at least one product (an event counted by "
        "several products is one event)"
    )
    duplicates: int = Field(description="events seen before with the same content")
    over_limit: list[str] = Field(
        description="ids kept but refused by a product's cap: never billed by that product"
    )
    over_limit_products: dict[str, list[str]] = Field(
        description="each over_limit id with the products whose cap refused it; an event "
        "counted by several products may be refused by some and billed by the others"
    )
    rejected: list[RejectedEventPublic]


class ProductUsagePublic(PublicModel):
    product: str
    quantity: QuantityText = Field(description="the aggregated quantity accepted")
    events: int
    duplicates: int
    rejected: int


class UsagePublic(PublicModel):
    customer: str
    period: MonthLabel
    start: Timestamp
    end: Timestamp
    products: list[ProductUsagePublic]
    total_quantity: QuantityText


def usage_public(customer_id: str, period: Period, rows: Sequence[UsageRecord]) -> UsagePublic:
    """The running totals of one customer's period, per product and in total."""
    return UsagePublic(
        customer=customer_id,
        period=period.label,
        start=period.start.isoformat(),
        end=period.end.isoformat(),
        products=[
            ProductUsagePublic(
                product=row.product,
                quantity=format_quantity(row.quantity),
                events=row.events,
                duplicates=row.duplicates,
                rejected=row.rejected,
            )
            for row in rows
        ],
        total_quantity=format_quantity(sum((r.quantity for r in rows), Decimal(0))),
    )
