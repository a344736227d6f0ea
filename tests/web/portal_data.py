"""Two customers with this period's usage and last period invoiced, relative to the clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session

from billing.catalog import Catalog
from billing.customers.periods import period_for
from billing.metering import service as metering_service
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, event, update_customers


def seed(engine: Engine, catalog: Catalog) -> dt.datetime:
    """acme: last period 2,000,000 events invoiced; this period 3,000,000 events and 15,000
    recordings under a $50 session-replay cap. globex: 500,000 recordings last period."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    current = period_for(1, now)
    previous = period_for(1, current.start - dt.timedelta(seconds=1))
    with Session(engine) as session:
        add_customer(session, "acme")
        add_customer(session, "globex")
        update_customers(session.connection(), created_at=previous.start)
        set_cap(session.connection(), catalog, "acme", "session_replay", Decimal("50.00"), now)
        before = (previous.start + dt.timedelta(hours=1)).isoformat()
        metering_service.ingest(
            connection=session.connection(),
            catalog=catalog,
            raw_events=[
                event("acme-old", 2_000_000, customer="acme", at=before),
                event("globex-old", 500_000, "session_replay", customer="globex", at=before),
                event("acme-pa", 3_000_000, customer="acme", at=now.isoformat()),
                event("acme-sr", 15_000, "session_replay", customer="acme", at=now.isoformat()),
            ],
            now=now,
        )
        session.commit()
    close_due(engine, catalog, now, dt.timedelta(0))
    return now
