"""Create and read customers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from billing.customers.models import Customer, CustomerCreate
from billing.errors import CurrencyMismatch, CustomerExists, NotFound


def create_customer(*, session: Session, data: CustomerCreate, currency: str) -> Customer:
    """Create a customer in the catalogue's currency; a duplicate id is CustomerExists."""
    if data.currency is not None and data.currency != currency:
        raise CurrencyMismatch(
            f"this catalogue prices in {currency}; a customer in {data.currency} cannot be billed",
            field="currency",
        )
    if session.get(Customer, data.id) is not None:
        raise CustomerExists(f"customer {data.id!r} already exists", field="id")
    customer = Customer(
        id=data.id,
        name=data.name,
        email=data.email,
        billing_anchor_day=data.billing_anchor_day,
        currency=currency,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(customer)
    try:
        session.flush()
    except IntegrityError:
        raise CustomerExists(f"customer {data.id!r} already exists", field="id") from None
    return customer


def get_customer(*, session: Session, customer_id: str) -> Customer:
    """A customer by id, or NotFound."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return customer


def list_customers(
    *, session: Session, limit: int = 100, after: str | None = None
) -> list[Customer]:
    """Customers by id, a page at a time."""
    query = select(Customer).order_by(Customer.id).limit(limit)
    if after:
        query = query.where(Customer.id > after)
    return list(session.exec(query))
