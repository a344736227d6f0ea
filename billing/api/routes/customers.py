"""Customers and their usage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from billing.api.deps import AdminKey, CustomerAccess, ReaderKey, StaffKey, labelled_period
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut
from billing.customers import service as customers_service
from billing.customers.models import Customer, CustomerCreate, CustomerPublic
from billing.customers.periods import period_for
from billing.http.deps import CatalogDep, SessionDep
from billing.metering import service as metering_service
from billing.metering.public import UsagePublic, usage_public

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


@router.post("", status_code=201, response_model=CustomerPublic, responses=ERRORS)
def create_customer(
    body: CustomerCreate, session: SessionDep, catalog: CatalogDep, _: AdminKey
) -> Any:
    """Create a customer (admin). A duplicate id is 409."""
    return customers_service.create_customer(session=session, data=body, currency=catalog.currency)


@router.get("", response_model=list[CustomerPublic], responses=ERRORS)
def list_customers(
    session: SessionDep,
    _: StaffKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> Any:
    """Customers by id, a page at a time (`after` = the last id of the previous page)."""
    return customers_service.list_customers(session=session, limit=limit, after=after)


@router.get("/{customer_id}", response_model=CustomerPublic, responses=ERRORS)
def get_customer(_: ReaderKey, customer: CustomerAccess) -> Customer:
    """One customer (admin, finance, or that customer's own key)."""
    return customer


@router.get("/{customer_id}/usage", response_model=UsagePublic, responses=ERRORS)
def get_usage(
    _: ReaderKey,
    customer: CustomerAccess,
    session: SessionDep,
    period: Annotated[str | None, Query(description="YYYY-MM (default: current)")] = None,
) -> UsagePublic:
    """Usage per product in one period, from the running totals (no scan of raw events)."""
    if period is None:
        chosen = period_for(customer.billing_anchor_day, dt.datetime.now(dt.UTC))
    else:
        chosen = labelled_period(period, customer.billing_anchor_day)
    rows = metering_service.usage_for(session=session, customer=customer, period=chosen)
    return usage_public(customer.id, chosen, rows)
