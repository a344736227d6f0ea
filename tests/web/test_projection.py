"""The portal's projected month-end cost: this period's pace, held to caps, priced exactly."""

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlmodel import Session

from billing.invoicing.projection import month_end
from billing.metering import service as metering_service
from billing.pricing.pace import at_pace
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, event

DAY = 86_400


@pytest.mark.parametrize(
    ("so_far", "elapsed", "length", "expected"),
    [
        (D(1_000_000), 10 * DAY, 30 * DAY, D(3_000_000)),
        (D(7), 3 * DAY, 30 * DAY, D(70)),
        (D(10), 7 * DAY, 30 * DAY, D(42)),  # 42.857... rounds down to whole units
        (D(5), 0, 30 * DAY, D(5)),  # nothing elapsed: nothing to scale by
        (D(5), 30 * DAY, 30 * DAY, D(5)),  # the period is over
        (D(0), 10 * DAY, 30 * DAY, D(0)),
    ],
)
def test_at_pace(so_far, elapsed, length, expected):
    assert at_pace(so_far, elapsed, length) == expected


def test_a_third_of_the_way_through_the_month_usage_triples_up_to_the_cap(engine, catalog):
    now = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)  # 10 of November's 30 days
    with Session(engine) as session:
        add_customer(session, "acme")
        set_cap(session.connection(), catalog, "acme", "session_replay", D("30.00"), now)
        metering_service.ingest(
            connection=session.connection(),
            catalog=catalog,
            raw_events=[
                event("a", 1_000_000, at="2026-11-05T00:00:00Z", customer="acme"),
                event("b", 4_000, "session_replay", at="2026-11-05T00:00:00Z", customer="acme"),
            ],
            now=now,
        )
        session.commit()
        projection = month_end(session.connection(), catalog, "acme", now)
    lines = {line.product: line for line in projection.lines}
    analytics = lines["product_analytics"]
    # 3,000,000 events: 1,000,000 free, 1,000,000 x 0.00005 = 50.00, 1,000,000 x 0.0000343
    assert (analytics.quantity, analytics.amount, analytics.capped) == (
        D(3_000_000),
        D("84.30"),
        False,
    )
    replay = lines["session_replay"]
    # 12,000 at this pace, but $30 buys 11,000 recordings: held there.
    assert (replay.quantity, replay.amount, replay.capped) == (D(11_000), D("30.00"), True)
    assert projection.total == D("114.30")
    assert projection.elapsed_days == D("10.0")
