"""Spend caps at ingestion on SQLite and PostgreSQL: q_max, the crossing event, raising,
lowering below accrued, a new period, the discount, and alerts that fire once.

product_analytics: 1,000,000 free, then $0.00005 per event up to 2,000,000.
A $10 cap buys 200,000 paid events: q_max = 1,200,000.
"""

import datetime as dt
from decimal import Decimal as D

from sqlalchemy import select, text

from billing.alerts.models import Alert
from billing.caps import service as caps_service
from billing.caps.quota import line_total
from billing.metering import quota as quota_service
from billing.pricing.caps import max_quantity_within_cap
from tests.metering.helpers import NOW, add_customer, event, ingest

PA = "product_analytics"


def set_cap(session, catalog, amount, now=NOW, product=PA):
    change = quota_service.set_cap(
        connection=session.connection(),
        catalog=catalog,
        customer_id="cust_1",
        product=product,
        amount=None if amount is None else D(amount),
        actor="admin key 1",
        now=now,
    )
    session.commit()
    return change


def quota(session, catalog, now=NOW, product=PA):
    [view] = quota_service.quotas(session.connection(), catalog, "cust_1", now, [product])
    return view


def alert_kinds(session):
    rows = session.connection().execute(select(Alert.__table__.c.kind))
    return sorted(r.kind for r in rows)


def test_the_crossing_event_is_accepted_and_later_ones_are_over_limit(session, catalog):
    add_customer(session)
    change = set_cap(session, catalog, "10")
    assert change.quota.q_max == D(1_200_000)
    assert change.effect.startswith("Takes effect at once: up to 1,200,000 events")
    result = ingest(
        session, catalog, [event("e1", 1_199_999), event("e2", 5), event("e3", 1), event("e4")]
    )
    assert (result.accepted, result.over_limit) == (2, ["e3", "e4"])
    assert result.as_json()["over_limit"] == ["e3", "e4"]
    view = quota(session, catalog)
    assert view.accepted == D(1_200_004)
    assert view.billed == D(1_200_000)
    assert view.accrued == D("10.00")  # the line never exceeds the cap
    assert (view.over_limit_events, view.over_limit_quantity) == (2, D(2))
    assert view.status == "limited"
    statuses = session.connection().execute(text("SELECT id, status FROM event ORDER BY id"))
    assert dict(statuses.all()) == {
        "e1": "accepted",
        "e2": "accepted",
        "e3": "over_limit",
        "e4": "over_limit",
    }
    # a retry of an over-limit event is a duplicate, not a second over-limit event
    again = ingest(session, catalog, [event("e3", 1)])
    assert (again.duplicates, again.over_limit) == (1, [])


def test_alerts_fire_once_per_product_and_period(session, catalog):
    add_customer(session)
    set_cap(session, catalog, "10")
    ingest(session, catalog, [event("e1", 999_999)])
    assert alert_kinds(session) == []
    ingest(session, catalog, [event("e2", 1)])  # free allowance used up
    assert alert_kinds(session) == ["free_allowance"]
    ingest(session, catalog, [event("e3", 100_000)])  # $5.00: 50 %
    assert alert_kinds(session) == ["cap_50", "free_allowance"]
    ingest(session, catalog, [event("e4", 100_000), event("e5"), event("e6")])  # limited
    # 80 % and 100 % passed by one batch: one alert, for the cap; 80 % counts as fired with it
    assert alert_kinds(session) == ["cap_100", "cap_50", "free_allowance"]
    ingest(session, catalog, [event("e7")])
    assert len(alert_kinds(session)) == 3
    # "limited": spend_cap.reached was recorded (an event, not an alert; hidden from answers)
    assert quota(session, catalog).alerts_fired == (
        "cap_100",
        "cap_50",
        "cap_80",
        "free_allowance",
        "limited",
    )


