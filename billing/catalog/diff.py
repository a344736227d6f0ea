"""What changed between two catalogues, and what it does to prices (DESIGN §14).

`billing tiers diff OLD_DIR NEW_DIR` loads both tier directories and prints
`diff_catalogs(old, new, at=day)`, each change as `change_as_json`. Pure: no files, no
database, no clock (the caller passes the day prices are compared on).

A changed product is priced, old against new, at representative quantities of the plans in
force on that day: every tier boundary, the middle of every bounded tier (a whole number of
units), and inside the unbounded last tier its start plus the width of the tier before it
(LONE_TIER_QUANTITY for a plan of one tier). Each figure is the exact charge rounded once,
half-up, to the currency's billing unit, as an invoice line is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.catalog.models import Catalog, Product, Source
from billing.money import (
    EXACT,
    format_exact,
    format_quantity,
    group_quantity,
    round_to_billing_unit,
)
from billing.pricing.charge import charge
from billing.pricing.commitments import Bracket, CommitmentSchedule
from billing.pricing.plan import PricePlan, Tier

PRODUCT_ADDED = "product_added"
PRODUCT_REMOVED = "product_removed"
PRODUCT_CHANGED = "product_changed"
BRACKETS_CHANGED = "brackets_changed"
CURRENCY_CHANGED = "currency_changed"
OVERRIDE_CHANGED = "override_changed"
# NOTE: a plan of one unbounded tier has no width to step by; a million units is the scale
# the shipped products are priced at.
LONE_TIER_QUANTITY = Decimal(1_000_000)
_NONE = "(none)"
_ANY = "(any)"


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One quantity (in units, as metered) priced by each side: the exact charge rounded
    half-up to the currency's billing unit (major units), None where the side has no price
    for the product on the day compared (absent, or before its first version)."""

    quantity: Decimal
    old: Decimal | None
    new: Decimal | None
    # False when the two sides price in different currencies: no delta is then given.
    comparable: bool = True

    @property
    def delta(self) -> Decimal | None:
        """new - old (major units), None unless both sides have a comparable price."""
        if self.old is None or self.new is None or not self.comparable:
            return None
        return EXACT.subtract(self.new, self.old)


@dataclass(frozen=True, slots=True)
class Change:
    """One change: `kind` (PRODUCT_ADDED, PRODUCT_REMOVED, PRODUCT_CHANGED,
    OVERRIDE_CHANGED, BRACKETS_CHANGED, CURRENCY_CHANGED), the product key (None for the
    catalogue-wide kinds), sentences saying what changed (an override's first sentence
    names its customer), and product prices old against new (for an override, the
    customer's prices; empty for the catalogue-wide kinds)."""

    kind: str
    product: str | None
    details: tuple[str, ...]
    prices: tuple[PricePoint, ...] = ()


def diff_catalogs(old: Catalog, new: Catalog, *, at: dt.date) -> list[Change]:
    """Every change from `old` to `new`, prices compared with the plans in force on `at`.

    Order: CURRENCY_CHANGED, then BRACKETS_CHANGED (discounts.toml), each at most once,
    then one change per added, removed or changed product by product key. Unchanged
    products are absent; an empty list means the catalogues price everything alike.
    Details come in a fixed order (product fields, then sources, filters and versions by
    date, tiers by position), so the same pair of catalogues always reads the same.
    """
    changes: list[Change] = []
    if old.currency != new.currency:
        changes.append(
            Change(CURRENCY_CHANGED, None, (f"currency: {old.currency} -> {new.currency}",))
        )
    brackets = _schedule_details(old.schedule, new.schedule)
    if brackets:
        changes.append(Change(BRACKETS_CHANGED, None, tuple(brackets)))
    for key in sorted(old.products.keys() | new.products.keys()):
        before, after = old.products.get(key), new.products.get(key)
        if before is None and after is not None:
            changes.append(
                Change(PRODUCT_ADDED, key, tuple(_describe(after)), _prices(None, after, at))
            )
        elif after is None and before is not None:
            changes.append(
                Change(PRODUCT_REMOVED, key, tuple(_describe(before)), _prices(before, None, at))
            )
        elif before is not None and after is not None and before != after:
            details = _product_details(before, after) or ["changed"]
            changes.append(Change(PRODUCT_CHANGED, key, tuple(details), _prices(before, after, at)))
    changes.extend(_override_changes(old, new, at))
    return changes


