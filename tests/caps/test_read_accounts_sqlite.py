"""On SQLite, read_accounts reads the driver's rows and types them itself: each value must
be what the columns' own types read (billing/db.py UTCDateTime, ExactDecimal), whatever
form the text was stored in, offsets and NULLs included."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from billing.caps.accounts import read_accounts
from billing.customers.models import Customer
from billing.db import table_of
from tests.metering.helpers import add_customer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("closed", "start", "percent", "until", "free"),
    [
        ("2026-11-01 00:00:00.000000", "2026-10-15 08:30:00.250000", "12.5", "2026-12-31", 0),
        ("2026-11-01 02:00:00+02:00", None, None, None, 1),  # an offset, written by hand
        (None, "0999-01-01 00:00:00.000000", "0", "2027-01-01", 1),
    ],
)
def test_accounts_read_as_the_column_types_read_them(
    engine, session, closed, start, percent, until, free
):
    add_customer(session, "c1")
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE customer SET closed_through = :closed, billing_start = :start, "
                "discount_percent = :percent, discount_until = :until, "
                "alert_free_allowance = :free WHERE id = 'c1'"
            ),
            {"closed": closed, "start": start, "percent": percent, "until": until, "free": free},
        )
        connection.execute(
            text(
                "INSERT INTO spend_cap (customer_id, product, amount, updated_at) "
                "VALUES ('c1', 'p', '7.25', '2026-11-01 00:00:00.000000')"
            )
        )
    table = table_of(Customer)
    with engine.connect() as connection:
        typed = connection.execute(select(table).where(table.c.id == "c1")).one()
        account = read_accounts(connection, {"c1"})["c1"]
    assert account.closed_through == typed.closed_through
    assert account.billing_start == typed.billing_start
    assert account.discount_percent == typed.discount_percent
    assert account.discount_until == typed.discount_until
    assert account.free_allowance_alert is bool(typed.alert_free_allowance)
    assert account.caps == {"p": Decimal("7.25")}
    for value in (account.closed_through, account.billing_start):
        assert value is None or value.tzinfo is dt.UTC
