"""Ingestion on SQLite and PostgreSQL: idempotent, partial, exact, with a reason per refusal."""

import datetime as dt
from decimal import Decimal as D

from billing.customers.periods import period_for
from billing.metering import service as metering_service
from tests.metering.helpers import NOW, add_customer, event, ingest, update_customers


def usage(session, customer, at=NOW):
    rows = metering_service.usage_for(
        connection=session.connection(),
        customer_id=customer.id,
        period=period_for(customer.billing_anchor_day, at),
    )
    return {r.product: (r.quantity, r.events, r.duplicates, r.rejected) for r in rows}


def test_events_are_summed_per_product_and_period(session, catalog):
    customer = add_customer(session)
    result = ingest(
        session,
        catalog,
        [event("e1", 5), event("e2", "2.5"), event("e3", product="session_replay"), event("e4")],
    )
    assert (result.accepted, result.duplicates, result.rejected) == (4, 0, [])
    assert usage(session, customer) == {
        "product_analytics": (D("8.5"), 3, 0, 0),
        "session_replay": (D(1), 1, 0, 0),
    }


def test_a_retried_batch_counts_nothing_twice(session, catalog):
    customer = add_customer(session)
    batch = [event(f"e{i}", i) for i in range(1, 11)]
    assert ingest(session, catalog, batch).accepted == 10
    again = ingest(session, catalog, batch)
    assert (again.accepted, again.duplicates) == (0, 10)
    assert usage(session, customer)["product_analytics"] == (D(55), 10, 10, 0)


def test_same_id_with_other_content_is_a_conflict_and_the_first_stands(session, catalog):
    customer = add_customer(session)
    ingest(session, catalog, [event("e1", 5)])
    result = ingest(session, catalog, [event("e1", 6), event("e2", 1)])
    assert [(r.index, r.id, r.error) for r in result.rejected] == [(0, "e1", "conflict")]
    assert result.accepted == 1
    assert usage(session, customer)["product_analytics"] == (D(6), 2, 0, 1)


def test_duplicates_inside_one_batch(session, catalog):
    add_customer(session)
    result = ingest(session, catalog, [event("e1", 5), event("e1", 5), event("e1", 7)])
    assert (result.accepted, result.duplicates) == (1, 1)
    assert [(r.index, r.error) for r in result.rejected] == [(2, "conflict")]


def test_equal_content_in_another_spelling_is_still_a_duplicate(session, catalog):
    add_customer(session)
    ingest(session, catalog, [event("e1", 5, at="2026-11-24T10:00:00Z")])
    retry = ingest(session, catalog, [event("e1", "5.000", at="2026-11-24T11:00:00+01:00")])
    assert (retry.accepted, retry.duplicates, retry.rejected) == (0, 1, [])


def test_each_refusal_has_its_reason_and_good_events_beside_them_are_kept(session, catalog):
    customer = add_customer(session, billing_start="2026-10-01T00:00:00Z")  # October closed:
    update_customers(
        session.connection(), "cust_1", closed_through=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    )
    session.commit()
    batch = [
        event("ok1"),
        event("u1", customer="nobody"),
        event("p1", product="teleportation"),
        event("f1", at="2026-11-24T12:06:00Z"),
        event("c1", at="2026-10-31T23:59:59Z"),
        {"customer": "cust_1", "product": "surveys", "timestamp": "2026-11-24T10:00:00Z"},
        event("x" * 201),
        event("q1", -3),
        event("q2", "NaN"),
        event("q3", "abc"),
        event("q4", 10**15 + 1),
        event("t1", at="2026-11-24T10:00:00"),
        {**event("k1"), "colour": "blue"},
        "not an object",
        event("ok2", at="2026-11-24T12:04:59Z"),
    ]
    result = ingest(session, catalog, batch)
    errors = {r.index: r.error for r in result.rejected}
    assert errors == {
        1: "unknown_customer",
        2: "unknown_product",
        3: "timestamp_in_future",
        4: "period_closed",
        5: "invalid: id: is required",
        6: "invalid: id: longer than 200 characters",
        7: "invalid: quantity: quantity must be a non-negative number, got -3",
        8: "invalid: quantity: quantity must be a finite number, got NaN",
        9: "invalid: quantity: quantity must be a number, got 'abc'",
        10: "invalid: quantity: quantity must be at most 10^15, got 1000000000000001",
        11: "invalid: timestamp: needs a time zone (Z or +00:00): '2026-11-24T10:00:00'",
        12: "invalid: colour: unknown field",
        13: "invalid: event: must be a JSON object",
    }
    assert result.accepted == 2
    assert usage(session, customer)["product_analytics"][:2] == (D(2), 2)


def test_quantity_defaults_to_one_and_keeps_twelve_decimals(session, catalog):
    customer = add_customer(session)
    plain = event("e1")
    del plain["quantity"]
    ingest(session, catalog, [plain, event("e2", "0.000000000001")])
    assert usage(session, customer)["product_analytics"][0] == D("1.000000000001")


def test_periods_follow_the_customer_anchor_day(session, catalog):
    customer = add_customer(session, anchor=15, billing_start="2026-10-15T00:00:00Z")
    ingest(
        session,
        catalog,
        [event("a", 1, at="2026-11-14T23:59:59Z"), event("b", 10, at="2026-11-15T00:00:00Z")],
    )
    october = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert usage(session, customer, october)["product_analytics"][0] == 1
    assert usage(session, customer)["product_analytics"][0] == 10


def test_ids_are_global_and_forever(session, catalog):
    add_customer(session, "a")
    add_customer(session, "b")
    ingest(session, catalog, [event("shared", customer="a")])
    later = NOW + dt.timedelta(days=40)
    result = ingest(
        session, catalog, [event("shared", customer="b", at="2026-12-30T00:00:00Z")], now=later
    )
    assert [r.error for r in result.rejected] == ["conflict"]


def test_an_absurd_quantity_is_one_rejection_not_a_failed_batch(session, catalog):
    add_customer(session)
    result = ingest(session, catalog, [event("bad", "1E-9999999"), event("good")])
    assert result.accepted == 1
    assert [(r.index, r.error.split(":")[1].strip()) for r in result.rejected] == [(0, "quantity")]


def test_running_totals_of_huge_quantities_are_exact(session, catalog):
    customer = add_customer(session)
    big = "999999999999999.999999999999"
    ingest(session, catalog, [event(f"h{i}", big) for i in range(3)])
    ingest(session, catalog, [event(f"k{i}", big) for i in range(3)])
    assert usage(session, customer)["product_analytics"][0] == D(big) * 6
