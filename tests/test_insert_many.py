"""db.insert_many on both engines: every value comes back as it went in, whatever the text
holds (PostgreSQL takes the rows as array parameters, where quoting is where bugs live),
with NULLs, a column of only NULLs, exact decimals and aware datetimes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from billing.db import insert_many, table_of
from billing.email.models import EmailOutbox
from billing.metering.models import Usage

AWKWARD = [
    "plain",
    'quote " and \\ backslash',
    "{braces,commas}",
    "NULL",
    "",
    "ünïcödé ✓ and 'single'",
    "tab\tnew\nline",
]


def test_rows_come_back_as_they_went_in(engine):
    at = dt.datetime(2026, 10, 1, 12, 30, 0, 123456, tzinfo=dt.UTC)
    rows = [
        {
            "customer_id": None,
            "kind": "invoice",
            "reference": f"r{number}",
            "subject": text,
            "body_text": None if number % 2 else text * 3,
            "status": "pending",
            "attempts": number,
            "next_attempt_at": at + dt.timedelta(seconds=number),
            "created_at": at,
            "last_error": None,
        }
        for number, text in enumerate(AWKWARD)
    ]
    table = table_of(EmailOutbox)
    with engine.begin() as connection:
        insert_many(connection, table, rows)
        insert_many(connection, table, [])  # nothing, no statement
    with engine.connect() as connection:
        found = connection.execute(
            select(
                table.c.reference,
                table.c.subject,
                table.c.body_text,
                table.c.attempts,
                table.c.next_attempt_at,
                table.c.last_error,
            ).order_by(table.c.attempts)
        ).all()
    assert [tuple(row) for row in found] == [
        (r["reference"], r["subject"], r["body_text"], r["attempts"], r["next_attempt_at"], None)
        for r in rows
    ]


def test_exact_decimals_keep_every_digit(engine, session):
    from tests.metering.helpers import add_customer

    add_customer(session, "c1", billing_start=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    session.commit()
    table = table_of(Usage)
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    quantities = [Decimal("0.000000000001"), Decimal("123456789012345678.5"), Decimal(0)]
    columns = {column.name for column in table.columns}
    template = {
        "customer_id": "c1",
        "period_start": start,
        "quantity": Decimal(0),
        "events": 0,
        "updated_at": start,
    }
    rows = []
    for number, quantity in enumerate(quantities):
        row = {**template, "product": f"p{number}", "quantity": quantity}
        rows.append({key: value for key, value in row.items() if key in columns})
    with engine.begin() as connection:
        insert_many(connection, table, rows)
    with engine.connect() as connection:
        query = select(table.c.product, table.c.quantity).order_by(table.c.product)
        found = {row.product: row.quantity for row in connection.execute(query)}
    assert found == {f"p{n}": q for n, q in enumerate(quantities)}
    with engine.connect() as connection:  # the columns left out got their defaults
        left_out = connection.execute(select(table.c.duplicates, table.c.amended)).all()
    assert [tuple(row) for row in left_out] == [(0, False)] * 3


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_string_too_long_for_its_column_is_refused_not_cut(engine):
    # as a plain insert refuses it: an array cast to VARCHAR(64)[] would cut it silently
    row = {
        "customer_id": None,
        "kind": "invoice",
        "reference": "r" * 65,  # reference is VARCHAR(64)
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        "created_at": dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
    }
    table = table_of(EmailOutbox)
    with pytest.raises(DataError, match="too long"), engine.begin() as connection:
        insert_many(connection, table, [row])
    with engine.connect() as connection:
        assert connection.execute(select(table.c.id)).all() == []
