"""Aggregations (docs/tier-files.md, "Aggregations"), on both engines: count, max,
unique_count and latest make a period's quantity as declared; each keeps the spend-cap rule
(the crossing event accepted, later ones over_limit, the line never above the cap at close);
the tier-file checks name what a declaration lacks."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from billing.catalog.loader import load_catalog, validate_directory
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 10, 25, tzinfo=dt.UTC)
CLOSE = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)

PRODUCT = """
key = "{key}"
name = "{name}"
unit = "{unit}"
currency = "USD"
model = "graduated"
{extra}

[[versions]]
effective_from = 2024-01-01
tiers = [{{ up_to = "inf", unit_price = "1" }}]
"""
PRODUCTS = {
    "api_calls": (
        "API calls",
        "call",
        'aggregation = "count"\nsources = [{ event = "api_call" }, '
        '{ event = "batch_call", multiplier = "10" }]',
    ),
    "seats": ("Seats", "seat", 'aggregation = "max"'),
    "monthly_users": (
        "Monthly active users",
        "user",
        'aggregation = "unique_count"\nunique_property = "person_id"',
    ),
    "storage": ("Storage", "gigabyte", 'aggregation = "latest"'),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiers") / "tiers"
    shutil.copytree(TIERS, directory)
    for key, (name, unit, extra) in PRODUCTS.items():
        (directory / f"{key}.toml").write_text(
            PRODUCT.format(key=key, name=name, unit=unit, extra=extra)
        )
    return load_catalog(directory)


def sent(event_id, meter, quantity=1, *, day=20, hour=10, **properties):
    made = {
        "id": event_id,
        "customer": "cust_1",
        "event": meter,
        "quantity": quantity,
        "timestamp": f"2026-10-{day:02d}T{hour:02d}:00:00Z",
    }
    if properties:
        made["properties"] = properties
    return made


def usage(session, product):
    row = (
        session.connection()
        .execute(text("SELECT quantity, events FROM usage WHERE product = :p"), {"p": product})
        .one()
    )
    session.commit()  # ends the read (SQLite: a transaction holds the writer's lock)
    return D(row.quantity), row.events


def closed_lines(engine, catalog, product):
    assert close_due(engine, catalog, CLOSE, dt.timedelta(hours=1))
    with engine.connect() as connection:
        return {
            row.kind: (D(row.quantity), D(row.amount))
            for row in connection.execute(
                text("SELECT kind, quantity, amount FROM invoice_line WHERE product = :p"),
                {"p": product},
            )
        }


def test_count_counts_events_whatever_their_quantity(session, catalog):
    add_customer(session, billing_start=START)
    ingest(
        session,
        catalog,
        [sent("c1", "api_call", 5), sent("c2", "api_call", 700), sent("c3", "batch_call", 3)],
        now=NOW,
    )
    assert usage(session, "api_calls") == (D(12), 3)  # 1 + 1 + 10 (a batch call counts 10)


def test_count_keeps_the_cap_rule(engine, session, catalog):
    add_customer(session, billing_start=START)
    set_cap(session.connection(), catalog, "cust_1", "api_calls", D(5), START)
    session.commit()
    result = ingest(
        session,
        catalog,
        [sent("c1", "api_call"), sent("c2", "batch_call"), sent("c3", "api_call", 9)],
        now=NOW,
    )
    assert (result.accepted, result.over_limit) == (2, ["c3"])  # the batch call crosses
    assert usage(session, "api_calls") == (D(11), 2)
    lines = closed_lines(engine, catalog, "api_calls")
    assert lines["usage"] == (D(5), D("5.00"))  # never above the cap
    assert lines["capped"][0] == D(6)


def test_max_keeps_the_largest_and_caps_at_the_limit(engine, session, catalog):
    add_customer(session, billing_start=START)
    set_cap(session.connection(), catalog, "cust_1", "seats", D(10), START)
    session.commit()
    first = ingest(
        session,
        catalog,
        [sent("s1", "seats", 3), sent("s2", "seats", 9), sent("s3", "seats", 4)],
        now=NOW,
    )
    assert first.accepted == 3
    assert usage(session, "seats") == (D(9), 3)
    crossing = ingest(session, catalog, [sent("s4", "seats", 12), sent("s5", "seats", 2)], now=NOW)
    assert (crossing.accepted, crossing.over_limit) == (1, ["s5"])
    assert usage(session, "seats")[0] == D(12)
    lines = closed_lines(engine, catalog, "seats")
    assert lines["usage"] == (D(10), D("10.00"))  # never above the cap
    assert lines["capped"][0] == D(2)


def test_unique_count_counts_distinct_values_once(engine, session, catalog):
    add_customer(session, billing_start=START)
    set_cap(session.connection(), catalog, "cust_1", "monthly_users", D(3), START)
    session.commit()
    result = ingest(
        session,
        catalog,
        [
            sent("u1", "monthly_users", person_id="ann"),
            sent("u2", "monthly_users", person_id="bob"),
            sent("u3", "monthly_users", person_id="ann"),
            sent("u4", "monthly_users", person_id=42),
            sent("u5", "monthly_users"),  # no person_id: said why
            sent("u6", "monthly_users", person_id="cid"),  # a fourth: over the cap
        ],
        now=NOW,
    )
    assert [(r.id, r.error) for r in result.rejected] == [
        (
            "u5",
            "invalid: properties.person_id: required by monthly_users, which counts its "
            "distinct values",
        )
    ]
    assert (result.accepted, result.over_limit) == (4, ["u6"])
    assert usage(session, "monthly_users")[0] == D(3)  # ann, bob, 42
    again = ingest(session, catalog, [sent("u7", "monthly_users", person_id="bob")], now=NOW)
    assert again.over_limit == ["u7"]  # limited: later events are over the limit
    values = session.connection().execute(text("SELECT value FROM usage_unique")).scalars()
    assert sorted(values) == ["42", "ann", "bob"]
    session.commit()
    assert closed_lines(engine, catalog, "monthly_users")["usage"] == (D(3), D("3.00"))


def test_latest_is_the_reading_with_the_latest_time(engine, session, catalog):
    add_customer(session, billing_start=START)
    ingest(
        session,
        catalog,
        [sent("g1", "storage", 5, day=10), sent("g2", "storage", 8, day=20)],
        now=NOW,
    )
    assert usage(session, "storage")[0] == D(8)
    late = ingest(session, catalog, [sent("g3", "storage", 20, day=15)], now=NOW)
    assert late.accepted == 1
    assert usage(session, "storage")[0] == D(8)  # an earlier reading arriving late
    ingest(session, catalog, [sent("g4", "storage", 3, day=21)], now=NOW)
    assert usage(session, "storage") == (D(3), 4)  # storage went down: 3 stands
    set_cap(session.connection(), catalog, "cust_1", "storage", D(10), NOW)
    session.commit()
    capped = ingest(
        session,
        catalog,
        [sent("g5", "storage", 12, day=22), sent("g6", "storage", 4, day=23)],
        now=NOW,
    )
    assert capped.over_limit == ["g6"]
    assert usage(session, "storage")[0] == D(12)
    assert closed_lines(engine, catalog, "storage")["usage"] == (D(10), D("10.00"))


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ('aggregation = "unique_count"', "unique_property", "needs unique_property"),
        (
            'unique_property = "person_id"',
            "unique_property",
            'only applies with aggregation "unique_count"',
        ),
        (
            'aggregation = "max"\ndimensions = ["project"]',
            "dimensions",
            'need aggregation "sum" or "count"',
        ),
        ('aggregation = "median"', "aggregation", "sum"),
    ],
)
def test_declarations_are_checked(tmp_path, extra, path, message):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "gauge.toml").write_text(
        PRODUCT.format(key="gauge", name="Gauge", unit="unit", extra=extra)
    )
    problems = [p for p in validate_directory(directory) if p.file == "gauge.toml"]
    assert [p.path for p in problems] == [path], problems
    assert message in problems[0].message


def test_properties_named_in_product_files_are_the_declared_ones(tmp_path):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    addon = directory / "identified_events.toml"
    addon.write_text(addon.read_text().replace("where = { person_mode", "where = { person_mod"))
    (directory / "gauge.toml").write_text(
        PRODUCT.format(
            key="gauge",
            name="Gauge",
            unit="unit",
            extra='aggregation = "unique_count"\nunique_property = "user"\ndimensions = ["team"]',
        )
    )
    problems = [(p.file, p.path, p.message) for p in validate_directory(directory)]
    declared = "settings.toml declares: project, person_mode, model, person_id"
    assert sorted(problems) == [
        (
            "gauge.toml",
            "dimensions",
            'a breakdown adds up parts: dimensions need aggregation "sum" or "count", '
            "not 'unique_count'",
        ),
        ("gauge.toml", "dimensions[0]", f"unknown property 'team'; {declared}"),
        ("gauge.toml", "unique_property", f"unknown property 'user'; {declared}"),
        (
            "identified_events.toml",
            "where.person_mod",
            f"unknown property 'person_mod' (did you mean 'person_mode'?); {declared}",
        ),
    ]
