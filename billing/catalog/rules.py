"""Rules that relate several values of the tier files, checked on the raw TOML data.

They run even when `schema.py` rejected some values, and skip what they cannot read,
so every independent mistake in a directory is reported at once.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.money import BILLING_DIGITS, fraction_digits

Found = tuple[str, str]  # (key path, message)


def product_rules(raw: dict[str, Any], stem: str) -> Iterator[Found]:
    """Cross-value rules of one product file."""
    key = raw.get("key")
    if isinstance(key, str) and key != stem:
        yield "key", f"key {key!r} must equal the file name {stem!r} (file {stem}.toml)"
    model = raw.get("model")
    if model == "package" and "package_size" not in raw:
        yield "package_size", 'model "package" needs package_size (units per package)'
    if model in ("graduated", "volume") and "package_size" in raw:
        yield "package_size", f'package_size only applies to model "package", not {model!r}'
    yield from _selection_rules(raw)
    versions = raw.get("versions")
    if isinstance(versions, list) and not versions:
        yield "versions", "at least one [[versions]] table is needed"
    if not isinstance(versions, list):
        return
    previous_date: dt.date | None = None
    for i, version in enumerate(versions):
        if not isinstance(version, dict):
            continue
        date = version.get("effective_from")
        if isinstance(date, dt.date) and not isinstance(date, dt.datetime):
            if previous_date is not None and date <= previous_date:
                yield (
                    f"versions[{i}].effective_from",
                    f"versions must be in strictly increasing date order: {date} does not "
                    f"come after {previous_date}",
                )
            previous_date = date
        tiers = version.get("tiers")
        if isinstance(tiers, list) and not tiers:
            yield f"versions[{i}].tiers", 'a version needs at least one tier (the last is "inf")'
        elif isinstance(tiers, list):
            yield from _tier_rules(tiers, f"versions[{i}].tiers")


def _selection_rules(raw: dict[str, Any]) -> Iterator[Found]:
    """`sources` name each event once; every `where` property lists at least one value."""
    sources = raw.get("sources")
    if isinstance(sources, list) and not sources:
        yield "sources", "list at least one source (leave sources out to count the product's key)"
    if isinstance(sources, list):
        seen: dict[str, int] = {}
        for i, source in enumerate(sources):
            event = source.get("event") if isinstance(source, dict) else None
            if not isinstance(event, str):
                continue
            if event in seen:
                yield (
                    f"sources[{i}].event",
                    f"{event!r} is counted twice (also sources[{seen[event]}]): one source per "
                    "event, with its multiplier",
                )
            else:
                seen[event] = i
    aggregation = raw.get("aggregation", "sum")
    if aggregation == "unique_count" and not raw.get("unique_property"):
        yield (
            "unique_property",
            'aggregation "unique_count" needs unique_property (the property counted)',
        )
    if "unique_property" in raw and aggregation != "unique_count":
        yield (
            "unique_property",
            f'only applies with aggregation "unique_count", not {aggregation!r}',
        )
    if raw.get("dimensions") and aggregation in ("max", "unique_count", "latest"):
        yield (
            "dimensions",
            f'a breakdown adds up parts: dimensions need aggregation "sum" or "count", not '
            f"{aggregation!r}",
        )
    dimensions = raw.get("dimensions")
    if isinstance(dimensions, list):
        for i, name in enumerate(dimensions):
            if name in dimensions[:i]:
                yield f"dimensions[{i}]", f"{name!r} is listed twice"
    if "max_dimension_values" in raw and not dimensions:
        yield "max_dimension_values", "only applies with dimensions"
    where = raw.get("where")
    if isinstance(where, dict):
        for name, values in where.items():
            if isinstance(values, list) and not values:
                yield f"where.{name}", "list at least one value (an empty list selects nothing)"
            elif not isinstance(values, list):
                yield f"where.{name}", f'a list of values, like {name} = ["a", "b"]'


def sources_rules(raw_products: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, Found]]:
    """Across the product files: a source names a metered event. Naming another product's
    key is allowed only when that product itself counts events of that name (its default);
    otherwise the source would count a product's count (a chain, which may loop): the
    error names the events to list instead. (file, (key path, message)) each."""
    counts: dict[str, list[str]] = {}
    for _, raw in raw_products:
        key = raw.get("key")
        sources = raw.get("sources")
        if not isinstance(key, str):
            continue
        if isinstance(sources, list):
            counts[key] = [
                s["event"]
                for s in sources
                if isinstance(s, dict) and isinstance(s.get("event"), str)
            ]
        else:
            counts[key] = [key]
    for file, raw in raw_products:
        sources = raw.get("sources")
        if not isinstance(sources, list):
            continue
        for i, source in enumerate(sources):
            event = source.get("event") if isinstance(source, dict) else None
            if event == raw.get("key") or event not in counts or event in counts[event]:
                continue
            listed = ", ".join(repr(e) for e in counts[event])
            yield (
                file,
                (
                    f"sources[{i}].event",
                    f"{event!r} is a product that counts other events ({listed}), not an event: "
                    "a source counts metered events, never another product's count (which could "
                    "loop); list those events here instead",
                ),
            )


def _tier_rules(tiers: list[Any], path: str) -> Iterator[Found]:
    previous: int | None = None
    last = len(tiers) - 1
    for j, tier in enumerate(tiers):
        up_to = tier.get("up_to") if isinstance(tier, dict) else None
        where = f"{path}[{j}].up_to"
        if up_to == "inf":
            if j != last:
                yield where, 'only the last tier may have up_to = "inf"'
            continue
        if isinstance(up_to, bool) or not isinstance(up_to, int):
            continue
        if j == last:
            yield where, f'the last tier must have up_to = "inf", got {up_to}'
        if previous is not None and up_to <= previous:
            yield where, f"up_to must be strictly increasing: {up_to} is not above {previous}"
        previous = up_to


def override_rules(
    raw: dict[str, Any], stem: str, known: Mapping[str, dt.date | None]
) -> Iterator[Found]:
    """Cross-value rules of one customer's override file (overrides/<customer>.toml): the
    customer is the file's name, each product exists (`known`: product key -> the day its
    first version starts) and the override starts on or after that day (before it the
    product is not metered at all), its dates are in order, a product's overrides never
    overlap, and its tiers follow the tier rules."""
    customer = raw.get("customer")
    if isinstance(customer, str) and customer != stem:
        yield (
            "customer",
            f"customer {customer!r} must equal the file name {stem!r} (file {stem}.toml)",
        )
    products = raw.get("products")
    if not isinstance(products, list):
        return
    keys = set(known)
    spans: dict[str, list[tuple[dt.date, dt.date | None, int]]] = {}
    for i, spec in enumerate(products):
        if not isinstance(spec, dict):
            continue
        key = spec.get("key")
        if isinstance(key, str) and key not in keys:
            yield (
                f"products[{i}].key",
                f"unknown product {key!r}; products: {', '.join(sorted(keys))}",
            )
        start, end = spec.get("effective_from"), spec.get("effective_to")
        start = start if _is_day(start) else None
        end = end if _is_day(end) else None
        first = known.get(key) if isinstance(key, str) else None
        if start is not None and first is not None and start < first:
            yield (
                f"products[{i}].effective_from",
                f"{key} has no price before {first} (its first version): an override "
                f"cannot start earlier, got {start}",
            )
        if start is not None and end is not None and end <= start:
            yield (
                f"products[{i}].effective_to",
                f"effective_to ({end}) must come after effective_from ({start})",
            )
        elif start is not None and isinstance(key, str):
            for other_start, other_end, j in spans.get(key, []):
                if (end is None or other_start < end) and (other_end is None or start < other_end):
                    yield (
                        f"products[{i}].effective_from",
                        f"overlaps products[{j}] ({key} from {other_start}): one override of "
                        "a product is in force at a time",
                    )
            spans.setdefault(key, []).append((start, end, i))
        tiers = spec.get("tiers")
        if isinstance(tiers, list) and not tiers:
            yield f"products[{i}].tiers", 'an override needs at least one tier (the last is "inf")'
        elif isinstance(tiers, list):
            yield from _tier_rules(tiers, f"products[{i}].tiers")


def _is_day(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def discounts_rules(raw: dict[str, Any]) -> Iterator[Found]:
    """Cross-value rules of discounts.toml."""
    currency = raw.get("currency")
    digits = BILLING_DIGITS.get(currency) if isinstance(currency, str) else None
    min_purchase = _decimal(raw.get("min_purchase"))
    if digits is not None and min_purchase is not None and fraction_digits(min_purchase) > digits:
        yield "min_purchase", f"{currency} amounts have at most {digits} decimal places"
    brackets = raw.get("brackets")
    if isinstance(brackets, list) and not brackets:
        yield "brackets", "at least one bracket is needed"
    if not isinstance(brackets, list):
        return
    by_term: dict[int, list[tuple[Decimal, Decimal, int]]] = {}
    for i, bracket in enumerate(brackets):
        if not isinstance(bracket, dict):
            continue
        years, credit = bracket.get("years"), _decimal(bracket.get("min_credit"))
        percent = _decimal(bracket.get("discount_percent"))
        if digits is not None and credit is not None and fraction_digits(credit) > digits:
            yield f"brackets[{i}].min_credit", f"{currency} amounts have at most {digits} decimals"
        if isinstance(years, int) and not isinstance(years, bool) and credit is not None:
            by_term.setdefault(years, []).append((credit, percent or Decimal(0), i))
    for years, entries in sorted(by_term.items()):
        entries.sort()
        for (credit_a, percent_a, _), (credit_b, percent_b, j) in itertools.pairwise(entries):
            if credit_a == credit_b:
                yield (
                    f"brackets[{j}].min_credit",
                    f"two {years}-year brackets start at the same min_credit {credit_b}",
                )
            elif percent_b < percent_a:
                yield (
                    f"brackets[{j}].discount_percent",
                    f"a larger commitment must not get a smaller discount: {years}-year from "
                    f"{credit_b} gives {percent_b}% but from {credit_a} gives {percent_a}%",
                )
        lowest, _, index = entries[0]
        reachable_floor = [e for e in entries if min_purchase is not None and e[0] <= min_purchase]
        if len(reachable_floor) > 1:
            shadowed = reachable_floor[-2]
            yield (
                f"brackets[{shadowed[2]}].min_credit",
                f"the {years}-year bracket from {shadowed[0]} can never be chosen: purchases "
                f"start at min_purchase {min_purchase}, which already reaches the bracket from "
                f"{reachable_floor[-1][0]}",
            )
        if min_purchase is not None and lowest > min_purchase:
            yield (
                f"brackets[{index}].min_credit",
                f"the smallest {years}-year bracket starts at {lowest}, above min_purchase "
                f"{min_purchase}: a purchase in between would have no bracket",
            )


def _decimal(value: Any) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
