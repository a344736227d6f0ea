"""Breakdowns by dimension (docs/tier-files.md, "Dimensions"; docs/invoicing.md,
"Breakdowns"), on both engines: accepted usage kept per project with the running totals,
values beyond the declared maximum folded into "(other)" (never an error, never lost),
duplicates and over-limit events not counted, and the invoice line split by project with
amounts that sum to the line to the cent, for random data too."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from billing.catalog.loader import load_catalog
from billing.invoicing.service import get_invoice, list_invoices, upcoming
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest

AT = "2026-10-20T10:00:00Z"
NOW = dt.datetime(2026, 10, 21, tzinfo=dt.UTC)
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
CLOSE = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
examples = itertools.count()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The shipped catalogue with product analytics broken down by project, keeping at most
    3 distinct projects per customer and period."""
    directory = tmp_path_factory.mktemp("tiers") / "tiers"
    shutil.copytree(TIERS, directory)
    path = directory / "product_analytics.toml"
    path.write_text(
        path.read_text().replace(
            'dimensions = ["project"]   # invoices say which project made the bill\n',
            'dimensions = ["project"]\nmax_dimension_values = 3\n',
            1,
        )
    )
    return load_catalog(directory)


def sent(event_id, quantity, project=None, customer="cust_1", at=AT):
    made = {
        "id": event_id,
        "customer": customer,
        "product": "product_analytics",
        "quantity": quantity,
        "timestamp": at,
    }
    if project is not None:
        made["properties"] = {"project": project, "sdk": "js"}
    return made


def breakdown(session, customer="cust_1"):
    rows = session.connection().execute(
        text("SELECT dimensions, quantity, events FROM usage_breakdown WHERE customer_id = :c"),
        {"c": customer},
    )
    return {row.dimensions: (D(row.quantity), row.events) for row in rows}


def test_usage_is_kept_by_project_and_folds_beyond_the_maximum(session, catalog):
    add_customer(session, billing_start=START)
    ingest(
        session,
        catalog,
        [sent("e1", 100, "web"), sent("e2", 50, "api"), sent("e3", 7), sent("e4", 1, "web")],
        now=NOW,
    )
    # a fourth and fifth distinct value: folded, in the batch after
    result = ingest(
        session,
        catalog,
        [
            sent("e5", 20, "mobile"),
            sent("e6", 3, "ios"),
            sent("e7", 2, "api"),
            sent("e1", 100, "web"),
        ],
        now=NOW,
    )
    assert (result.accepted, result.duplicates) == (3, 1)
    assert breakdown(session) == {
        '{"project":"web"}': (D(101), 2),
        '{"project":"api"}': (D(52), 2),
        '{"project":"(none)"}': (D(7), 1),
        '{"project":"(other)"}': (D(23), 2),
    }
    total = (
        session.connection()
        .execute(text("SELECT quantity FROM usage WHERE customer_id = 'cust_1'"))
        .scalar_one()
    )
    assert D(total) == D(101 + 52 + 7 + 23)  # the parts are the running total


def test_later_batches_add_to_stored_parts_and_to_other_per_customer(session, catalog):
    """A batch reads only the parts it adds to: stored values and "(other)" grow, a new
    value still folds once three are kept, and another customer in the same batch keeps
    values of its own (the limit is per customer)."""
    add_customer(session, billing_start=START)
    add_customer(session, "cust_2", billing_start=START)
    batches = [
        [sent("a1", 1, "web"), sent("a2", 2, "api"), sent("a3", 4, "ios")],
        [sent("a4", 8, "mac"), sent("a5", 16, "web")],  # mac folds
        [
            sent("a6", 32, "linux"),  # folds into the stored "(other)"
            sent("a7", 64, "mac"),  # folded before, folds again
            sent("a8", 128, "api"),
            sent("b1", 5, "mac", customer="cust_2"),
            sent("b2", 6, "linux", customer="cust_2"),
        ],
    ]
    for batch in batches:
        result = ingest(session, catalog, batch, now=NOW)
        assert result.accepted == len(batch)
    assert breakdown(session) == {
        '{"project":"web"}': (D(17), 2),
        '{"project":"api"}': (D(130), 2),
        '{"project":"ios"}': (D(4), 1),
        '{"project":"(other)"}': (D(104), 3),
    }
    assert breakdown(session, "cust_2") == {
        '{"project":"mac"}': (D(5), 1),
        '{"project":"linux"}': (D(6), 1),
    }


