"""Stripe's payment events in every order, with duplicates, on SQLite and PostgreSQL: a
terminal state (paid, void, uncollectible) never moves, an older event never undoes a newer
one, and every event is recorded once with what it did."""

import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from billing.db import table_of
from billing.invoicing.models import Invoice
from billing.stripe_sync.models import StripeEvent
from billing.stripe_sync.webhook import apply_event
from tests.corrections.test_corrections import AFTER, october  # noqa: F401 - a fixture

T0 = int(AFTER.timestamp())


def event(event_id, kind, invoice_id, minutes):
    """A Stripe event as the SDK hands it over (a mapping), `minutes` after the close."""
    return {
        "id": event_id,
        "type": kind,
        "created": T0 + 60 * minutes,
        "data": {
            "object": {
                "id": "in_remote",
                "object": "invoice",
                "metadata": {"billing_invoice_id": invoice_id},
            }
        },
    }


def deliver(engine, catalog, events):
    outcomes = []
    for item in events:
        with engine.begin() as connection:
            outcomes.append(apply_event(connection, catalog, item, AFTER).outcome)
    return outcomes


def state(engine, invoice_id):
    table = table_of(Invoice)
    with engine.connect() as connection:
        row = connection.execute(select(table).where(table.c.id == invoice_id)).one()
        recorded = dict(
            connection.execute(
                select(table_of(StripeEvent).c.id, table_of(StripeEvent).c.outcome)
            ).all()
        )
    return row, recorded


def test_payment_failed_after_paid_and_paid_after_void_change_nothing(engine, catalog, october):  # noqa: F811
    """Case 3 of the issue, both halves."""
    deliver(engine, catalog, [event("evt_paid", "invoice.paid", october, 10)])
    late = event("evt_failed", "invoice.payment_failed", october, 5)
    assert deliver(engine, catalog, [late]) == ["not_applied"]
    row, _ = state(engine, october)
    assert row.status == "paid"
    assert row.paid_at == AFTER + dt.timedelta(minutes=10)


def test_paid_after_a_void_leaves_the_invoice_void(engine, session, catalog, october):  # noqa: F811
    voided = event("evt_void", "invoice.voided", october, 3)
    paid = event("evt_paid", "invoice.paid", october, 4)
    assert deliver(engine, catalog, [voided, paid]) == ["recorded", "not_applied"]
    row, _ = state(engine, october)
    assert (row.status, row.void_reason, row.paid_at) == ("void", "voided in Stripe", None)


OPEN_EVENTS = [
    ("evt_f1", "invoice.payment_failed", 1),
    ("evt_f2", "invoice.payment_failed", 2),
    ("evt_paid", "invoice.paid", 3),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_failures_then_paid_end_paid_in_any_order_with_duplicates(engine, catalog, october, order):  # noqa: F811
    events = [event(i, kind, october, minutes) for i, kind, minutes in OPEN_EVENTS]
    arrived = [events[i] for i in order]
    arrived = arrived + arrived[:2]  # two duplicates at the end
    outcomes = deliver(engine, catalog, arrived)
    assert outcomes[-2:] == ["replayed", "replayed"]
    row, recorded = state(engine, october)
    assert (row.status, row.paid_at) == ("paid", AFTER + dt.timedelta(minutes=3))
    assert recorded["evt_paid"] == "recorded"
    assert set(recorded) == {"evt_f1", "evt_f2", "evt_paid"}  # each recorded once
    # a failure older than the one already applied, or after paid, changed nothing
    if order.index(1) < order.index(0) or order.index(2) < order.index(0):
        assert recorded["evt_f1"] == "not_applied"


TERMINAL = [
    ("evt_failed", "invoice.payment_failed", 1),
    ("evt_paid", "invoice.paid", 2),
    ("evt_void", "invoice.voided", 3),
    ("evt_bad_debt", "invoice.marked_uncollectible", 4),
]
FINAL = {"evt_paid": "paid", "evt_void": "void", "evt_bad_debt": "uncollectible"}


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_the_first_terminal_event_to_arrive_is_the_only_one_applied(
    engine,
    catalog,
    october,  # noqa: F811
    order,
):
    events = [event(i, kind, october, minutes) for i, kind, minutes in TERMINAL]
    arrived = [events[i] for i in order]
    deliver(engine, catalog, [*arrived, arrived[0]])
    row, recorded = state(engine, october)
    first_terminal = next(e["id"] for e in arrived if e["id"] in FINAL)
    assert row.status == FINAL[first_terminal]
    assert recorded[first_terminal] == "recorded"
    assert [i for i in FINAL if recorded[i] == "recorded"] == [first_terminal]
    assert len(recorded) == 4
