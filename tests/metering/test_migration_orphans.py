"""Migration 0011 on data, on SQLite and PostgreSQL: usage stored before billing start existed
is never orphaned. A customer created on 15 October whose September events were acknowledged
(and never billed: the first close began at the creation period) gets a billing start at its
first event; the September row is marked late, and the next close bills it once as an
adjustment, while October's already invoiced usage is not billed again."""

import datetime as dt
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from billing.db import make_engine, table_of, upgrade
from billing.invoicing.models import Invoice, InvoiceLine
from billing.pipeline import close_due
from tests.conftest import database_at

GRACE = dt.timedelta(hours=1)


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_at_0009(request, tmp_path):
    yield from database_at(request, tmp_path, "0009")


def _filler(column: sa.Column) -> object:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 0
    if isinstance(kind, sa.DateTime) or "DateTime" in type(kind).__name__:
        return at("2026-10-15 00:00")
    if isinstance(kind, sa.Numeric) or "Decimal" in type(kind).__name__:
        return D(0)
    return "x"


def insert(connection, table_name, **values):
    """A row of the table as it stands at this revision: `values`, and a filler for every
    other required column without a default."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=connection)
    for column in table.columns:
        required = not column.nullable and column.server_default is None
        serial = column.primary_key and isinstance(column.type, sa.Integer)
        if column.name not in values and required and not serial:
            values[column.name] = _filler(column)
    if connection.dialect.name == "sqlite":  # the driver binds no Decimal: exact text
        values = {k: str(v) if isinstance(v, D) else v for k, v in values.items()}
    connection.execute(table.insert().values(**values))


def test_usage_stored_before_the_first_period_is_billed_once_after_the_migration(url_at_0009):
    old = sa.create_engine(url_at_0009)
    with old.begin() as connection:
        insert(
            connection,
            "customer",
            id="acme",
            name="Acme",
            billing_anchor_day=1,
            currency="USD",
            created_at=at("2026-10-15 00:00"),
            closed_through=at("2026-11-01 00:00"),
            alert_thresholds="50,80,100",
            alert_free_allowance=True,
        )
        for event_id, stamp, period, quantity in (
            ("sep", "2026-09-20 10:00", "2026-09-01", 1_100_000),
            ("oct", "2026-10-20 10:00", "2026-10-01", 100),
        ):
            insert(
                connection,
                "event",
                id=event_id,
                customer_id="acme",
                product="product_analytics",
                quantity=D(quantity),
                timestamp=at(stamp),
                period_start=at(f"{period} 00:00"),
                status="accepted",
                received_at=at(stamp),
            )
            start = at(f"{period} 00:00")
            insert(
                connection,
                "usage",
                customer_id="acme",
                product="product_analytics",
                period_start=start,
                period_end=at("2026-10-01 00:00") if period == "2026-09-01" else at("2026-11-01"),
                quantity=D(quantity),
                events=1,
            )
        insert(connection, "invoice_series", series="INV", next_number=2)
        insert(
            connection,
            "invoice",
            id="inv_oct",
            series="INV",
            number=1,
            customer_id="acme",
            kind="usage",
            status="finalized",
            currency="USD",
            period_start=at("2026-10-01 00:00"),
            period_end=at("2026-11-01 00:00"),
            issued_at=at("2026-11-01 01:00"),
            line_count=1,
        )
        insert(
            connection,
            "invoice_line",
            invoice_id="inv_oct",
            position=1,
            kind="usage",
            product="product_analytics",
            description="Product analytics",
            quantity=D(100),
            unit_amount=D(0),
            amount=D(0),
        )
    old.dispose()
    upgrade(url_at_0009)
    engine = make_engine(url_at_0009)
    with engine.connect() as connection:
        start = connection.execute(sa.text("SELECT billing_start FROM customer")).scalar_one()
    assert start in (at("2026-09-20 10:00"), "2026-09-20 10:00:00.000000")
    from billing.catalog import load_catalog
    from tests.conftest import TIERS

    catalog = load_catalog(TIERS)
    with freeze_time("2026-12-01 01:00"):
        close_due(engine, catalog, at("2026-12-01 01:00"), GRACE)
        close_due(engine, catalog, at("2026-12-01 01:00"), GRACE)  # once only
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    with engine.connect() as connection:
        billed = connection.execute(
            sa.select(lines.c.kind, lines.c.quantity, lines.c.amount, lines.c.corrects_period)
            .join(invoices, invoices.c.id == lines.c.invoice_id)
            .where(invoices.c.period_start == at("2026-11-01 00:00"))
            .order_by(lines.c.position)
        ).all()
    engine.dispose()
    # September: 1,100,000 events = 5.00, billed once on November's invoice
    assert [(r.kind, r.quantity, r.amount, r.corrects_period) for r in billed] == [
        ("adjustment", D(1_100_000), D("5.00"), at("2026-09-01 00:00"))
    ]
