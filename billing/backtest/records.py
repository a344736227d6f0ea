"""What a backtest re-prices: one product's usage in one closed period, as the close saw it.

A record carries what the close priced (units accepted, the limit ingestion enforced, the
cap in force, the discount) and what invoices billed for it, so it can be re-priced under
any catalogue without a database. `billing usage export` writes records as JSON Lines and
`billing tiers diff --usage FILE` reads them back (docs/pricing-changes.md, "Usage
snapshots"). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

FORMAT = "billing-usage-snapshot/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """One product's usage in one closed billing period of one customer.

    Quantities are in the product's unit; `cap` and `invoiced` are major units of the
    catalogue's currency. `cap` is the highest spend cap of the period (what the close bounds
    the line by; None: uncapped at some time in it). `invoiced` is what invoices billed for
    the product and period: its usage line, its discount line and the adjustment lines of
    late usage, summed (None: no invoice billed it). `pending` says late usage arrived after
    the last invoice and waits for the next close (re-priced amounts then differ from
    `invoiced` by design, and are not compared).
    """

    customer: str
    period_start: dt.datetime  # aware UTC, inclusive
    product: str
    accepted: Decimal
    limit: Decimal | None
    over_limit: Decimal  # units refused over the limit: the demand the cap turned away
    cap: Decimal | None
    discount_percent: Decimal
    invoiced: Decimal | None
    pending: bool = False

    @property
    def month(self) -> str:
        """The period's month, YYYY-MM (of its start)."""
        return f"{self.period_start:%Y-%m}"


def record_as_json(record: UsageRecord) -> dict[str, Any]:
    """A record as one JSON object of a snapshot: decimals as strings, the start in ISO 8601."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "customer": record.customer,
        "period_start": record.period_start.isoformat().replace("+00:00", "Z"),
        "product": record.product,
        "accepted": text(record.accepted),
        "limit": text(record.limit),
        "over_limit": text(record.over_limit),
        "cap": text(record.cap),
        "discount_percent": text(record.discount_percent),
        "invoiced": text(record.invoiced),
        "pending": record.pending,
    }


class SnapshotError(ValueError):
    """A snapshot line that is not a usage record: the message names the line and the field."""


def record_from_json(document: Any, line: int) -> UsageRecord:
    """A record from one parsed snapshot line (1-based `line` for messages); SnapshotError."""
    if not isinstance(document, dict):
        raise SnapshotError(f"line {line}: not a JSON object")

    def text(name: str) -> str:
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise SnapshotError(f"line {line}: {name}: must be a non-empty string")
        return value

    def number(name: str, optional: bool = False) -> Decimal | None:
        value = document.get(name)
        if value is None and optional:
            return None
        try:
            parsed = Decimal(text(name))
        except InvalidOperation:
            raise SnapshotError(f"line {line}: {name}: not a decimal number") from None
        if not parsed.is_finite():
            raise SnapshotError(f"line {line}: {name}: not a decimal number")
        return parsed

    try:
        start = dt.datetime.fromisoformat(text("period_start"))
    except ValueError:
        raise SnapshotError(f"line {line}: period_start: not an ISO 8601 date-time") from None
    if start.tzinfo is None:
        raise SnapshotError(f"line {line}: period_start: needs a time zone")
    accepted, over, discount = (number(n) for n in ("accepted", "over_limit", "discount_percent"))
    if accepted is None or over is None or discount is None:
        raise AssertionError("unreachable: required numbers are never None")
    return UsageRecord(
        customer=text("customer"),
        period_start=start.astimezone(dt.UTC),
        product=text("product"),
        accepted=accepted,
        limit=number("limit", optional=True),
        over_limit=over,
        cap=number("cap", optional=True),
        discount_percent=discount,
        invoiced=number("invoiced", optional=True),
        pending=document.get("pending") is True,
    )


def pseudonym(customer: str, key: str) -> str:
    """A stable stand-in for a customer id: `cus_` and 16 hex digits of HMAC-SHA256(key, id).
    The same key gives the same pseudonym in every snapshot; without it, ids cannot be
    recovered."""
    digest = hmac.new(key.encode(), customer.encode(), hashlib.sha256).hexdigest()
    return f"cus_{digest[:16]}"


def dumps_snapshot(records: list[UsageRecord], header: dict[str, Any]) -> str:
    """JSON Lines: a header object ({"format": FORMAT, ...header}), then one record a line."""
    lines = [json.dumps({"format": FORMAT, **header}, sort_keys=True)]
    lines.extend(json.dumps(record_as_json(r), sort_keys=True) for r in records)
    return "\n".join(lines) + "\n"


def loads_snapshot(text: str) -> list[UsageRecord]:
    """The records of a snapshot written by `dumps_snapshot`; SnapshotError naming the line."""
    records: list[UsageRecord] = []
    declared: Any = None
    if not text.strip():
        raise SnapshotError("line 1: empty: not a usage snapshot")
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            document = json.loads(raw, parse_float=Decimal)
        except ValueError as error:
            raise SnapshotError(f"line {number}: not JSON: {error}") from None
        if number == 1:
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise SnapshotError(f'line 1: not a usage snapshot (want "format": "{FORMAT}")')
            declared = document.get("records")
            continue
        records.append(record_from_json(document, number))
    if isinstance(declared, int) and declared != len(records):
        raise SnapshotError(
            f"the header says {declared} records, the file holds {len(records)}: truncated?"
        )
    return records
