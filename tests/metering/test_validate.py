"""parse_event's one-pass path (a batch's caches given) answers exactly what its full checks do."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.metering.validate import ParsedEvent, parse_event


def _event(stamp: object, **more: object) -> dict[str, object]:
    return {
        "id": "e1",
        "customer": "cust_1",
        "product": "product_analytics",
        "quantity": 3,
        "timestamp": stamp,
        **more,
    }


@pytest.mark.parametrize(
    "raw",
    [
        _event("2026-11-24T10:00:00Z"),
        _event("2026-11-24T11:00:00.250000+01:00"),
        _event("2026-11-24T10:00:00Z", properties={"project": "web"}),
        _event("2026-11-24T10:00:00"),  # no time zone
        _event("24/11/2026 10:00"),  # not ISO 8601
        _event("0001-01-01T00:30:00+01:00"),  # before year 1 once in UTC
        _event(1764000000),
        _event(None),
        _event("2026-11-24T10:00:00Z", quantity=-1),
        _event("2026-11-24T10:00:00Z", id=" "),
    ],
)
def test_an_unseen_timestamp_gives_what_the_full_checks_give(raw):
    seen: dict[str, dt.datetime] = {}
    fast = parse_event(raw, 0, seen, {})
    assert fast == parse_event(raw, 0)  # without caches: the full checks only
    again = parse_event(raw, 1, seen, {})  # the stamp now cached, when it parsed
    assert again == parse_event(raw, 1)
    if isinstance(fast, ParsedEvent):
        assert fast.timestamp.tzinfo == dt.UTC
        assert seen == {raw["timestamp"]: fast.timestamp}
    elif "timestamp" in fast.error:  # a timestamp that does not parse is never cached
        assert seen == {}


def test_an_offset_is_converted_to_utc_once_cached():
    seen: dict[str, dt.datetime] = {}
    parsed = parse_event(_event("2026-11-24T11:00:00+01:00"), 0, seen, {})
    assert isinstance(parsed, ParsedEvent)
    assert parsed.timestamp == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    assert parsed.quantity == Decimal(3)
