"""Per-event validation of an ingestion batch. Pure: raw JSON values in, events or reasons out.

Reasons are the strings of docs/metering.md: `invalid: <field>: <reason>` for malformed events.

An event names what it meters with `product` (a product's key) or `event` (an event name the
tier files' `sources` select, docs/tier-files.md "Sources"); it may carry `properties`, a flat
map of short strings or numbers (limits below, in docs/metering.md "Properties").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_core import PydanticCustomError

from billing.parsing import UNSTORABLE, parse_quantity, storable

MAX_ID_LENGTH = 200
FIELDS = frozenset(("id", "customer", "product", "event", "quantity", "timestamp", "properties"))
MAX_PROPERTIES = 20  # per event
MAX_PROPERTY_NAME = 40  # characters
MAX_PROPERTY_VALUE = 200  # characters of a string value
MAX_PROPERTIES_BYTES = 2000  # the stored (compact JSON) form of all of them
_NAME = re.compile(r"[A-Za-z0-9_$.-]+")
_ONE = Decimal(1)
_MAX_WHOLE = 10**15


@dataclass(slots=True)  # NOTE: not frozen: a frozen __init__ costs a batch ~10 ms
class ParsedEvent:
    """A well-formed event of a batch, parsed (the wire shape is api.schemas.EventIn)."""

    index: int
    id: str
    customer: str
    product: str  # what it meters: a product's key, or an event name (`event`)
    quantity: Decimal
    timestamp: dt.datetime  # aware, UTC
    properties: dict[str, str] | None = None  # values as text: "web", "3", "1.5"
    stored_properties: str | None = None  # their canonical JSON, as the event row keeps it

    def same_content(
        self,
        customer: str,
        product: str,
        quantity: Decimal,
        at: dt.datetime,
        properties: str | None = None,
    ) -> bool:
        """True when a stored event with this id says the same thing (a retry)."""
        return (
            self.customer == customer
            and self.product == product
            and self.quantity == quantity
            and self.timestamp == at
            and self.stored_properties == properties
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    id: str | None
    error: str


# Properties already checked in a batch: their items (as sent) -> the outcome.
PropertiesSeen = dict[tuple[tuple[str, Any], ...], "tuple[dict[str, str], str] | str"]


def parse_event(
    raw: Any,
    index: int,
    seen_times: dict[str, dt.datetime] | None = None,
    seen_properties: PropertiesSeen | None = None,
) -> ParsedEvent | Rejection:
    """One event of a batch, or the reason it is refused.

    `seen_times` and `seen_properties` cache parsed timestamps and checked properties
    within a batch (events often share them).
    """
    if type(raw) is dict and seen_times is not None:
        size = len(raw)
        if size == 5:
            event = _well_formed(raw, index, seen_times)
            if event is not None:
                return event
        elif size == 6 and seen_properties is not None and "properties" in raw:
            checked = _cached_properties(raw["properties"], seen_properties)
            if not isinstance(checked, str):
                event = _well_formed(raw, index, seen_times)
                if event is not None:
                    event.properties, event.stored_properties = checked
                    return event
    if not isinstance(raw, dict):
        return Rejection(index, None, "invalid: event: must be a JSON object")
    raw_id = raw.get("id")
    event_id = raw_id if isinstance(raw_id, str) else None
    if not raw.keys() <= FIELDS:
        key = next(k for k in raw if k not in FIELDS)
        return Rejection(index, event_id, f"invalid: {key}: unknown field")
    if raw_id is None:
        return Rejection(index, None, "invalid: id: is required")
    if not isinstance(raw_id, str) or not raw_id.strip():
        return Rejection(index, None, "invalid: id: must be a non-empty string")
    if len(raw_id) > MAX_ID_LENGTH:
        return Rejection(index, raw_id[:MAX_ID_LENGTH], "invalid: id: longer than 200 characters")
    if not storable(raw_id):
        return Rejection(index, None, f"invalid: id: {UNSTORABLE}")
    if "product" in raw and "event" in raw:
        return Rejection(index, raw_id, "invalid: event: name a product or an event, not both")
    meter = "event" if "event" in raw else "product"
    for name in ("customer", meter):
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            return Rejection(index, raw_id, f"invalid: {name}: must be a non-empty string")
        if not storable(value):
            return Rejection(index, raw_id, f"invalid: {name}: {UNSTORABLE}")
    properties = stored = None
    if raw.get("properties") is not None:
        checked = _cached_properties(raw["properties"], seen_properties)
        if isinstance(checked, str):
            return Rejection(index, raw_id, f"invalid: properties{checked}")
        properties, stored = checked
    quantity = _ONE
    raw_quantity = raw.get("quantity", _ONE)
    if type(raw_quantity) is int and 0 <= raw_quantity <= _MAX_WHOLE:
        quantity = Decimal(raw_quantity)  # the common case: a plain whole count
    elif raw_quantity is not _ONE:
        try:
            quantity = parse_quantity(raw_quantity)
        except PydanticCustomError as error:
            return Rejection(index, raw_id, f"invalid: quantity: {error.message()}")
        except ArithmeticError:
            return Rejection(index, raw_id, "invalid: quantity: not a usable number")
    timestamp = _cached_timestamp(raw.get("timestamp"), seen_times)
    if isinstance(timestamp, str):
        return Rejection(index, raw_id, f"invalid: timestamp: {timestamp}")
    return ParsedEvent(
        index, raw_id, raw["customer"], raw[meter], quantity, timestamp, properties, stored
    )


def parse_properties(raw: Any) -> tuple[dict[str, str], str] | str:
    """An event's properties as text values and their stored form (compact JSON, keys
    sorted), or the problem: a suffix for "invalid: properties…" naming the key at fault."""
    if not isinstance(raw, dict):
        return ": must be a JSON object of names to strings or numbers"
    if len(raw) > MAX_PROPERTIES:
        return f": at most {MAX_PROPERTIES} properties, got {len(raw)}"
    values: dict[str, str] = {}
    kept: dict[str, str | int | Decimal] = {}
    for name, value in raw.items():
        if len(name) > MAX_PROPERTY_NAME or not _NAME.fullmatch(name):
            return (
                f": {name[:MAX_PROPERTY_NAME]!r}: a property name is 1 to {MAX_PROPERTY_NAME} "
                "letters, digits, _ $ . or -"
            )
        if isinstance(value, str):
            if len(value) > MAX_PROPERTY_VALUE:
                return f".{name}: at most {MAX_PROPERTY_VALUE} characters"
            if not storable(value):
                return f".{name}: {UNSTORABLE}"
            values[name] = kept[name] = value
        elif type(value) is int and abs(value) <= _MAX_WHOLE:
            values[name] = str(value)
            kept[name] = value
        elif (
            isinstance(value, Decimal)
            and value.is_finite()
            and abs(value) <= _MAX_WHOLE
            and value.normalize().as_tuple().exponent >= -12  # type: ignore[operator]
        ):
            text = format(value.normalize(), "f")
            values[name] = text
            kept[name] = Decimal(text)
        else:
            return (
                f".{name}: must be a string or a number (up to 10^15, 12 decimal places), "
                f"not {_kind(value)}"
            )
    stored = _canonical(kept)
    if len(stored.encode()) > MAX_PROPERTIES_BYTES:
        return f": at most {MAX_PROPERTIES_BYTES:,} bytes in all, got {len(stored.encode()):,}"
    return values, stored


def _cached_properties(raw: Any, seen: PropertiesSeen | None) -> tuple[dict[str, str], str] | str:
    """`parse_properties`, remembered per batch by the properties' items (the values it
    returns are shared: read, never changed)."""
    if seen is None or type(raw) is not dict:
        return parse_properties(raw)
    try:
        key = tuple(raw.items())
        found = seen.get(key)
    except TypeError:  # a list or an object as a value: refused by parse_properties
        return parse_properties(raw)
    if found is None:
        found = seen[key] = parse_properties(raw)
    return found


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict | list):
        return "an object or a list (properties are flat)"
    # JSON numbers arrive as int or Decimal (the API parses them exactly)
    return "a number out of range" if isinstance(value, int | Decimal) else "that"


def _canonical(values: dict[str, str | int | Decimal]) -> str:
    """Compact JSON, keys sorted, numbers written exactly: one text per meaning."""
    parts = []
    for name in sorted(values):
        value = values[name]
        shown = json.dumps(value) if isinstance(value, str) else str(value)
        parts.append(f"{json.dumps(name)}:{shown}")
    return "{" + ",".join(parts) + "}"


def _well_formed(
    raw: dict[str, Any], index: int, seen_times: dict[str, dt.datetime]
) -> ParsedEvent | None:
    """The common case in one pass: every field present, plain types, a known timestamp.

    None sends the event through the full checks of `parse_event` (which also explain).
    """
    event_id, customer, product = raw.get("id"), raw.get("customer"), raw.get("product")
    quantity, stamp = raw.get("quantity"), raw.get("timestamp")
    if type(stamp) is not str:
        return None
    # NOTE: real timestamps are nearly all distinct: one not seen yet is parsed here, or
    # every such event would be checked twice (here, then by parse_event's full checks)
    at = seen_times.get(stamp) or _cached_timestamp(stamp, seen_times)
    if (
        type(at) is dt.datetime
        and type(event_id) is str
        and 0 < len(event_id) <= MAX_ID_LENGTH
        and not event_id.isspace()
        and storable(event_id)
        and type(customer) is str
        and customer
        and storable(customer)
        and type(product) is str
        and product
        and storable(product)
        and type(quantity) is int
        and 0 <= quantity <= _MAX_WHOLE
    ):
        return ParsedEvent(index, event_id, customer, product, Decimal(quantity), at)
    return None


def _cached_timestamp(value: Any, seen: dict[str, dt.datetime] | None) -> dt.datetime | str:
    if seen is None or not isinstance(value, str):
        return _timestamp(value)
    known = seen.get(value)
    if known is None:
        parsed = _timestamp(value)
        if isinstance(parsed, str):
            return parsed
        known = seen[value] = parsed
    return known


def _timestamp(value: Any) -> dt.datetime | str:
    if value is None:
        return "is required (ISO 8601 with a time zone, e.g. 2026-11-24T10:00:00Z)"
    if not isinstance(value, str):
        return "must be an ISO 8601 string such as 2026-11-24T10:00:00Z"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return f"not an ISO 8601 date-time: {value!r}"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return f"needs a time zone (Z or +00:00): {value!r}"
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # the offset takes it past year 1 or 9999
        return f"outside the calendar once converted to UTC: {value!r}"
