"""Property: over random usage, discounts and credits, every invoice's figures are sums of
its rounded lines, to the cent (SQLite; the arithmetic is the same on PostgreSQL)."""

import datetime as dt
import itertools
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.credits import ledger
from billing.invoicing.close import close_customer
from billing.invoicing.models import Invoice, InvoiceLine
from billing.metering import service as metering_service
from tests.metering.helpers import add_customer, update_customers

PRODUCTS = ("product_analytics", "session_replay", "feature_flags", "data_warehouse")
counter = itertools.count()
usage = st.dictionaries(
    st.sampled_from(PRODUCTS),
    st.integers(min_value=0, max_value=5 * 10**9) | st.decimals("0", "100000", places=3),
    max_size=4,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    usage=usage,
    percent=st.sampled_from([None, D("0"), D("12.5"), D("15"), D("33.3333"), D("100")]),
    credit=st.decimals("0", "50000", places=2),
)
def test_invoice_figures_are_sums_of_lines(session, catalog, usage, percent, credit):
    customer = f"prop_{next(counter)}"
    add_customer(session, customer)
    update_customers(
        session.connection(),
        customer,
        created_at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
        discount_percent=percent,
        discount_reason="test" if percent is not None else None,
    )
    at = dt.datetime(2026, 9, 10, tzinfo=dt.UTC)
    if credit:
        ledger.append(session.connection(), customer, "grant", credit, at, note="test")
    events = [
        {
            "id": f"{customer}-{p}",
            "customer": customer,
            "product": p,
            "quantity": str(q),
            "timestamp": at.isoformat(),
        }
        for p, q in usage.items()
    ]
    metering_service.ingest(
        connection=session.connection(), catalog=catalog, raw_events=events, now=at
    )
    [issued] = close_customer(
        session.connection(),
        catalog,
        customer,
        dt.datetime(2026, 10, 2, tzinfo=dt.UTC),
        dt.timedelta(hours=1),
    )
    invoice = (
        session.connection()
        .execute(select(Invoice.__table__).where(Invoice.__table__.c.id == issued.id))
        .one()
    )
    lines = list(
        session.connection().execute(
            select(InvoiceLine.__table__).where(InvoiceLine.__table__.c.invoice_id == issued.id)
        )
    )
    by_kind = {
        k: sum((line.amount for line in lines if line.kind == k), D(0))
        for k in ("usage", "discount", "credits")
    }
    for line in lines:
        assert line.amount == line.amount.quantize(D("0.01"))
    assert invoice.subtotal == by_kind["usage"]
    assert invoice.discount_total == -by_kind["discount"]
    assert invoice.total == invoice.subtotal - invoice.discount_total
    assert invoice.credits_applied == -by_kind["credits"] == min(credit, invoice.total)
    assert (
        invoice.amount_due
        == sum((line.amount for line in lines), D(0))
        == invoice.total - invoice.credits_applied
    )
    assert invoice.amount_due >= 0
    session.commit()
