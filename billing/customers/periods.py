"""Billing periods: monthly, from the customer's anchor day at 00:00 UTC. Pure.

A period runs from the anchor day of one month (inclusive) to the anchor day of the next
(exclusive) and is labelled by the month it starts in: with anchor day 15, "2026-11" is
2026-11-15T00:00Z .. 2026-12-15T00:00Z. Anchor days stop at 28 so that every month has one:
29, 30 and 31 are refused rather than silently moved.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MIN_ANCHOR_DAY, MAX_ANCHOR_DAY = 1, 28
_LABEL = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime  # inclusive, UTC
    end: dt.datetime  # exclusive, UTC

    @property
    def label(self) -> str:
        return f"{self.start.year:04d}-{self.start.month:02d}"

    def contains(self, instant: dt.datetime) -> bool:
        return self.start <= instant < self.end


def _check_anchor(anchor_day: int) -> None:
    if not MIN_ANCHOR_DAY <= anchor_day <= MAX_ANCHOR_DAY:
        raise ValueError(f"billing_anchor_day must be 1 to 28, got {anchor_day}")


def _start(year: int, month: int, anchor_day: int) -> dt.datetime:
    return dt.datetime(year, month, anchor_day, tzinfo=dt.UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def period_starting(year: int, month: int, anchor_day: int) -> Period:
    """The period that starts in `year`-`month`."""
    _check_anchor(anchor_day)
    return Period(_start(year, month, anchor_day), _start(*_next_month(year, month), anchor_day))


def period_for(anchor_day: int, instant: dt.datetime) -> Period:
    """The period containing `instant` (an aware datetime)."""
    if instant.tzinfo is None:
        raise ValueError("period_for needs an aware datetime")
    instant = instant.astimezone(dt.UTC)
    year, month = instant.year, instant.month
    if instant.day < anchor_day:
        year, month = _previous_month(year, month)
    return period_starting(year, month, anchor_day)


def period_from_label(label: str, anchor_day: int) -> Period:
    """The period labelled `label` ("YYYY-MM")."""
    match = _LABEL.match(label)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"a period is written YYYY-MM, got {label!r}")
    return period_starting(int(match[1]), int(match[2]), anchor_day)


def is_closed(closed_through: dt.datetime | None, instant: dt.datetime) -> bool:
    """Whether `instant` lies in a period already closed: the one definition ingestion and
    the close share (a customer's periods are closed up to `closed_through`, exclusive)."""
    return closed_through is not None and instant < closed_through
