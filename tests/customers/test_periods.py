"""Monthly periods from the anchor day: month ends, year ends, leap years, anchors 28-31."""

import datetime as dt

import pytest

from billing.customers.periods import period_for, period_from_label


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("anchor", "instant", "start", "end"),
    [
        (1, utc(2026, 11, 24, 10), utc(2026, 11, 1), utc(2026, 12, 1)),
        (1, utc(2026, 11, 30, 23, 59, 59, 999999), utc(2026, 11, 1), utc(2026, 12, 1)),
        (1, utc(2026, 12, 1), utc(2026, 12, 1), utc(2027, 1, 1)),  # the end is exclusive
        (1, utc(2026, 12, 31, 23, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
        (15, utc(2026, 1, 14, 23, 59), utc(2025, 12, 15), utc(2026, 1, 15)),  # across a year
        (15, utc(2026, 1, 15), utc(2026, 1, 15), utc(2026, 2, 15)),
        (28, utc(2024, 2, 29, 12), utc(2024, 2, 28), utc(2024, 3, 28)),  # leap day
        (28, utc(2025, 2, 27), utc(2025, 1, 28), utc(2025, 2, 28)),
        (28, utc(2025, 3, 1), utc(2025, 2, 28), utc(2025, 3, 28)),
        (1, utc(2024, 2, 29, 23, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
    ],
)
def test_the_period_containing_an_instant(anchor, instant, start, end):
    period = period_for(anchor, instant)
    assert (period.start, period.end) == (start, end)
    assert period.contains(instant)


def test_other_time_zones_are_converted_to_utc_first():
    # 2026-12-01T00:30+01:00 is still November 30th in UTC.
    instant = dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert period_for(1, instant).label == "2026-11"


@pytest.mark.parametrize("anchor", [0, 29, 30, 31])
def test_anchor_days_past_28_are_refused_not_moved(anchor):
    with pytest.raises(ValueError, match="1 to 28"):
        period_for(anchor, utc(2026, 1, 1))


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="aware"):
        period_for(1, dt.datetime(2026, 1, 1))


def test_labels_name_the_month_a_period_starts_in():
    period = period_from_label("2026-12", 10)
    assert (period.start, period.end, period.label) == (
        utc(2026, 12, 10),
        utc(2027, 1, 10),
        "2026-12",
    )
    for bad in ("2026-13", "2026-1", "26-01", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            period_from_label(bad, 1)


def test_consecutive_periods_tile_time_without_gaps():
    instant = utc(2023, 1, 20)
    for _ in range(40):
        period = period_for(20, instant)
        following = period_for(20, period.end)
        assert following.start == period.end
        instant = period.end
