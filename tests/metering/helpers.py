import datetime as dt

from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.customers.periods import period_for

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def recent(now=None):
    """A minute before `now` (the real clock by default), but never before the start of
    now's period (anchor day 1): an event stamped then is in the current period, also in the
    first minute of a month. Tests that read a period back name the stamp's period."""
    now = now or dt.datetime.now(dt.UTC)
    return max(now - dt.timedelta(minutes=1), period_for(1, now).start)


def add_customer(session, customer_id="cust_1", anchor=1):
    customer = customers_service.create_customer(
        session=session,
        data=CustomerCreate(
            id=customer_id, name=f"Customer {customer_id}", billing_anchor_day=anchor
        ),
        currency="USD",
    )
    session.commit()
    return customer


def event(
    event_id, quantity=1, product="product_analytics", customer="cust_1", at="2026-11-24T10:00:00Z"
):
    return {
        "id": event_id,
        "customer": customer,
        "product": product,
        "quantity": quantity,
        "timestamp": at,
    }
