"""Demo data: a few customers with a month of realistic usage, for `make run` and trials."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from billing.caps import service as caps_service
from billing.catalog import Catalog
from billing.customers import service as customers_service
from billing.customers.models import Customer, CustomerCreate
from billing.metering import service as metering_service

# (customer id, name, anchor day, monthly volume per product)
DEMO_CUSTOMERS: list[tuple[str, str, int, dict[str, int]]] = [
    (
        "acme",
        "Acme Analytics",
        1,
        {"product_analytics": 3_000_000, "session_replay": 25_000, "feature_flags": 4_000_000},
    ),
    ("globex", "Globex", 15, {"product_analytics": 40_000_000, "error_tracking": 900_000}),
    ("initech", "Initech", 1, {"surveys": 2_500, "data_warehouse": 12_000_000}),
    ("hooli", "Hooli (startup plan)", 8, {"product_analytics": 800_000, "session_replay": 3_000}),
]
# Spend caps, set before the usage arrives: acme's session_replay stops at $50 (limited),
# its product_analytics passes 50 % and 80 % of $100.
DEMO_CAPS: dict[str, dict[str, str]] = {
    "acme": {"session_replay": "50.00", "product_analytics": "100.00"},
    "hooli": {"product_analytics": "0"},
}
BATCH = 5_000


def is_empty(engine: Engine) -> bool:
    """True when the database has no customers yet."""
    with Session(engine) as session:
        return not session.scalar(select(func.count()).select_from(Customer))


def seed(*, engine: Engine, catalog: Catalog, now: dt.datetime, seed_value: int = 7) -> int:
    """Create the demo customers and up to `now` of this period's usage; return events sent."""
    rng = random.Random(seed_value)
    sent = 0
    for customer_id, name, anchor, volumes in DEMO_CUSTOMERS:
        with Session(engine, expire_on_commit=False) as session:
            customer = customers_service.create_customer(
                session=session,
                data=CustomerCreate(id=customer_id, name=name, billing_anchor_day=anchor),
                currency=catalog.currency,
            )
            session.flush()
            for product, amount in DEMO_CAPS.get(customer_id, {}).items():
                caps_service.set_cap(
                    connection=session.connection(),
                    catalog=catalog,
                    customer_id=customer_id,
                    product=product,
                    amount=Decimal(amount),
                    actor="demo",
                    now=now,
                )
            session.commit()
        start = now - dt.timedelta(days=27)
        events = []
        for product, volume in volumes.items():
            if product not in catalog.products:
                continue
            # A few hundred events per product whose quantities add up to the volume.
            count = 300
            per_event = volume // count
            for index in range(count):
                at = start + dt.timedelta(seconds=rng.randrange(int((now - start).total_seconds())))
                quantity = per_event + (volume - per_event * count if index == 0 else 0)
                events.append(
                    {
                        "id": f"demo-{customer.id}-{product}-{index}",
                        "customer": customer.id,
                        "product": product,
                        "quantity": Decimal(quantity),
                        "timestamp": at.isoformat(),
                    }
                )
        for offset in range(0, len(events), BATCH):
            with engine.begin() as connection:
                metering_service.ingest(
                    connection=connection,
                    catalog=catalog,
                    raw_events=events[offset : offset + BATCH],
                    now=now,
                )
        sent += len(events)
    return sent
