"""db.json_rows / db.json_columns on PostgreSQL: columns sent as JSON arrays come back as they
went in, value for value and in order, whatever the text holds, with NULLs, exact decimals,
the calendar's extreme microseconds and the row's position."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing.db import json_columns, json_rows, pg_binary

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

TEXTS = [
    "plain",
    'quote " and \\ backslash',
    "{braces,commas}",
    "NULL",
    "",
    "ünïcödé ✓ and 'single' 𝄞",
    "tab\tnew\nline \x01 \x1f",
]
FIELDS = [
    ("s", "varchar"),
    ("t", "text"),
    ("i", "int8"),
    ("b", "bool"),
    ("q", "numeric"),
    ("at", "timestamptz"),
]
NUMERIC = [("q", "numeric")]
INSTANTS = [
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    None,
]
QUANTITIES = [
    Decimal("0"),
    Decimal("1E+2"),
    Decimal("-0.000000000001"),
    Decimal("999999999999999.999999999999"),
    Decimal("123.450"),
    Decimal("7"),
    None,
]


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "not keyed"])
def test_columns_come_back_as_they_went_in(engine, keyed):
    rows = [
        (
            text,
            None if number == 3 else text * 2,
            [0, -1, 2**53, -(2**63), 2**63 - 1, 5, None][number],
            [True, False, None, True, False, True, False][number],
            QUANTITIES[number],
            INSTANTS[number],
        )
        for number, text in enumerate(TEXTS)
    ]
    with engine.begin() as connection:
        found = pg_binary(
            connection,
            f"SELECT n, s, t, i, b, q, at FROM "
            f"{json_rows('r', FIELDS, ordinality='n', keyed=keyed)} ORDER BY n",
            json_columns(FIELDS, list(zip(*rows, strict=True))),
        )
    assert [row[0] for row in found] == list(range(1, len(rows) + 1))
    for (_, *got), sent in zip(found, rows, strict=True):
        s, t, i, b, q, at = got
        assert (s, t, i, b) == sent[:4]
        assert q == sent[4]
        assert at == sent[5]


def test_numerics_keep_their_exact_value(engine):
    values = [Decimal("0.1"), Decimal("1E+15"), Decimal("0.000000000001"), Decimal("-3.50")]
    with engine.begin() as connection:
        found = pg_binary(
            connection,
            f"SELECT q::text FROM {json_rows('r', NUMERIC, ordinality='n')} ORDER BY n",
            json_columns(NUMERIC, [values]),
        )
    assert [Decimal(row[0]) for row in found] == values


def test_no_rows_and_naive_datetimes(engine):
    with engine.begin() as connection:
        assert (
            pg_binary(
                connection,
                f"SELECT * FROM {json_rows('r', FIELDS)}",
                json_columns(FIELDS, [[]] * 6),
            )
            == []
        )
    with pytest.raises(TypeError):
        json_columns([("at", "timestamptz")], [[dt.datetime(2026, 1, 1)]])
