"""The catalogue as the public sees it (`GET /v1/products`): money and quantities as strings."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from billing.catalog.models import Catalog
from billing.money import format_exact, format_quantity
from billing.pricing import Bracket, CommitmentSchedule, PricePlan
from billing.public import BoundText, Day, MoneyText, PercentText, PublicModel, QuantityText


class TierPublic(PublicModel):
    """One tier of a price table: `from` exclusive, `up_to` inclusive ("inf" for the last)."""

    from_: QuantityText = Field(alias="from")
    up_to: BoundText
    unit_price: MoneyText
    flat_fee: MoneyText


class SourcePublic(PublicModel):
    """A kind of metered event a product counts (docs/tier-files.md, "Sources")."""

    event: str = Field(description="events sent with this `event` (or `product`) name")
    multiplier: QuantityText = Field(description="each unit counts this many times, exactly")


class ProductPublic(PublicModel):
    key: str
    name: str
    unit: str
    currency: str
    model: str = Field(description="graduated | volume | package")
    package_size: int | None
    effective_from: Day
    next_version_from: Day | None
    free_allowance: BoundText
    tiers: list[TierPublic]
    sources: list[SourcePublic] = Field(
        description='what it counts; by default [{"event": "<key>", "multiplier": "1"}]'
    )
    where: dict[str, list[str]] = Field(
        description="only events whose properties have one of these values; {} for all"
    )
    aggregation: str = Field(description="sum | count | max | unique_count | latest")
    unique_property: str | None = Field(description="unique_count: the property counted")
    dimensions: list[str] = Field(description="properties its lines are broken down by")
    max_dimension_values: int = Field(
        description='distinct breakdown values kept per customer and period; beyond: "(other)"'
    )


class BracketPublic(PublicModel):
    years: int
    min_credit: MoneyText
    discount_percent: PercentText


class CommitmentSchedulePublic(PublicModel):
    currency: str
    min_purchase: MoneyText
    release: str = Field(description="monthly | upfront")
    rollover_percent: PercentText
    topup_months: int
    brackets: list[BracketPublic]


class UpcomingProductPublic(PublicModel):
    """A product whose first price version starts after `at`: its events are refused
    (no_price_in_force) and quotes for it too, until `effective_from`."""

    key: str
    name: str
    unit: str
    effective_from: Day


class CatalogPublic(PublicModel):
    at: Day
    currency: str
    products: list[ProductPublic]
    upcoming: list[UpcomingProductPublic] = Field(
        description="products without a price in force yet, with the day their first starts"
    )
    commitments: CommitmentSchedulePublic | None


def catalog_public(catalog: Catalog, day: dt.date) -> CatalogPublic:
    """Products in force on `day` with their tier tables, the products whose first price
    version starts later (`upcoming`), and the commitment brackets."""
    products = []
    for product, version in catalog.in_force(day).values():
        later = [v.effective_from for v in product.versions if v.effective_from > day]
        products.append(
            ProductPublic(
                key=product.key,
                name=product.name,
                unit=product.unit,
                currency=product.currency,
                model=product.model.value,
                package_size=product.package_size,
                effective_from=version.effective_from.isoformat(),
                next_version_from=later[0].isoformat() if later else None,
                free_allowance=_allowance(version.plan),
                tiers=tiers_public(version.plan),
                sources=[
                    SourcePublic(event=s.event, multiplier=format_quantity(s.multiplier))
                    for s in product.sources
                ],
                where={name: sorted(values) for name, values in product.where.items()},
                aggregation=product.aggregation,
                unique_property=product.unique_property,
                dimensions=list(product.dimensions),
                max_dimension_values=product.max_dimension_values,
            )
        )
    in_force = {p.key for p in products}
    upcoming = [
        UpcomingProductPublic(
            key=product.key,
            name=product.name,
            unit=product.unit,
            effective_from=product.versions[0].effective_from.isoformat(),
        )
        for product in catalog.products.values()
        if product.key not in in_force
    ]
    return CatalogPublic(
        at=day.isoformat(),
        currency=catalog.currency,
        products=products,
        upcoming=upcoming,
        commitments=schedule_public(catalog.schedule) if catalog.schedule else None,
    )


def tiers_public(plan: PricePlan) -> list[TierPublic]:
    """A tier table: `from` exclusive, `up_to` inclusive ("inf" for the last)."""
    return [
        TierPublic(
            from_=format_quantity(lower),
            up_to="inf" if tier.up_to is None else format_quantity(tier.up_to),
            unit_price=format_quantity(tier.unit_price),
            flat_fee=format_exact(tier.flat_fee, plan.currency),
        )
        for lower, tier in zip(plan.lowers, plan.tiers, strict=True)
    ]


def bracket_public(bracket: Bracket, currency: str) -> BracketPublic:
    """A bracket: from which annual credit, for which term, what discount."""
    return BracketPublic(
        years=bracket.years,
        min_credit=format_exact(bracket.min_credit, currency),
        discount_percent=format_quantity(bracket.discount_percent),
    )


def schedule_public(schedule: CommitmentSchedule) -> CommitmentSchedulePublic:
    """The commitment schedule of discounts.toml."""
    currency = schedule.currency
    return CommitmentSchedulePublic(
        currency=currency,
        min_purchase=format_exact(schedule.min_purchase, currency),
        release=schedule.release.value,
        rollover_percent=format_quantity(schedule.rollover_percent),
        topup_months=schedule.topup_months,
        brackets=[
            bracket_public(b, currency)
            for years in schedule.terms
            for b in schedule.brackets_for(years)
        ],
    )


def _allowance(plan: PricePlan) -> str:
    free = plan.free_allowance
    return "inf" if free is None else format_quantity(free)
