"""Products as selections over what is metered (docs/tier-files.md, "Sources"), on both
engines: an event counted by two products (analytics events, and identified events as an
add-on selected by a property filter), a local flag evaluation counted ten times, event
properties validated and part of an event's identity, a cap that refuses an event for one
product while the other bills it, and the close billing each product what it counted."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from billing.catalog.loader import load_catalog, validate_directory
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest

AT = "2026-10-20T10:00:00Z"
NOW = dt.datetime(2026, 10, 21, tzinfo=dt.UTC)
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)

IDENTIFIED = """
key = "identified_events"
name = "Identified events"
unit = "event"
currency = "USD"
model = "graduated"
sources = [{ event = "product_analytics" }, { event = "pageview" }]
where = { person_mode = ["full", "force_upgrade"] }

[[versions]]
effective_from = 2024-01-01
tiers = [{ up_to = "inf", unit_price = "0.0001" }]
"""

FLAGS_SOURCES = """sources = [
  { event = "feature_flags" },
  { event = "flag_decide" },
  { event = "flag_local_evaluation", multiplier = "10" },
]
"""


@pytest.fixture
def catalog(tmp_path):
    """The shipped catalogue (whose feature flags count decide calls once and local
    evaluations ten times), plus identified events as an add-on of product analytics."""
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "identified_events.toml").write_text(IDENTIFIED)
    assert FLAGS_SOURCES in (directory / "feature_flags.toml").read_text()
    return load_catalog(directory)


def sent(event_id, quantity=1, *, properties=None, meter=("product", "product_analytics")):
    made = {"id": event_id, "customer": "cust_1", meter[0]: meter[1], "quantity": quantity}
    made["timestamp"] = AT
    if properties is not None:
        made["properties"] = properties
    return made


def quantities(session):
    rows = session.connection().execute(
        text("SELECT product, quantity, events FROM usage WHERE customer_id = 'cust_1'")
    )
    return {row.product: (D(row.quantity), row.events) for row in rows}


def test_an_event_counts_toward_every_product_that_selects_it(session, catalog):
    add_customer(session, billing_start=START)
    result = ingest(
        session,
        catalog,
        [
            sent("a1", 100, properties={"person_mode": "full", "project": "web"}),
            sent("a2", 40, properties={"person_mode": "anonymous"}),
            sent("a3", 7),  # no properties: the filter leaves it out
            sent("p1", 5, properties={"person_mode": "force_upgrade"}, meter=("event", "pageview")),
            sent("f1", 3, meter=("event", "flag_decide")),
            sent("f2", D("2.5"), meter=("event", "flag_local_evaluation")),
            sent("f3", 1, meter=("product", "feature_flags")),
        ],
        now=NOW,
    )
    assert (result.accepted, result.rejected) == (7, [])
    assert quantities(session) == {
        "product_analytics": (D(147), 3),
        "identified_events": (D(105), 2),  # a1 and the pageview p1
        "feature_flags": (D(3) + D(25) + D(1), 3),  # 2.5 local evaluations count 25
    }


def test_an_event_no_product_selects_is_unknown_product_alone(session, catalog):
    add_customer(session, billing_start=START)
    result = ingest(
        session,
        catalog,
        [
            sent("x1", meter=("event", "flag_remote_config")),
            sent("x2", properties={"person_mode": "anonymous"}, meter=("event", "pageview")),
            sent("ok", 2, meter=("event", "flag_decide")),
        ],
        now=NOW,
    )
    assert [(r.id, r.error) for r in result.rejected] == [
        ("x1", "unknown_product"),
        ("x2", "unknown_product"),  # pageviews count only for identified persons
    ]
    assert quantities(session) == {"feature_flags": (D(2), 1)}


@pytest.mark.parametrize(
    ("properties", "error"),
    [
        ([1, 2], "invalid: properties: must be a JSON object of names to strings or numbers"),
        ({"a b": "x"}, "invalid: properties: 'a b': a property name is 1 to 40 letters"),
        ({"p": None}, "invalid: properties.p: must be a string or a number"),
        ({"p": True}, "invalid: properties.p: must be a string or a number"),
        ({"p": {"q": 1}}, "invalid: properties.p: must be a string or a number"),
        ({"p": "x" * 201}, "invalid: properties.p: at most 200 characters"),
        ({"p": "a\x00b"}, "invalid: properties.p: contains a NUL character"),
        ({f"p{i}": i for i in range(21)}, "invalid: properties: at most 20 properties, got 21"),
        ({"p": D("1e-13")}, "invalid: properties.p: must be a string or a number"),
        ({"p": D("1e16")}, "invalid: properties.p: must be a string or a number"),
        ({f"p{i}": "x" * 190 for i in range(11)}, "invalid: properties: at most 2,000 bytes"),
    ],
)
def test_bad_properties_reject_that_event_alone(session, catalog, properties, error):
    add_customer(session, billing_start=START)
    result = ingest(session, catalog, [sent("bad", properties=properties), sent("good")], now=NOW)
    [rejected] = result.rejected
    assert rejected.id == "bad"
    assert rejected.error.startswith(error), rejected.error
    assert result.accepted == 1


def test_properties_are_part_of_an_events_content(session, catalog):
    add_customer(session, billing_start=START)
    first = {"person_mode": "full", "plan": 5, "weight": D("1.50")}
    ingest(session, catalog, [sent("e1", properties=first)], now=NOW)
    same = {"weight": D("1.5"), "plan": D("5.0"), "person_mode": "full"}  # other order, forms
    other = {"person_mode": "anonymous", "plan": 5, "weight": D("1.5")}
    result = ingest(
        session,
        catalog,
        [sent("e1", properties=same), sent("e1", properties=other), sent("e1")],
        now=NOW,
    )
    assert result.duplicates == 1
    assert [(r.index, r.error) for r in result.rejected] == [(1, "conflict"), (2, "conflict")]
    stored = session.connection().execute(text("SELECT properties FROM event")).scalar_one()
    assert stored == '{"person_mode":"full","plan":5,"weight":1.5}'
    assert quantities(session)["identified_events"] == (D(1), 1)  # counted once


def test_a_cap_refuses_an_event_for_one_product_while_the_other_bills_it(session, catalog):
    add_customer(session, billing_start=START)
    # identified events at 0.0001 each: a cap of 0.01 buys 100 of them
    set_cap(session.connection(), catalog, "cust_1", "identified_events", D("0.01"), START)
    session.commit()
    full = {"person_mode": "full"}
    result = ingest(
        session,
        catalog,
        [
            sent("c1", 80, properties=full),
            sent("c2", 30, properties=full),
            sent("c3", 5, properties=full),
        ],
        now=NOW,
    )
    assert result.as_json() == {
        "accepted": 3,  # every one counted by product analytics
        "duplicates": 0,
        "over_limit": ["c3"],
        "over_limit_products": {"c3": ["identified_events"]},
        "rejected": [],
    }
    assert quantities(session) == {
        "product_analytics": (D(115), 3),
        "identified_events": (D(110), 2),  # c2 crossed the limit and is accepted
    }
    row = (
        session.connection()
        .execute(text("SELECT status, over_limit_products FROM event WHERE id = 'c3'"))
        .one()
    )
    assert tuple(row) == ("over_limit", "identified_events")

    # An event every product refuses is over_limit, not accepted.
    set_cap(session.connection(), catalog, "cust_1", "product_analytics", D("0"), START)
    session.commit()
    # (c4 crosses the free allowance a cap of 0 keeps, and is accepted by analytics)
    refused = ingest(
        session,
        catalog,
        [sent("c4", 2_000_000, properties=full), sent("c5", 1, properties=full)],
        now=NOW,
    )
    assert (refused.accepted, refused.over_limit) == (1, ["c4", "c5"])
    assert refused.as_json()["over_limit_products"]["c4"] == ["identified_events"]
    assert sorted(refused.as_json()["over_limit_products"]["c5"]) == [
        "identified_events",
        "product_analytics",
    ]


def test_the_close_bills_each_product_what_it_counted(engine, session, catalog):
    add_customer(session, billing_start=START)
    ingest(
        session,
        catalog,
        [
            sent("a1", 2_000_000, properties={"person_mode": "full"}),
            sent("f1", 150_000, meter=("event", "flag_local_evaluation")),
        ],
        now=NOW,
    )
    assert close_due(
        engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.timedelta(hours=1)
    )
    with engine.connect() as connection:
        lines = {
            row.product: (D(row.quantity), D(row.amount))
            for row in connection.execute(
                text("SELECT product, quantity, amount FROM invoice_line WHERE kind = 'usage'")
            )
        }
    assert lines["product_analytics"][0] == D(2_000_000)
    assert lines["identified_events"] == (D(2_000_000), D("200.00"))  # 2,000,000 x 0.0001
    assert lines["feature_flags"][0] == D(1_500_000)  # 150,000 local evaluations x 10


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            'sources = [{ event = "pageview" }, { event = "pageview" }]',
            "sources[1].event",
            "'pageview' is counted twice (also sources[0])",
        ),
        ("where = { person_mode = [] }", "where.person_mode", "list at least one value"),
        ('sources = [{ event = "x", multiplier = "0" }]', "sources[0].multiplier", "above 0"),
        ('sources = [{ event = "x", multiplier = 10.5 }]', "sources[0].multiplier", "TOML float"),
        (
            'sources = [{ event = "x", multiplier = "1.1234567" }]',
            "sources[0].multiplier",
            "7 decimal places; at most 6",
        ),
        ('sources = [{ event = "no spaces" }]', "sources[0].event", "pattern"),
        (
            'sources = [{ event = "feature_flags" }]',
            "sources[0].event",
            "'feature_flags' is a product that counts other events ('flag_decide', "
            "'flag_local_evaluation'), not an event",
        ),
    ],
)
def test_sources_and_filters_are_checked_with_file_and_key_path(tmp_path, change, path, message):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    flags = (directory / "feature_flags.toml").read_text()
    # feature flags counting decide calls and local evaluations, not events of its key
    only_flags = FLAGS_SOURCES.replace('  { event = "feature_flags" },\n', "")
    (directory / "feature_flags.toml").write_text(flags.replace(FLAGS_SOURCES, only_flags, 1))
    if "feature_flags" in change:
        flags_source = IDENTIFIED.replace(
            'sources = [{ event = "product_analytics" }, { event = "pageview" }]', change
        )
    else:
        flags_source = IDENTIFIED.replace(
            'sources = [{ event = "product_analytics" }, { event = "pageview" }]'
            if change.startswith("sources")
            else 'where = { person_mode = ["full", "force_upgrade"] }',
            change,
        )
    (directory / "identified_events.toml").write_text(textwrap.dedent(flags_source))
    problems = [p for p in validate_directory(directory) if p.file == "identified_events.toml"]
    assert [p.path for p in problems] == [path], problems
    assert message in problems[0].message
