"""What made my bill, in the portal: with product analytics broken down by project, an
invoice's page and the overview (the period so far) show each project's units, amount and
share, and the amounts add up to the line to the cent."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from billing.app import create_app
from billing.customers.periods import period_for
from billing.invoicing.service import list_invoices
from billing.metering import service as metering_service
from billing.pipeline import close_due
from billing.settings import Settings
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, update_customers
from tests.web.helpers import sign_in


@pytest.fixture
def by_project(engine, catalog, database_url):
    """acme, last period invoiced and this period running, analytics events by project (the
    shipped catalogue breaks analytics down by project); the app, signed in as acme."""
    assert catalog.products["product_analytics"].dimensions == ("project",)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    current = period_for(1, now)
    previous = period_for(1, current.start - dt.timedelta(seconds=1))
    before = (previous.start + dt.timedelta(hours=1)).isoformat()

    def analytics(event_id, quantity, project, at):
        return {
            "id": event_id,
            "customer": "acme",
            "product": "product_analytics",
            "quantity": quantity,
            "timestamp": at,
            "properties": {"project": project},
        }

    with Session(engine) as session:
        add_customer(session, "acme")
        update_customers(session.connection(), created_at=previous.start)
        metering_service.ingest(
            connection=session.connection(),
            catalog=catalog,
            raw_events=[
                analytics("o1", 2_000_000, "web", before),
                analytics("o2", 1_000_001, "api", before),
                analytics("n1", 1_500_000, "mobile", now.isoformat()),
                analytics("n2", 500_000, "web", now.isoformat()),
            ],
            now=now,
        )
        session.commit()
    close_due(engine, catalog, now, dt.timedelta(0))
    settings = Settings(tiers_dir=TIERS, database_url=database_url, scheduler=False)
    with TestClient(create_app(settings, catalog, engine)) as client:
        sign_in(client, engine, "acme")
        yield client


def parts_of(page: str) -> tuple[str, list[tuple[str, str, str]]]:
    section = page[page.index('id="breakdown-product_analytics"') :].split("</section>")[0]
    rows = re.findall(
        r'<tr class="part"><td>([^<]+)</td><td class="num">([\d,]+)</td>'
        r'<td class="num">([\d,.]+)</td>',
        section,
    )
    return section, rows


def test_an_invoice_page_shows_what_made_the_line(engine, by_project):
    with engine.connect() as connection:
        [invoice] = list_invoices(connection, "acme")
    page = by_project.get(f"/portal/invoices/{invoice.id}").text
    section, rows = parts_of(page)
    assert "What made Product analytics: by project" in section
    assert rows == [("web", "2,000,000", "56.20"), ("api", "1,000,001", "28.10")]
    line = re.search(
        r"Product analytics: 3,000,001 events</td><td class=\"num\">[\d,]+</td>"
        r"<td class=\"num\">([\d,.]+)</td>",
        page,
    )
    assert line, page
    assert sum(D(a) for _, _, a in rows) == D(line.group(1)) == D("84.30")
    assert 'aria-label="66.7% of the units"' in section


def test_the_overview_shows_the_period_so_far_by_project(by_project):
    page = by_project.get("/portal").text
    assert 'id="breakdown-basis"' in page
    _, rows = parts_of(page)
    assert [(p, q) for p, q, _ in rows] == [("mobile", "1,500,000"), ("web", "500,000")]
    # 2,000,000 events this period: 1,000,000 free, then 0.00005 each: 50.00
    assert sum(D(a) for _, _, a in rows) == D("50.00")
