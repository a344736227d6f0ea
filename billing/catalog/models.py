"""The loaded catalogue: products with dated versions, and the commitment schedule."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

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
class Catalog:
    """Everything priced, as loaded from one tier directory."""

    directory: str
    currency: str
    products: Mapping[str, Product]
    schedule: CommitmentSchedule | None

    def in_force(self, day: dt.date) -> dict[str, tuple[Product, ProductVersion]]:
        """Products with a version in force on `day`, with that version."""
        found = {}
        for key, product in self.products.items():
            version = product.version_at(day)
            if version is not None:
                found[key] = (product, version)
        return found
