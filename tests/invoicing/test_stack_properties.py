"""Property across the stack, on SQLite and PostgreSQL: a random month of events (in several
batches, with retries), spend caps, a percentage discount and a commitment, then the close.
Invariants: invoice figures are sums of lines; no product's line (after its discount) is
above its cap; the credit ledger's balance is the sum of its entries; closing again changes
nothing; usage equals the unique events accepted."""

import datetime as dt
import itertools
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session

from billing.commitments import service as commitments
from billing.credits import ledger
from billing.credits.models import CreditEntry
from billing.db import table_of
from billing.invoicing.close import close_customer
from billing.invoicing.models import Invoice, InvoiceLine
from billing.metering import service as metering_service
from billing.metering.store import usage_table
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, update_customers

PRODUCTS = ("product_analytics", "session_replay", "feature_flags", "surveys")
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
CLOSE_AT = dt.datetime(2026, 11, 1, 2, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
counter = itertools.count()

event_st = st.tuples(
    st.sampled_from(PRODUCTS),
    st.integers(min_value=1, max_value=2_000_000),
    st.integers(min_value=0, max_value=29),  # day of October
)
month = st.fixed_dictionaries(
    {
        "events": st.lists(event_st, min_size=1, max_size=30),
        "batches": st.integers(min_value=1, max_value=4),
        "retries": st.integers(min_value=0, max_value=5),
        "caps": st.dictionaries(
            st.sampled_from(PRODUCTS), st.decimals("0", "300", places=2), max_size=3
        ),
        "percent": st.sampled_from([None, D("10"), D("12.5"), D("33.3333")]),
        "credit": st.sampled_from([None, D("3000"), D("20000")]),
    }
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=month)
def test_a_random_month_closes_into_a_consistent_invoice(engine, catalog, case):
    customer = f"stack_{next(counter)}"
    with Session(engine) as session:
        add_customer(session, customer)
        update_customers(
            session.connection(),
            customer,
            created_at=START,
            discount_percent=case["percent"],
            discount_reason="test",
        )
        connection = session.connection()
        if case["credit"] is not None:
            commitments.start(connection, catalog, customer, case["credit"], 1, START)
        for product, amount in case["caps"].items():
            set_cap(connection, catalog, customer, product, amount, START)
        session.commit()

    events = [
        {
            "id": f"{customer}-{index}",
            "customer": customer,
            "product": product,
            "quantity": quantity,
            "timestamp": (START + dt.timedelta(days=day, hours=1)).isoformat(),
        }
        for index, (product, quantity, day) in enumerate(case["events"])
    ]
    size = -(-len(events) // case["batches"])
    batches = [events[i : i + size] for i in range(0, len(events), size)]
    batches.append(events[: case["retries"]])  # a client retrying what it already sent
    for batch in batches:
        if batch:
            with engine.begin() as connection:
                metering_service.ingest(
                    connection=connection,
                    catalog=catalog,
                    raw_events=batch,
                    now=dt.datetime(2026, 10, 31, tzinfo=dt.UTC),
                )

    with engine.begin() as connection:
        issued = close_customer(connection, catalog, customer, CLOSE_AT, GRACE)
    with engine.begin() as connection:
        assert close_customer(connection, catalog, customer, CLOSE_AT, GRACE) == []  # again
    invoices_t, lines_t = table_of(Invoice), table_of(InvoiceLine)
    with engine.connect() as connection:
        usage_invoices = list(
            connection.execute(
                select(invoices_t).where(
                    invoices_t.c.customer_id == customer, invoices_t.c.kind == "usage"
                )
            )
        )
        assert [i.id for i in usage_invoices] == [i.id for i in issued]
        [invoice] = usage_invoices
        lines = list(connection.execute(select(lines_t).where(lines_t.c.invoice_id == invoice.id)))
        assert invoice.amount_due == sum((line.amount for line in lines), D(0))
        assert invoice.total == invoice.subtotal - invoice.discount_total
        assert invoice.amount_due == invoice.total - invoice.credits_applied >= 0
        for product, cap in case["caps"].items():
            charged = sum(
                (
                    line.amount
                    for line in lines
                    if line.product == product and line.kind != "credits"
                ),
                D(0),
            )
            assert charged <= cap, (product, charged, cap)

        entries = table_of(CreditEntry)
        amounts = connection.execute(
            select(entries.c.amount).where(entries.c.customer_id == customer)
        ).scalars()
        total = sum(amounts, D(0))  # in Python: SQLite's SUM would go through floats
        assert ledger.balance(connection, customer) == total
        assert ledger.balance(connection, customer) >= 0

        totals = usage_table()
        usage = dict(
            connection.execute(
                select(totals.c.product, func.sum(totals.c.events + totals.c.over_limit_events))
                .where(totals.c.customer_id == customer)
                .group_by(totals.c.product)
            ).all()
        )
        stored = {}
        for product, _, _ in case["events"]:
            stored[product] = stored.get(product, 0) + 1
        assert {p: int(n) for p, n in usage.items() if n} == stored  # retries counted once
