"""Billings by dimension (docs/finance.md, "By dimension"), on both engines: a product's
revenue by project reconciles to its invoices — usage lines as their breakdowns split them,
discount lines and credit notes in the same proportions, adjustments apart — and its total
is the product's row of the report by product, to the cent; the API names a missing or
unknown product or dimension."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from billing.app import create_app
from billing.catalog.loader import load_catalog
from billing.commitments.discounts import set_discount
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.invoicing.models import CreditNoteOutcome
from billing.pipeline import close_due
from billing.reports.service import revenue, revenue_by_dimension
from billing.settings import Settings
from tests.conftest import TIERS, bearer
from tests.metering.helpers import add_customer, ingest
from tests.servers import billing_cli, billing_ok

AT = "2026-10-20T10:00:00Z"
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
CLOSE = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiers") / "tiers"
    shutil.copytree(TIERS, directory)
    path = directory / "product_analytics.toml"
    path.write_text(
        path.read_text().replace(
            'dimensions = ["project"]   # invoices say which project made the bill\n',
            'dimensions = ["project", "env"]\n',
            1,
        )
    )
    settings = directory / "settings.toml"
    settings.write_text(settings.read_text().replace('"person_id"]', '"person_id", "env"]'))
    return load_catalog(directory)


def sent(event_id, customer, quantity, project, env="prod"):
    return {
        "id": event_id,
        "customer": customer,
        "product": "product_analytics",
        "quantity": quantity,
        "timestamp": AT,
        "properties": {"project": project, "env": env},
    }


def figures(group):
    return (group.list_amount, group.discounts, group.credited, group.amount_due, group.net)


def test_revenue_by_project_reconciles_to_the_invoices(engine, session, catalog):
    billed_by_project(engine, session, catalog)


def billed_by_project(engine, session, catalog):
    """acme and globex (17.5 % off) billed by project, a credit note on acme's analytics
    line; checked to reconcile; the report's groups and total."""
    add_customer(session, "acme", billing_start=START)
    add_customer(session, "globex", billing_start=START)
    set_discount(
        connection=session.connection(),
        catalog=catalog,
        customer_id="globex",
        percent=D("17.5"),
        reason="deal",
        until=None,
        now=START,
    )
    session.commit()
    ingest(
        session,
        catalog,
        [
            sent("a1", "acme", 2_000_000, "web"),
            sent("a2", "acme", 1_000_001, "api", env="staging"),
            sent("a3", "acme", 333_333, "web", env="staging"),
            sent("g1", "globex", 1_777_777, "web"),
            sent("g2", "globex", 555_555, "etl"),
        ],
        now=dt.datetime(2026, 10, 21, tzinfo=dt.UTC),
    )
    assert close_due(engine, catalog, CLOSE, dt.timedelta(hours=1)).invoices == 2
    with engine.begin() as connection:
        acme = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'acme'")
        ).scalar_one()
        create_credit_note(
            connection,
            catalog,
            acme,
            reason="goodwill",
            lines=[LineRequest(line=1, amount=D("10.01"))],
            outcome=CreditNoteOutcome.REDUCE_DUE,
            actor="test",
            now=CLOSE,
        )
    with engine.connect() as connection:
        groups, total = revenue_by_dimension(
            connection, "product_analytics", "project", "USD", None, None
        )
        by_product, _ = revenue(connection, "product", None, None)
        lines = list(
            connection.execute(
                text("SELECT kind, amount FROM invoice_line WHERE product = 'product_analytics'")
            )
        )
    assert set(groups) == {"web", "api", "etl"}
    # every figure of the groups sums to the total, which is the product's row
    for index in range(5):
        assert sum(figures(g)[index] for g in groups.values()) == figures(total)[index]
    assert figures(total) == figures(by_product["product_analytics"])
    assert total.list_amount == sum(D(a) for k, a in lines if k == "usage")
    assert total.discounts == -sum(D(a) for k, a in lines if k == "discount")
    assert total.credited == D("10.01")
    # acme's web parts (two env values) add up; the credit note splits like its line
    assert groups["web"].credited + groups["api"].credited == D("10.01")
    assert groups["etl"].credited == 0
    assert groups["etl"].discounts > 0  # globex's discount, split like its line
    return groups, total


def test_the_api_names_what_a_dimension_report_lacks(engine, catalog, database_url, keys):
    settings = Settings(tiers_dir=TIERS, database_url=database_url, scheduler=False)
    with TestClient(create_app(settings, catalog, engine)) as client:
        finance = bearer(keys["finance"])
        for params, code, field in [
            ({"group_by": "dimension"}, "missing_field", "product"),
            ({"group_by": "dimension", "product": "nope"}, "unknown_product", "product"),
            (
                {"group_by": "dimension", "product": "product_analytics"},
                "missing_field",
                "dimension",
            ),
            (
                {"group_by": "dimension", "product": "session_replay", "dimension": "project"},
                "unknown_dimension",
                "dimension",
            ),
        ]:
            answer = client.get("/v1/reports/revenue", params=params, headers=finance)
            assert answer.status_code == 422, answer.text
            assert (answer.json()["code"], answer.json()["field"]) == (code, field)
        fine = client.get(
            "/v1/reports/revenue",
            params={"group_by": "dimension", "product": "product_analytics", "dimension": "env"},
            headers=finance,
        )
        assert fine.status_code == 200, fine.text
        assert fine.json()["groups"] == []


def test_the_cli_twin_prints_the_same_groups(engine, session, catalog, database_url):
    """`billing report revenue --group-by dimension` prints what the API answers."""
    import os

    groups, total = billed_by_project(engine, session, catalog)
    env = {**os.environ, "BILLING_DATABASE_URL": database_url}
    tiers = ["--tiers", catalog.directory, "--format", "csv"]
    printed = billing_ok(
        "report",
        "revenue",
        "--group-by",
        "dimension",
        "--product",
        "product_analytics",
        "--dimension",
        "project",
        *tiers,
        env=env,
    )
    rows = {line.split(",")[0]: line.split(",") for line in printed.strip().splitlines()[1:]}
    assert set(rows) == {"api", "etl", "web", "TOTAL"}
    assert rows["TOTAL"][6] == f"{total.amount_due:.2f}"
    assert rows["web"][1] == f"{groups['web'].list_amount:.2f}"
    refused = billing_cli(
        "report",
        "revenue",
        "--group-by",
        "dimension",
        "--product",
        "session_replay",
        "--dimension",
        "project",
        *tiers,
        env=env,
    )
    assert refused.returncode != 0
    assert "session_replay has no dimension 'project'" in refused.stderr
