"""Customer overrides on both engines (docs/pricing-changes.md, "Customer overrides"): the
cap a customer sets buys the quantity of their negotiated price at ingestion (q_max), the
close bills their period at it, `billing invoices verify` re-derives it only with the
override, and POST /v1/customers/{id}/quote prices at it for the customer's own key."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from billing.app import create_app
from billing.auth.models import Role
from billing.auth.service import create_key
from billing.catalog import load_catalog
from billing.invoicing.service import list_invoices
from billing.invoicing.verify import verify_invoice
from billing.metering import quota as quota_service
from billing.pipeline import close_due
from billing.settings import Settings
from tests.catalog.test_overrides import ACME, with_overrides
from tests.conftest import TIERS, bearer
from tests.metering.helpers import add_customer, ingest

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
MID_OCT = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)


@pytest.fixture
def negotiated(tmp_path):
    """The shipped tier files, and acme's session replay at 0.003 beyond 5,000 free from
    October to December 2026."""
    directory = with_overrides(tmp_path, acme=ACME)
    return directory, load_catalog(directory)


def _customers(session):
    for customer in ("acme", "other"):
        add_customer(session, customer, billing_start=OCT)


def _recordings(session, catalog, stamp, now):
    """20,000 recordings for acme and for other, stamped `stamp`, ingested at `now`."""
    events = [
        {
            "id": c,
            "customer": c,
            "product": "session_replay",
            "quantity": 20_000,
            "timestamp": stamp,
        }
        for c in ("acme", "other")
    ]
    ingest(session, catalog, events, now=now)


def test_a_cap_buys_the_quantity_of_the_customers_own_price(engine, session, negotiated):
    _, catalog = negotiated
    _customers(session)
    limits = {}
    for customer in ("acme", "other"):
        quota_service.set_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id=customer,
            product="session_replay",
            amount=D(30),
            actor="test",
            now=MID_OCT,
        )
        [view] = [
            v
            for v in quota_service.quotas(session.connection(), catalog, customer, MID_OCT)
            if v.product == "session_replay"
        ]
        limits[customer] = view.limit_quantity
    session.commit()
    # 30.00 buys 5,000 free + 10,000 at 0.003 for acme; + 6,000 at 0.005 at list
    assert limits == {"acme": D(15_000), "other": D(11_000)}
    events = [
        {"id": f"{c}{n}", "customer": c, "product": "session_replay", "quantity": 8_000}
        for c in ("acme", "other")
        for n in range(2)
    ]
    for event in events:
        event["timestamp"] = "2026-10-09T00:00:00Z"
    answer = ingest(session, catalog, events, now=MID_OCT)
    # the second 8,000 crosses each limit and is accepted in full; a third would not be
    assert answer.accepted == 4


def test_the_close_bills_the_override_and_verify_needs_it(engine, session, negotiated):
    _, catalog = negotiated
    _customers(session)
    _recordings(session, catalog, "2026-10-09T00:00:00Z", MID_OCT)
    close_due(engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))
    with engine.connect() as connection:
        [acme] = list_invoices(connection, "acme")
        [other] = list_invoices(connection, "other")
        assert (acme.total, other.total) == ("45.00", "70.00")
        assert verify_invoice(connection, catalog, acme.number).matches
        assert verify_invoice(connection, catalog, other.number).matches
        # without the override file, acme's invoice no longer re-derives
        plain = verify_invoice(connection, load_catalog(TIERS), acme.number)
        assert not plain.matches
        assert "session_replay" in plain.differences[0]
        # other's invoice is list-priced: the files without the override re-derive it
        assert verify_invoice(connection, load_catalog(TIERS), other.number).matches


def test_a_customer_quote_route_prices_at_the_customers_prices(engine, database_url, negotiated):
    directory, catalog = negotiated
    settings = Settings(tiers_dir=directory, database_url=database_url, scheduler=False)
    with TestClient(create_app(settings, catalog, engine)) as api:
        with Session(engine) as session:
            admin, _ = create_key(connection=session.connection(), role=Role.ADMIN, name="a")
            session.commit()
        for customer in ("acme", "other"):
            made = api.post(
                "/v1/customers", json={"id": customer, "name": customer}, headers=bearer(admin)
            )
            assert made.status_code == 201, made.text
        with Session(engine) as session:
            own, _ = create_key(
                connection=session.connection(), role=Role.CUSTOMER, customer_id="acme"
            )
            stranger, _ = create_key(
                connection=session.connection(), role=Role.CUSTOMER, customer_id="other"
            )
            session.commit()
        body = {"usage": {"session_replay": "20000"}, "at": "2026-11-01"}
        mine = api.post("/v1/customers/acme/quote", json=body, headers=bearer(own))
        assert mine.status_code == 200, mine.text
        assert mine.json()["total"] == "45.00"
        listed = api.post("/v1/quote", json=body)
        assert listed.json()["total"] == "70.00"
        theirs = api.post("/v1/customers/other/quote", json=body, headers=bearer(stranger))
        assert theirs.json()["total"] == "70.00"
        refused = api.post("/v1/customers/acme/quote", json=body, headers=bearer(stranger))
        assert refused.status_code == 403
        anonymous = api.post("/v1/customers/acme/quote", json=body)
        assert anonymous.status_code == 401


def test_the_portal_projection_prices_at_the_customers_prices(engine, session, negotiated):
    """The month-end projection the portal shows (invoicing/projection.py): 20,000
    recordings by the end of October cost acme 45.00 and other 70.00."""
    from billing.invoicing.projection import month_end

    _, catalog = negotiated
    _customers(session)
    end = dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=dt.UTC)
    _recordings(session, catalog, "2026-10-30T23:00:00Z", end)
    amounts = {}
    for customer in ("acme", "other"):
        projection = month_end(session.connection(), catalog, customer, end)
        [line] = [line for line in projection.lines if line.product == "session_replay"]
        amounts[customer] = line.amount
    assert amounts == {"acme": D("45.00"), "other": D("70.00")}


def test_an_override_deployed_after_the_period_began_moves_the_cap_limit_at_once(
    engine, session, catalog, negotiated
):
    """acme's deal starts on 1 October but is deployed on the 10th: the 30.00 cap bought
    11,000 recordings at list until then, and buys 15,000 from the next batch on (the
    limit was kept until the cap or discount moved, refusing what the deal pays for)."""
    _, with_deal = negotiated
    add_customer(session, "acme", billing_start=OCT)
    quota_service.set_cap(
        connection=session.connection(),
        catalog=catalog,  # deployed without the override yet
        customer_id="acme",
        product="session_replay",
        amount=D(30),
        actor="test",
        now=OCT,
    )
    session.commit()

    def send(event_id, quantity, tiers):
        event = {
            "id": event_id,
            "customer": "acme",
            "product": "session_replay",
            "quantity": quantity,
            "timestamp": "2026-10-09T00:00:00Z",
        }
        return ingest(session, tiers, [event], now=MID_OCT)

    assert send("a", 11_000, catalog).accepted == 1  # the whole limit at list
    assert send("b", 1, catalog).accepted == 0  # over it
    assert send("c", 4_000, with_deal).accepted == 1  # the deal's limit: 15,000
    [view] = [
        v
        for v in quota_service.quotas(session.connection(), with_deal, "acme", MID_OCT)
        if v.product == "session_replay"
    ]
    assert view.limit_quantity == D(15_000)