def _override_changes(old: Catalog, new: Catalog, at: dt.date) -> list[Change]:
    """One OVERRIDE_CHANGED per customer and product whose overrides differ (added,
    removed, other dates or tiers), by customer then product, priced with the customer's
    plans in force on `at` on each side."""
    changes: list[Change] = []
    for customer in sorted(old.overrides.keys() | new.overrides.keys()):
        before, after = old.overrides.get(customer, {}), new.overrides.get(customer, {})
        for key in sorted(before.keys() | after.keys()):
            was = {(o.effective_from, o.effective_to, o.plan) for o in before.get(key, ())}
            now = {(o.effective_from, o.effective_to, o.plan) for o in after.get(key, ())}
            if was == now:
                continue
            details = [f"override for customer {customer}"]
            for start, end, plan in sorted(was - now, key=lambda o: o[0]):
                details.append(f"removed: {_span(start, end)}: {_table(plan)}")
            for start, end, plan in sorted(now - was, key=lambda o: o[0]):
                details.append(f"added: {_span(start, end)}: {_table(plan)}")
            points = []
            old_plan = _customer_plan(old, key, at, customer)
            new_plan = _customer_plan(new, key, at, customer)
            quantities = sorted(
                {
                    *(representative_quantities(old_plan) if old_plan else []),
                    *(representative_quantities(new_plan) if new_plan else []),
                }
            )
            for quantity in quantities:
                points.append(
                    PricePoint(quantity, _price(old_plan, quantity), _price(new_plan, quantity))
                )
            changes.append(Change(OVERRIDE_CHANGED, key, tuple(details), tuple(points)))
    return changes


def _span(start: dt.date, end: dt.date | None) -> str:
    return f"from {start} to {end} (exclusive)" if end else f"from {start}, open-ended"


def _customer_plan(catalog: Catalog, key: str, at: dt.date, customer: str) -> PricePlan | None:
    """The customer's plan of `key` on `at` (their override, else the list price), None
    where the catalogue has no price for it then."""
    if key not in catalog.products:
        return None
    override = catalog.override_at(customer, key, at)
    return override.plan if override else _plan_at(catalog.products[key], at)


def change_as_json(change: Change) -> dict[str, Any]:
    """A change as JSON-ready data: {"kind", "product" (str or null), "details": [str],
    "prices": [{"quantity", "old", "new", "delta"}]}, quantities in units and amounts in
    major units as plain decimal strings ("1500000", "25.00"), null where absent."""
    return {
        "kind": change.kind,
        "product": change.product,
        "details": list(change.details),
        "prices": [
            {
                "quantity": format_quantity(point.quantity),
                "old": _amount_text(point.old),
                "new": _amount_text(point.new),
                "delta": _amount_text(point.delta),
            }
            for point in change.prices
        ],
    }


def representative_quantities(plan: PricePlan) -> list[Decimal]:
    """The quantities (units; packages times package_size for the package model) a plan is
    shown at, ascending: each boundary, each bounded tier's middle, and one inside the
    last tier."""
    points: set[Decimal] = set()
    for index, (lower, tier) in enumerate(zip(plan.lowers, plan.tiers, strict=True)):
        if tier.up_to is not None:
            points.add(tier.up_to)
            middle = EXACT.divide_int(EXACT.add(lower, tier.up_to), 2)
            if middle > lower:
                points.add(middle)
        elif index:
            width = EXACT.subtract(lower, plan.lowers[index - 1])
            points.add(EXACT.add(lower, width))
        else:
            points.add(LONE_TIER_QUANTITY)
    size = Decimal(plan.package_size or 1)
    return sorted(EXACT.multiply(point, size) for point in points)


def _prices(old: Product | None, new: Product | None, at: dt.date) -> tuple[PricePoint, ...]:
    old_plan = _plan_at(old, at)
    new_plan = _plan_at(new, at)
    quantities: set[Decimal] = set()
    for plan in (old_plan, new_plan):
        if plan is not None:
            quantities.update(representative_quantities(plan))
    comparable = old is None or new is None or old.currency == new.currency
    return tuple(
        PricePoint(quantity, _price(old_plan, quantity), _price(new_plan, quantity), comparable)
        for quantity in sorted(quantities)
    )


def _plan_at(product: Product | None, at: dt.date) -> PricePlan | None:
    version = product.version_at(at) if product is not None else None
    return version.plan if version is not None else None


def _price(plan: PricePlan | None, quantity: Decimal) -> Decimal | None:
    if plan is None:
        return None
    return round_to_billing_unit(charge(plan, quantity).amount, plan.currency)


