"""The loaded catalogue: products with dated versions, and the commitment schedule."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from billing.errors import NoPriceInForce, UnknownProduct
from billing.pricing.commitments import CommitmentSchedule
from billing.pricing.plan import Model, PricePlan


@dataclass(frozen=True, slots=True)
class ProductVersion:
    effective_from: dt.date
    plan: PricePlan


@dataclass(frozen=True, slots=True)
class Product:
    key: str
    name: str
    unit: str
    currency: str
    model: Model
    package_size: int | None
    versions: tuple[ProductVersion, ...]
    _dates: tuple[dt.date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dates", tuple(v.effective_from for v in self.versions))

    def version_at(self, day: dt.date) -> ProductVersion | None:
        """The version in force on `day`: the latest with effective_from <= day."""
        index = bisect_right(self._dates, day)
        return self.versions[index - 1] if index else None


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

    def plan_at(self, product: str, day: dt.date, *, field: str = "at") -> PricePlan:
        """The price plan of `product` in force on `day` (docs/tier-files.md, "Versions").

        The rule, everywhere (quotes, caps, ingestion, the close): the latest version whose
        `effective_from` is on or before `day`. Before a product's first version it has no
        price: NoPriceInForce (UnknownProduct for a key not in the catalogue), naming `field`.
        """
        found = self.products.get(product)
        if found is None:
            known = ", ".join(self.products)
            raise UnknownProduct(f"unknown product {product!r}; products: {known}", field=field)
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

    def plan_for_period(self, product: str, start: dt.datetime) -> PricePlan:
        """The plan a billing period starting at `start` is priced at: the version in force on
        its first day; a product whose first version starts within the period (events before
        that day are refused) is priced at that first version for the whole period.
        """
        found = self.products[product]
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
