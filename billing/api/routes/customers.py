"""Customers and their usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from billing.api.deps import (
    AdminKey,
    CatalogDep,
    ReaderKey,
    SessionDep,
    StaffKey,
    ensure_customer_access,
    labelled_period,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate, CustomerPublic
from billing.customers.periods import period_for
from billing.metering import service as metering_service
from billing.money import format_quantity

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
def get_customer(customer_id: str, session: SessionDep, principal: ReaderKey) -> Any:
    """One customer (admin, finance, or that customer's own key)."""
    ensure_customer_access(principal, customer_id)
    return customers_service.get_customer(session=session, customer_id=customer_id)


@router.get("/{customer_id}/usage", responses=ERRORS)
def get_usage(
    customer_id: str,
    session: SessionDep,
    principal: ReaderKey,
    period: Annotated[str | None, Query(description="YYYY-MM (default: current)")] = None,
) -> dict[str, Any]:
    """Usage per product in one period, from the running totals (no scan of raw events)."""
    ensure_customer_access(principal, customer_id)
    customer = customers_service.get_customer(session=session, customer_id=customer_id)
    if period is None:
        chosen = period_for(customer.billing_anchor_day, dt.datetime.now(dt.UTC))
    else:
        chosen = labelled_period(period, customer.billing_anchor_day)
    rows = metering_service.usage_for(session=session, customer=customer, period=chosen)
    return {
        "customer": customer.id,
        "period": chosen.label,
        "start": chosen.start.isoformat(),
        "end": chosen.end.isoformat(),
        "products": [
            {
                "product": row.product,
                "quantity": format_quantity(row.quantity),
                "events": row.events,
                "duplicates": row.duplicates,
                "rejected": row.rejected,
            }
            for row in rows
        ],
        "total_quantity": format_quantity(sum((r.quantity for r in rows), Decimal(0))),
    }
