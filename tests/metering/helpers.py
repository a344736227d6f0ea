import datetime as dt

from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


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
