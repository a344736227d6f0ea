"""Migration 0020 on data, on SQLite and PostgreSQL: child rows written before it (invoice and
credit-note lines and syncs, the alert outbox, credit entries) get their parent's customer,
the numbers already issued land in `document_number`, the immutability triggers survive,
and the downgrade gives back the rows as they were."""

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command

from billing.db import alembic_config, upgrade
from tests.conftest import database_at
from tests.metering.test_migration_orphans import insert

AT = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
CHILDREN = ("invoice_line", "invoice_sync", "credit_note_line", "credit_note_sync", "outbox")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_at_0019(request, tmp_path):
    yield from database_at(request, tmp_path, "0019")


def _stored(url: str) -> dict[str, list[tuple]]:
    """Every row of the tables 0020 rewrites, without customer_id, in a stable order."""
    names = (
        "alert",
        "outbox",
        "commitment",
        "credit_entry",
        "invoice",
        "invoice_line",
        "invoice_sync",
        "credit_note",
        "credit_note_line",
        "credit_note_sync",
        "spend_cap_change",
    )
    engine = sa.create_engine(url)
    found = {}
    with engine.connect() as connection:
        for name in names:
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)
            columns = [c for c in table.columns if c.name != "customer_id" or name not in CHILDREN]
            rows = connection.execute(sa.select(*columns).order_by(*columns[:2])).all()
            found[name] = sorted(tuple(str(v) for v in row) for row in rows)
    engine.dispose()
    return found


def _fill(url: str) -> None:
    """Two customers, each with an invoice of two lines, a credit note, syncs, an alert and
    its webhook, a commitment and its credit, a cap change: as 0019 stores them."""
    old = sa.create_engine(url)
    with old.begin() as connection:
        for number, customer in enumerate(("acme", "globex"), start=1):
            insert(connection, "customer", id=customer, billing_anchor_day=1)
            invoice, note = f"inv_{customer}", f"cn_{customer}"
            insert(
                connection,
                "invoice",
                id=invoice,
                customer_id=customer,
                series="INV",
                number=number,
                line_count=2,
                issued_at=AT,
            )
            for position in (1, 2):
                insert(connection, "invoice_line", invoice_id=invoice, position=position)
            insert(connection, "invoice_sync", invoice_id=invoice, status="synced")
            insert(
                connection,
                "credit_note",
                id=note,
                invoice_id=invoice,
                customer_id=customer,
                series="CN",
                number=number,
                line_count=1,
            )
            insert(connection, "credit_note_line", credit_note_id=note, position=1)
            insert(connection, "credit_note_sync", credit_note_id=note, status="pending")
            insert(connection, "alert", id=number, customer_id=customer, kind="cap_80")
            insert(connection, "outbox", alert_id=number, status="pending")
            insert(connection, "commitment", id=f"cmt_{customer}", customer_id=customer)
            insert(
                connection,
                "credit_entry",
                customer_id=customer,
                commitment_id=f"cmt_{customer}",
                kind="grant",
            )
            insert(connection, "spend_cap_change", customer_id=customer, product="p")
    old.dispose()


def test_children_take_their_parents_customer_and_numbers_stay_unique(url_at_0019):
    _fill(url_at_0019)
    before = _stored(url_at_0019)
    upgrade(url_at_0019)
    engine = sa.create_engine(url_at_0019)
    with engine.connect() as connection:
        for child in CHILDREN:
            owners = connection.execute(
                sa.Table(child, sa.MetaData(), autoload_with=connection).select()
            ).all()
            assert sorted(row.customer_id for row in owners) == sorted(
                ["acme", "globex"] * (2 if child == "invoice_line" else 1)
            ), child
        numbers = connection.execute(
            sa.text(
                "SELECT series, number, customer_id, document_id FROM document_number "
                "ORDER BY series, number"
            )
        ).all()
    assert [tuple(row) for row in numbers] == [
        ("CN", 1, "acme", "cn_acme"),
        ("CN", 2, "globex", "cn_globex"),
        ("INV", 1, "acme", "inv_acme"),
        ("INV", 2, "globex", "inv_globex"),
    ]
    with engine.connect() as connection:
        # the triggers are back: an invoice line is never changed, nor a number taken twice
        with pytest.raises(sa.exc.DBAPIError, match="immutable"):
            connection.execute(sa.text("UPDATE invoice_line SET position = 3"))
        connection.rollback()
        with pytest.raises(sa.exc.IntegrityError):
            connection.execute(
                sa.text(
                    "INSERT INTO document_number (series, number, customer_id, document_id) "
                    "VALUES ('INV', 1, 'globex', 'inv_other')"
                )
            )
        connection.rollback()
    engine.dispose()
    assert _stored(url_at_0019) == before

    command.downgrade(alembic_config(url_at_0019), "0019")
    assert _stored(url_at_0019) == before
    upgrade(url_at_0019)
    assert _stored(url_at_0019) == before