def test_one_event_past_every_threshold_sends_one_alert_with_money_in_its_currency(
    session, catalog
):
    add_customer(session)
    set_cap(session, catalog, "10")
    ingest(session, catalog, [event("e1", 3_000_000)])  # from nothing past the cap at once
    messages = session.connection().execute(text("SELECT kind, message FROM alert")).all()
    cap_alerts = [(kind, message) for kind, message in messages if kind.startswith("cap_")]
    assert len(cap_alerts) == 1
    kind, message = cap_alerts[0]
    assert kind == "cap_100"
    assert "10.00 USD" in message
    # "limited": spend_cap.reached was recorded (an event, not an alert; hidden from answers)
    assert quota(session, catalog).alerts_fired == (
        "cap_100",
        "cap_50",
        "cap_80",
        "free_allowance",
        "limited",
    )


def test_raising_takes_effect_at_once(session, catalog):
    add_customer(session)
    set_cap(session, catalog, "10")
    ingest(session, catalog, [event("e1", 1_200_000), event("e2")])
    assert quota(session, catalog).status == "limited"
    change = set_cap(session, catalog, "20")
    assert change.quota.limit_quantity == D(1_400_000)
    assert change.quota.status != "limited"
    assert ingest(session, catalog, [event("e3", 7)]).accepted == 1


def test_lowering_below_accrued_freezes_until_the_next_period(session, catalog):
    add_customer(session)
    set_cap(session, catalog, "20")
    ingest(session, catalog, [event("e1", 1_100_000)])  # $5.00 accrued
    change = set_cap(session, catalog, "1")  # buys 1,020,000
    assert change.quota.limit_quantity == D(1_100_000)  # frozen at what is billed
    assert change.quota.accrued == D("5.00")  # accrued usage stays billed
    assert "Lowered below what this period already accrued" in change.effect
    assert "from the next period" in change.effect
    assert ingest(session, catalog, [event("e2")]).over_limit == ["e2"]
    december = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
    late = event("e3", 1_020_001, at="2026-12-03T10:00:00Z")
    result = ingest(session, catalog, [late, event("e4", at="2026-12-03T10:00:00Z")], now=december)
    assert (result.accepted, result.over_limit) == (1, ["e4"])
    assert quota(session, catalog, now=december).limit_quantity == D(1_020_000)


def test_removing_a_cap_lifts_the_limit(session, catalog):
    add_customer(session)
    set_cap(session, catalog, "0")  # only the free allowance
    assert ingest(session, catalog, [event("e1", 1_000_000), event("e2")]).over_limit == ["e2"]
    change = set_cap(session, catalog, None)
    assert change.effect.startswith("No cap")
    assert (change.quota.limit_quantity, change.quota.status) == (None, "ok")
    assert ingest(session, catalog, [event("e3", 5)]).accepted == 1


def test_a_percentage_discount_stretches_the_cap(session, catalog):
    """$200 with 20 % off admits $250 of list usage (docs/spend-caps.md)."""
    add_customer(session)
    session.connection().execute(
        text("UPDATE customer SET discount_percent = '20' WHERE id = 'cust_1'")
    )
    session.commit()
    change = set_cap(session, catalog, "200", product="session_replay")
    plan = catalog.products["session_replay"].version_at(dt.date(2026, 11, 1)).plan
    # 5,000 free, then 10,000 x $0.005 + 35,000 x $0.004 + 20,000 x $0.003 = $250.00
    assert change.quota.q_max == D(70_000) == max_quantity_within_cap(plan, D(250))
    assert line_total(plan, D(70_000), D(0)) == D("250.00")
    assert line_total(plan, D(70_000), D(20)) == D("200.00")
    assert change.quota.discount_percent == D(20)


def test_cap_changes_are_audited(session, catalog):
    add_customer(session)
    set_cap(session, catalog, "10")
    set_cap(session, catalog, "25.50")
    set_cap(session, catalog, None)
    rows = caps_service.cap_changes(session.connection(), "cust_1")
    assert [(r.old_amount, r.new_amount) for r in rows] == [
        (D("25.50"), None),
        (D("10"), D("25.50")),
        (None, D("10")),
    ]
    assert {r.changed_by for r in rows} == {"admin key 1"}
