"""Demo data: a few customers with three months of invoiced history and this month's usage,
for `make run` and trials."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from sqlalchemy import Engine, func, select

from billing.catalog import Catalog
from billing.customers import service as customers_service
from billing.customers.models import Customer, CustomerCreate
from billing.customers.periods import Period, period_for
from billing.db import table_of
from billing.metering import quota as quota_service
from billing.metering import service as metering_service
from billing.pipeline import close_due

# (customer id, name, anchor day, monthly volume per product, or per event name the tier
# files' sources select, such as llm_generation: tokens)
DEMO_CUSTOMERS: list[tuple[str, str, int, dict[str, int]]] = [
    (
        "acme",
        "Acme Analytics",
        1,
        {
            "product_analytics": 3_000_000,
            "session_replay": 25_000,
            "feature_flags": 4_000_000,
            "llm_generation": 40_000_000,
        },
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
# Properties the demo events carry (docs/metering.md, "Properties"): analytics events name
# their project (the invoices break analytics down by it) and, for acme, a quarter are of
# identified persons (the identified events add-on); LLM generations name their model.
PROJECTS = ("web", "mobile", "api")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-haiku")


def _properties(customer_id: str, meter: str, index: int) -> dict[str, str] | None:
    if meter == "product_analytics":
        found = {"project": PROJECTS[index % len(PROJECTS)]}
        if customer_id == "acme":
            found["person_mode"] = "full" if index % 4 == 0 else "anonymous"
        return found
    if meter == "llm_generation":
        return {"model": MODELS[index % len(MODELS)]}
    return None


def is_empty(engine: Engine) -> bool:
    """True when the database has no customers yet."""
    with engine.connect() as connection:
        return not connection.scalar(select(func.count()).select_from(table_of(Customer)))


# Earlier periods have less usage: growth the finance pages can show.
HISTORY = (Decimal("0.7"), Decimal("0.8"), Decimal("0.9"))


def _periods(anchor: int, now: dt.datetime) -> list[tuple[Period, Decimal]]:
    """The last len(HISTORY) whole periods with their share of the volume, then this one."""
    current = period_for(anchor, now)
    found = [(current, Decimal(1))]
    for share in reversed(HISTORY):
        found.insert(0, (period_for(anchor, found[0][0].start - dt.timedelta(seconds=1)), share))
    return found


def seed(*, engine: Engine, catalog: Catalog, now: dt.datetime, seed_value: int = 7) -> int:
    """Create the demo customers with three months of history (closed into invoices) and
    this period's usage up to `now`; return the number of events sent."""
    rng = random.Random(seed_value)
    sent = 0
    for customer_id, name, anchor, volumes in DEMO_CUSTOMERS:
        periods = _periods(anchor, now)
        with engine.begin() as connection:
            # NOTE: created as at the start of its history: a customer (and billed) since then.
            customers_service.create_customer(
                connection=connection,
                data=CustomerCreate(
                    id=customer_id,
                    name=name,
                    billing_anchor_day=anchor,
                    billing_start=periods[0][0].start,
                ),
                currency=catalog.currency,
                now=periods[0][0].start,
            )
            for product, amount in DEMO_CAPS.get(customer_id, {}).items():
                quota_service.set_cap(
                    connection=connection,
                    catalog=catalog,
                    customer_id=customer_id,
                    product=product,
                    amount=Decimal(amount),
                    actor="demo",
                    now=now,
                )
        events = []
        for number, (period, share) in enumerate(periods):
            end = min(period.end, now)
            seconds = max(int((end - period.start).total_seconds()), 1)
            for product, volume in volumes.items():
                if not catalog.counted_by(product, _properties(customer_id, product, 0)):
                    continue  # a catalogue without it
                # A few hundred events per product whose quantities add up to the volume.
                total = int(volume * share)
                count = 300
                per_event = total // count
                for index in range(count):
                    at = period.start + dt.timedelta(seconds=rng.randrange(seconds))
                    quantity = per_event + (total - per_event * count if index == 0 else 0)
                    made: dict[str, object] = {
                        "id": f"demo-{customer_id}-{product}-{number}-{index}",
                        "customer": customer_id,
                        "product" if product in catalog.products else "event": product,
                        "quantity": Decimal(quantity),
                        "timestamp": at.isoformat(),
                    }
                    properties = _properties(customer_id, product, index)
                    if properties is not None:
                        made["properties"] = properties
                    events.append(made)
        for offset in range(0, len(events), BATCH):
            with engine.begin() as connection:
                metering_service.ingest(
                    connection=connection,
                    catalog=catalog,
                    raw_events=events[offset : offset + BATCH],
                    now=now,
                )
        sent += len(events)
    close_due(engine, catalog, now, dt.timedelta(0))  # the history becomes invoices
    return sent
