"""The loaded catalogue: products with dated versions, and the commitment schedule."""

from __future__ import annotations

import datetime as dt
import json
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from billing.errors import NoPriceInForce, UnknownProduct
from billing.pricing.commitments import CommitmentSchedule
from billing.pricing.plan import Model, PricePlan


@dataclass(frozen=True, slots=True)
class ProductVersion:
    effective_from: dt.date
    plan: PricePlan


NONE = "(none)"  # the breakdown value of an event without the property
OTHER = "(other)"  # every value beyond max_dimension_values


@dataclass(frozen=True, slots=True)
class Source:
    """A kind of metered event a product counts (docs/tier-files.md, "Sources"): events
    named `event`, each unit counted `multiplier` times (exactly)."""

    event: str
    multiplier: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class Product:
    """A priced product. It counts the events its `sources` name (by default events sent
    with `product = key`) that pass its `where` filter: for each property named, the
    event's value is one of those listed (text; a whole number as its digits)."""

    key: str
    name: str
    unit: str
    currency: str
    model: Model
    package_size: int | None
    versions: tuple[ProductVersion, ...]
    sources: tuple[Source, ...] = ()
    where: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # the properties its lines are broken down by, and how many distinct values are kept
    # per customer, product and period before the rest folds into OTHER
    dimensions: tuple[str, ...] = ()
    max_dimension_values: int = 1000
    # how a period's events make its quantity (docs/tier-files.md, "Aggregations")
    aggregation: str = "sum"  # sum | count | max | unique_count | latest
    unique_property: str | None = None
    _dates: tuple[dt.date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dates", tuple(v.effective_from for v in self.versions))
        if not self.sources:
            object.__setattr__(self, "sources", (Source(self.key),))

    def breakdown_key(self, properties: Mapping[str, str] | None) -> str:
        """The breakdown an event belongs to: its dimension values as compact JSON, names
        in the product's order, NONE for a property it lacks ("" for a product without
        dimensions)."""
        if not self.dimensions:
            return ""
        values = properties or {}
        return json.dumps(
            {name: values.get(name, NONE) for name in self.dimensions},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def selects(self, properties: Mapping[str, str] | None) -> bool:
        """Whether an event with these properties passes the product's `where` filter."""
        if not self.where:
            return True
        if properties is None:
            return False
        return all(properties.get(name) in allowed for name, allowed in self.where.items())

    def version_at(self, day: dt.date) -> ProductVersion | None:
        """The version in force on `day`: the latest with effective_from <= day."""
        index = bisect_right(self._dates, day)
        return self.versions[index - 1] if index else None


@dataclass(frozen=True, slots=True)
class Override:
    """A customer's negotiated tier table for one product (docs/pricing-changes.md,
    "Customer overrides"): in force from `effective_from` (inclusive) until `effective_to`
    (exclusive; None: open-ended), in place of the product's versions; from the override's
    file `file` (`overrides/<customer>.toml`)."""

    customer: str
    product: str
    effective_from: dt.date
    effective_to: dt.date | None
    plan: PricePlan
    file: str = ""

    def in_force(self, day: dt.date) -> bool:
        """Whether the override prices `day`."""
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


@dataclass(frozen=True, slots=True)
class LatePolicy:
    """Events for a closed period: `amend` accepts them until `window` after the period's
    end (billed as an adjustment on the next invoice); otherwise they are `period_closed`."""

    amend: bool = False
    window: dt.timedelta = dt.timedelta(0)

    def accepts(self, period_end: dt.datetime, now: dt.datetime) -> bool:
        """Whether an event for a closed period ending at `period_end` is taken at `now`."""
        return self.amend and now < period_end + self.window


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything priced, as loaded from one tier directory."""

    directory: str
    currency: str
    products: Mapping[str, Product]
    schedule: CommitmentSchedule | None
    late_usage: LatePolicy = LatePolicy()
    # SHA-256 of the tier files (loader.catalog_digest); each invoice records the one it
    # was priced with
    digest: str = ""
    # customer id -> product key -> that customer's overrides of it, by effective_from
    overrides: Mapping[str, Mapping[str, tuple[Override, ...]]] = field(default_factory=dict)
    # event name -> (product key, multiplier) of every product counting it, in key order
    _by_event: Mapping[str, tuple[tuple[Product, Decimal], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_event: dict[str, list[tuple[Product, Decimal]]] = {}
        for key in sorted(self.products):
            product = self.products[key]
            for source in product.sources:
                by_event.setdefault(source.event, []).append((product, source.multiplier))
        object.__setattr__(self, "_by_event", {k: tuple(v) for k, v in by_event.items()})

    def counted_by(
        self, event: str, properties: Mapping[str, str] | None
    ) -> list[tuple[str, Decimal]]:
        """The products an event named `event` with `properties` counts toward, each with
        its multiplier, in key order (docs/tier-files.md, "Sources"); empty when none."""
        return [
            (product.key, multiplier)
            for product, multiplier in self._by_event.get(event, ())
            if product.selects(properties)
        ]

    def override_at(self, customer: str | None, product: str, day: dt.date) -> Override | None:
        """The customer's override of `product` in force on `day`, if any (the latest
        starting on or before it; overrides of one product never overlap)."""
        if customer is None or not self.overrides:
            return None
        for override in reversed(self.overrides.get(customer, {}).get(product, ())):
            if override.in_force(day):
                return override
        return None

    def plan_at(
        self, product: str, day: dt.date, *, field: str = "at", customer: str | None = None
    ) -> PricePlan:
        """The price plan of `product` in force on `day` (docs/tier-files.md, "Versions"),
        for `customer` when given (their override in force that day wins: docs/
        pricing-changes.md, "Customer overrides").

        The rule, everywhere (quotes, caps, ingestion, the close): the latest version whose
        `effective_from` is on or before `day`. Before a product's first version it has no
        price: NoPriceInForce (UnknownProduct for a key not in the catalogue), naming `field`.
        """
        found = self.products.get(product)
        if found is None:
            known = ", ".join(self.products)
            raise UnknownProduct(f"unknown product {product!r}; products: {known}", field=field)
        override = self.override_at(customer, product, day)
        if override is not None:
            return override.plan
        version = found.version_at(day)
        if version is None:
            first = found.versions[0].effective_from
            raise NoPriceInForce(
                f"{product} has no price in force on {day}: its first version starts {first}",
                field=field,
            )
        return version.plan

    def first_price_day(self, product: str) -> dt.date:
        """The day `product`'s first price version starts (UTC); events and quotes dated
        before it are refused (no_price_in_force). KeyError for a key not in the catalogue."""
        return self.products[product].versions[0].effective_from

    def plan_for_period(
        self, product: str, start: dt.datetime, customer: str | None = None
    ) -> PricePlan:
        """The plan a billing period starting at `start` is priced at: the version in force on
        its first day (for `customer` when given, their override in force that day wins); a
        product whose first version starts within the period (events before that day are
        refused) is priced at that first version for the whole period. KeyError for a key
        not in the catalogue.
        """
        found = self.products[product]
        override = self.override_at(customer, product, start.date())
        if override is not None:
            return override.plan
        version = found.version_at(start.date())
        return (version or found.versions[0]).plan

    def in_force(self, day: dt.date) -> dict[str, tuple[Product, ProductVersion]]:
        """Products with a version in force on `day`, with that version."""
        found = {}
        for key, product in self.products.items():
            version = product.version_at(day)
            if version is not None:
                found[key] = (product, version)
        return found