def _amount_text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def _describe(product: Product) -> list[str]:
    """An added or removed product, in full."""
    lines = [
        f"name: {product.name}",
        f"unit: {product.unit}",
        f"currency: {product.currency}",
        f"model: {product.model}",
    ]
    if product.package_size is not None:
        lines.append(f"package_size: {group_quantity(Decimal(product.package_size))}")
    lines.extend(
        f"version from {version.effective_from}: {_table(version.plan)}"
        for version in product.versions
    )
    return lines


def _product_details(old: Product, new: Product) -> list[str]:
    details = [
        f"{label}: {before} -> {after}"
        for label, before, after in (
            ("name", old.name, new.name),
            ("unit", old.unit, new.unit),
            ("currency", old.currency, new.currency),
            ("model", str(old.model), str(new.model)),
            ("package_size", _optional(old.package_size), _optional(new.package_size)),
            ("aggregation", old.aggregation, new.aggregation),
            ("unique_property", old.unique_property or _NONE, new.unique_property or _NONE),
            ("dimensions", _listed(old.dimensions), _listed(new.dimensions)),
            (
                "max_dimension_values",
                group_quantity(Decimal(old.max_dimension_values)),
                group_quantity(Decimal(new.max_dimension_values)),
            ),
        )
        if before != after
    ]
    details += _source_details(old.sources, new.sources)
    details += _where_details(old.where, new.where)
    details += _version_details(old, new)
    return details


def _optional(size: int | None) -> str:
    return _NONE if size is None else group_quantity(Decimal(size))


def _listed(names: Iterable[str]) -> str:
    return ", ".join(names) or _NONE


def _source_details(old: tuple[Source, ...], new: tuple[Source, ...]) -> list[str]:
    before = {source.event: source.multiplier for source in old}
    after = {source.event: source.multiplier for source in new}
    details = []
    for event in sorted(before.keys() | after.keys()):
        if event not in after:
            details.append(f"source removed: {event} x{format_quantity(before[event])}")
        elif event not in before:
            details.append(f"source added: {event} x{format_quantity(after[event])}")
        elif before[event] != after[event]:
            details.append(
                f"source {event}: multiplier {format_quantity(before[event])} -> "
                f"{format_quantity(after[event])}"
            )
    return details


def _where_details(
    old: Mapping[str, frozenset[str]], new: Mapping[str, frozenset[str]]
) -> list[str]:
    details = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before != after:
            details.append(f"where {name}: {_values(before)} -> {_values(after)}")
    return details


def _values(values: frozenset[str] | None) -> str:
    return _ANY if values is None else ", ".join(sorted(values))


def _version_details(old: Product, new: Product) -> list[str]:
    before = {version.effective_from: version.plan for version in old.versions}
    after = {version.effective_from: version.plan for version in new.versions}
    details = []
    for day in sorted(before.keys() | after.keys()):
        if day not in after:
            details.append(f"version from {day} removed: {_table(before[day])}")
        elif day not in before:
            details.append(f"version from {day} added: {_table(after[day])}")
        else:
            details.extend(
                f"version from {day}: {line}" for line in _tier_details(before[day], after[day])
            )
    return details


def _tier_details(old: PricePlan, new: PricePlan) -> list[str]:
    """Tier by tier when the tables have as many tiers; otherwise both tables whole."""
    if len(old.tiers) != len(new.tiers):
        return [f"tiers ({len(old.tiers)} -> {len(new.tiers)}): {_table(old)} -> {_table(new)}"]
    details = []
    for number, (before, after) in enumerate(zip(old.tiers, new.tiers, strict=True), start=1):
        if before.up_to != after.up_to:
            details.append(
                f"tier {number} boundary {_bound(before.up_to)} -> {_bound(after.up_to)}"
            )
        if before.unit_price != after.unit_price:
            details.append(
                f"tier {number} unit price {format_exact(before.unit_price, old.currency)} -> "
                f"{format_exact(after.unit_price, new.currency)}"
            )
        if before.flat_fee != after.flat_fee:
            details.append(
                f"tier {number} flat fee {format_exact(before.flat_fee, old.currency)} -> "
                f"{format_exact(after.flat_fee, new.currency)}"
            )
    return details


def _bound(up_to: Decimal | None) -> str:
    return "inf" if up_to is None else group_quantity(up_to)


