"""An issued invoice never gains a line, on both engines: lines are refused outside
1..line_count or beyond the invoice's count. On PostgreSQL the rule runs once per INSERT
statement over its new rows (migration 0021); a statement that breaks it for any invoice is
refused as a whole, and lines written one statement at a time are held to the same rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceLine
from tests.metering.helpers import add_customer

AT = dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC)
REFUSED = (DBAPIError, IntegrityError)


def _invoice(connection, invoice_id: str, number: int, line_count: int) -> None:
    connection.execute(
        insert(table_of(Invoice)).values(
            id=invoice_id,
            customer_id="cust_1",
            kind="usage",
            status="finalized",
            series="TST",
            number=number,
            currency="USD",
            subtotal=D(0),
            discount_total=D(0),
            total=D(0),
            credits_applied=D(0),
            amount_due=D(0),
            issued_at=AT,
            line_count=line_count,
        )
    )


def _line(invoice_id: str, position: int) -> dict:
    return {
        "customer_id": "cust_1",
        "invoice_id": invoice_id,
        "position": position,
        "kind": "usage",
        "product": "product_analytics",
        "description": f"line {position}",
        "quantity": D(1),
        "unit_amount": D(0),
        "amount": D(0),
        "detail": "",
    }


def _lines(connection, invoice_id: str) -> int:
    lines = table_of(InvoiceLine)
    query = select(func.count()).select_from(lines).where(lines.c.invoice_id == invoice_id)
    return connection.execute(query).scalar_one()


@pytest.fixture
def invoices(engine, session):
    """inv_a and inv_b, each issued with 2 lines and none written yet."""
    add_customer(session)
    with engine.begin() as connection:
        _invoice(connection, "inv_a", 1, 2)
        _invoice(connection, "inv_b", 2, 2)
    return engine


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param([("inv_a", 0), ("inv_a", 1)], id="a position below 1"),
        pytest.param([("inv_a", 1), ("inv_a", 3)], id="a position above line_count"),
        pytest.param([("inv_a", 1), ("inv_a", 2), ("inv_a", 2)], id="more lines than line_count"),
        pytest.param(
            [("inv_a", 1), ("inv_a", 2), ("inv_b", 1), ("inv_b", 3)], id="one bad invoice of two"
        ),
    ],
)
def test_a_statement_breaking_the_count_is_refused_whole(invoices, statement):
    lines = table_of(InvoiceLine)
    with invoices.connect() as connection:
        with pytest.raises(REFUSED) as refused:
            connection.execute(insert(lines), [_line(i, p) for i, p in statement])
        assert "immutable" in str(refused.value)
        connection.rollback()
        assert (_lines(connection, "inv_a"), _lines(connection, "inv_b")) == (0, 0)


def test_lines_within_the_count_are_written_then_none_more(invoices):
    lines = table_of(InvoiceLine)
    with invoices.begin() as connection:  # two invoices' lines in one statement
        rows = [_line(i, p) for i in ("inv_a", "inv_b") for p in (1, 2)]
        connection.execute(insert(lines), rows)
    with invoices.connect() as connection:
        assert (_lines(connection, "inv_a"), _lines(connection, "inv_b")) == (2, 2)
        for position in (1, 2):  # complete: even a position in range is one too many
            with pytest.raises(REFUSED):
                connection.execute(insert(lines).values(**_line("inv_a", position)))
            connection.rollback()
        assert _lines(connection, "inv_a") == 2


def test_lines_written_one_statement_at_a_time_stop_at_the_count(invoices):
    lines = table_of(InvoiceLine)
    with invoices.connect() as connection:
        connection.execute(insert(lines).values(**_line("inv_a", 1)))
        connection.execute(insert(lines).values(**_line("inv_a", 2)))
        connection.commit()
        with pytest.raises(REFUSED):
            connection.execute(insert(lines).values(**_line("inv_a", 1)))
        connection.rollback()
        assert _lines(connection, "inv_a") == 2
