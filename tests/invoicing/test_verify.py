"""Verifiable invoices (docs/pricing-changes.md, "Verifiable invoices"), on both engines: a
closed period's invoice records the tier files' digest and what it was priced with;
`billing invoices verify` re-derives it (match), and reports a tampered line or other
tier files as the first difference (exit 1)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from decimal import Decimal as D

from sqlalchemy import text

from billing.catalog import load_catalog
from billing.commitments.discounts import set_discount
from billing.invoicing.service import get_invoice, list_invoices
from billing.invoicing.verify import verify_invoice
from billing.pipeline import close_due
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest
from tests.servers import billing_cli

SEPT = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def closed_invoice(engine, session, catalog):
    """amy, 20 % off: 15,000 recordings and 3,000,001 analytics events in September 2026."""
    add_customer(session, "amy", billing_start=SEPT)
    set_discount(
        connection=session.connection(),
        catalog=catalog,
        customer_id="amy",
        percent=D(20),
        reason="non-profit",
        until=None,
        now=SEPT,
    )
    session.commit()
    events = [
        {"id": "r", "customer": "amy", "product": "session_replay", "quantity": 15_000},
        {"id": "a", "customer": "amy", "product": "product_analytics", "quantity": 3_000_001},
    ]
    for event in events:
        event["timestamp"] = "2026-09-10T00:00:00Z"
    ingest(session, catalog, events, now=dt.datetime(2026, 9, 11, tzinfo=dt.UTC))
    close_due(engine, catalog, dt.datetime(2026, 10, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))
    with engine.connect() as connection:
        [summary] = list_invoices(connection, "amy")
    return summary


def test_an_invoice_records_what_it_was_priced_with_and_verifies(engine, session, catalog):
    summary = closed_invoice(engine, session, catalog)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT catalog_digest, priced_inputs FROM invoice WHERE id = :i"),
            {"i": summary.id},
        ).one()
        verdict = verify_invoice(connection, catalog, summary.number)
    assert row.catalog_digest == catalog.digest
    assert len(catalog.digest) == 64
    assert json.loads(row.priced_inputs) == {
        "period_start": "2026-09-01T00:00:00Z",
        "discount_percent": "20",
        "usage": [
            {"product": "product_analytics", "quantity": "3000001"},
            {"product": "session_replay", "quantity": "15000"},
        ],
        "credits_applied": "0.00",
    }
    assert verdict.matches
    assert verdict.lines == 4  # two usage lines, two discount lines
    with engine.connect() as connection:
        shown = get_invoice(connection, summary.id, due_days=0)
    assert shown.catalog_digest == catalog.digest  # the customer sees it on the invoice


def tamper(engine, invoice_id, position, amount):
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE invoice_line DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER invoice_line_no_change"))
        connection.execute(
            text("UPDATE invoice_line SET amount = :a WHERE invoice_id = :i AND position = :p"),
            {"a": amount, "i": invoice_id, "p": position},
        )


def test_verify_finds_a_tampered_line_and_other_tier_files(
    engine, session, catalog, database_url, tmp_path
):
    summary = closed_invoice(engine, session, catalog)
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    done = billing_cli("invoices", "verify", summary.number, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"match: {summary.number}, 4 lines re-derived",
        f"tier files: priced with sha256 {catalog.digest}; verified with the same files",
    ]
    # session replay 15,000: 10,000 x 0.005 = 50.00, line 3 (after analytics and its discount)
    raised = tmp_path / "tiers"
    shutil.copytree(TIERS, raised)
    path = raised / "session_replay.toml"
    head, marker, tail = path.read_text().partition("effective_from = 2026-01-01")
    path.write_text(head + marker + tail.replace('"0.005"', '"0.006"', 1))
    other = billing_cli("invoices", "verify", summary.number, "--tiers", str(raised), env=env)
    assert other.returncode == 1
    lines = other.stdout.splitlines()
    assert lines[0] == (
        f"difference: {summary.number}: line 3 (session_replay): amount 50.00, re-derived 60.00"
    )
    assert lines[-1].endswith(f"now {load_catalog(raised).digest}")
    tamper(engine, summary.id, 3, "49.99")
    forged = billing_cli("invoices", "verify", summary.number, env=env)
    assert forged.returncode == 1
    assert forged.stdout.splitlines()[0] == (
        f"difference: {summary.number}: line 3 (session_replay): amount 49.99, re-derived 50.00"
    )
    assert "subtotal: " in forged.stdout  # the stored figures no longer sum its lines