def _table(plan: PricePlan) -> str:
    """A tier table on one line: "up to 1,000,000 at 0.00; above 1,000,000 at 0.00005"."""
    return "; ".join(
        _tier_text(lower, tier, plan.currency)
        for lower, tier in zip(plan.lowers, plan.tiers, strict=True)
    )


def _tier_text(lower: Decimal, tier: Tier, currency: str) -> str:
    reach = (
        f"above {group_quantity(lower)}" if tier.up_to is None else f"up to {_bound(tier.up_to)}"
    )
    text = f"{reach} at {format_exact(tier.unit_price, currency)}"
    if tier.flat_fee:
        text += f" + flat fee {format_exact(tier.flat_fee, currency)}"
    return text


def _schedule_details(old: CommitmentSchedule | None, new: CommitmentSchedule | None) -> list[str]:
    """discounts.toml: the schedule's own settings, then brackets by term and min_credit."""
    if old is None and new is None:
        return []
    details = []
    if old is None:
        details.append("discounts.toml added")
    elif new is None:
        details.append("discounts.toml removed")
    else:
        details += [
            f"{label}: {before} -> {after}"
            for label, before, after in (
                ("currency", old.currency, new.currency),
                (
                    "min_purchase",
                    group_quantity(old.min_purchase),
                    group_quantity(new.min_purchase),
                ),
                ("release", str(old.release), str(new.release)),
                (
                    "rollover_percent",
                    format_quantity(old.rollover_percent),
                    format_quantity(new.rollover_percent),
                ),
                ("topup_months", str(old.topup_months), str(new.topup_months)),
            )
            if before != after
        ]
    details += _bracket_details(
        old.brackets if old is not None else (), new.brackets if new is not None else ()
    )
    return details


def _bracket_details(old: Iterable[Bracket], new: Iterable[Bracket]) -> list[str]:
    """Brackets are matched by term and min_credit; of the rest, a bracket whose only change
    is its term, then one of the same term and discount (its min_credit moved), then those
    of one term in credit order (when as many remain on each side) are read as changed;
    whatever is left was added or removed."""
    before = {(b.years, b.min_credit): b for b in old}
    after = {(b.years, b.min_credit): b for b in new}
    found: list[tuple[tuple[int, Decimal], str]] = []
    for key in before.keys() & after.keys():
        if before[key].discount_percent != after[key].discount_percent:
            found.append((key, _bracket_change(before[key], after[key])))
    removed = [before[key] for key in sorted(before.keys() - after.keys())]
    added = [after[key] for key in sorted(after.keys() - before.keys())]
    for same in (_same_credit, _same_discount):
        for bracket in list(removed):
            match = next((b for b in added if same(bracket, b)), None)
            if match is not None:
                removed.remove(bracket)
                added.remove(match)
                found.append(((bracket.years, bracket.min_credit), _bracket_change(bracket, match)))
    for years in sorted({b.years for b in removed} & {b.years for b in added}):
        gone = [b for b in removed if b.years == years]
        came = [b for b in added if b.years == years]
        if len(gone) == len(came):
            for was, now in zip(gone, came, strict=True):
                removed.remove(was)
                added.remove(now)
                found.append(((was.years, was.min_credit), _bracket_change(was, now)))
    found += [((b.years, b.min_credit), f"bracket removed: {_bracket_text(b)}") for b in removed]
    found += [((b.years, b.min_credit), f"bracket added: {_bracket_text(b)}") for b in added]
    return [text for _key, text in sorted(found)]


def _same_credit(old: Bracket, new: Bracket) -> bool:
    return (old.min_credit, old.discount_percent) == (new.min_credit, new.discount_percent)


def _same_discount(old: Bracket, new: Bracket) -> bool:
    return (old.years, old.discount_percent) == (new.years, new.discount_percent)


def _bracket_change(old: Bracket, new: Bracket) -> str:
    parts = [
        f"{label} {before} -> {after}"
        for label, before, after in (
            ("years", str(old.years), str(new.years)),
            ("min_credit", group_quantity(old.min_credit), group_quantity(new.min_credit)),
            (
                "discount_percent",
                format_quantity(old.discount_percent),
                format_quantity(new.discount_percent),
            ),
        )
        if before != after
    ]
    return f"{_bracket_name(old)}: {', '.join(parts)}"


def _bracket_name(bracket: Bracket) -> str:
    return f"{bracket.years}-year bracket from {group_quantity(bracket.min_credit)}"


def _bracket_text(bracket: Bracket) -> str:
    return f"{_bracket_name(bracket)} at {format_quantity(bracket.discount_percent)}% off"