def test_over_limit_events_are_in_no_part(session, catalog):
    add_customer(session, billing_start=START)
    # a cap of 0 keeps the free allowance: 1,000,000 events
    set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(0), START)
    session.commit()
    result = ingest(
        session,
        catalog,
        [sent("a", 900_000, "web"), sent("b", 200_000, "api"), sent("c", 5, "web")],
        now=NOW,
    )
    assert result.over_limit == ["c"]
    assert breakdown(session) == {
        '{"project":"web"}': (D(900_000), 1),
        '{"project":"api"}': (D(200_000), 1),  # the crossing event, accepted in full
    }


def test_the_invoice_line_is_split_by_project_to_the_cent(engine, session, catalog):
    add_customer(session, billing_start=START)
    events = [sent("w", 2_000_000, "web"), sent("a", 1_000_000, "api"), sent("n", 1)]
    ingest(session, catalog, events, now=NOW)
    assert close_due(engine, catalog, CLOSE, dt.timedelta(hours=1))
    with engine.connect() as connection:
        [summary] = list_invoices(connection, "cust_1")
        invoice = get_invoice(connection, summary.id, due_days=0)
    [line] = [line for line in invoice.lines if line.product == "product_analytics"]
    # 3,000,001 events: 84.30 (1,000,000 free, then 0.00005 and 0.0000343 a unit, rounded)
    assert line.amount == "84.30"
    assert [(p.dimensions, p.quantity, p.amount) for p in line.breakdown] == [
        ({"project": "web"}, "2000000", "56.20"),
        ({"project": "api"}, "1000000", "28.10"),
        ({"project": "(none)"}, "1", "0.00"),
    ]
    assert line.tiers  # the tier breakdown is still there
    others = [line for line in invoice.lines if line.product != "product_analytics"]
    assert all(line.breakdown is None for line in others)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    usage=st.lists(
        st.tuples(
            st.sampled_from(["web", "api", "ios", "android", "cli", None]),
            st.integers(1, 3_000_000),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_parts_sum_to_the_line_to_the_cent_for_random_usage(engine, catalog, usage):
    from sqlmodel import Session

    customer = f"r{next(examples)}"
    with Session(engine) as session:
        add_customer(session, customer_id=customer, billing_start=START)
        events = [
            sent(f"{customer}_{i}", quantity, project, customer=customer)
            for i, (project, quantity) in enumerate(usage)
        ]
        ingest(session, catalog, events, now=NOW)
    close_due(engine, catalog, CLOSE, dt.timedelta(hours=1))
    with engine.connect() as connection:
        [summary] = list_invoices(connection, customer)
        invoice = get_invoice(connection, summary.id, due_days=0)
    [line] = [line for line in invoice.lines if line.product == "product_analytics"]
    assert sum(D(p.amount) for p in line.breakdown) == D(line.amount)
    assert sum(D(p.quantity) for p in line.breakdown) == sum(q for _, q in usage)
    assert len(line.breakdown) <= 4  # 3 projects, then "(other)"


def test_late_events_with_properties_join_their_closed_periods_breakdown(engine, catalog):
    """Late usage (the amend policy) lands in its own period's parts; the next invoice bills
    it as an adjustment, which is not broken down (docs/invoicing.md, "Breakdowns"); a resent
    late event is a duplicate and moves no part."""
    import dataclasses

    from sqlmodel import Session

    from billing.catalog.models import LatePolicy

    amend = dataclasses.replace(catalog, late_usage=LatePolicy(True, dt.timedelta(days=10)))
    with Session(engine) as session:
        add_customer(session, billing_start=START)
        ingest(session, amend, [sent("e1", 2_000_000, "web")], now=NOW)
    close_due(engine, amend, CLOSE, dt.timedelta(hours=1))
    late_at = CLOSE + dt.timedelta(days=2)
    with Session(engine) as session:
        result = ingest(session, amend, [sent("late", 500_000, "api")], now=late_at)
        assert result.accepted == 1
        again = ingest(session, amend, [sent("late", 500_000, "api")], now=late_at)
        assert again.duplicates == 1
        assert breakdown(session) == {
            '{"project":"web"}': (D(2_000_000), 1),
            '{"project":"api"}': (D(500_000), 1),
        }
        session.commit()
    with engine.connect() as connection:  # November's invoice, as it stands
        november = upcoming(connection, amend, "cust_1", late_at)
    [adjustment] = [line for line in november.lines if line.kind == "adjustment"]
    assert adjustment.quantity == "500000"
    assert adjustment.breakdown is None
