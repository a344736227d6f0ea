"""Customers and their usage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from billing.api.deps import AdminKey, CustomerAccess, ReaderKey, StaffKey, labelled_period
from billing.api.exact_json import ExactJSONRoute
from billing.api.routes.pricing import answer_quote
from billing.api.schemas import ErrorOut, QuoteRequest
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate, CustomerPublic
from billing.customers.periods import period_for
from billing.customers.service import CustomerRow
from billing.http.deps import CatalogDep, SessionDep
from billing.metering import service as metering_service
from billing.metering.public import UsagePublic, usage_public
from billing.quotes import QuotePublic

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


def _public(customer: CustomerRow) -> CustomerPublic:
    return CustomerPublic.model_validate(customer, from_attributes=True)


@router.post("", status_code=201, responses=ERRORS)
def create_customer(
    body: CustomerCreate, session: SessionDep, catalog: CatalogDep, _: AdminKey
) -> CustomerPublic:
    """Create a customer (admin). A duplicate id is 409."""
    created = customers_service.create_customer(
        connection=session.connection(), data=body, currency=catalog.currency
    )
    return _public(created)


@router.get("", responses=ERRORS)
def list_customers(
    session: SessionDep,
    _: StaffKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> list[CustomerPublic]:
    """Customers by id, a page at a time (`after` = the last id of the previous page)."""
    found = customers_service.list_customers(
        connection=session.connection(), limit=limit, after=after
    )
    return [_public(customer) for customer in found]


@router.get("/{customer_id}", responses=ERRORS)
def get_customer(_: ReaderKey, customer: CustomerAccess) -> CustomerPublic:
    """One customer (admin, finance, or that customer's own key)."""
    return _public(customer)


@router.post("/{customer_id}/quote", responses=ERRORS)
def quote_for_customer(
    _: ReaderKey, customer: CustomerAccess, body: QuoteRequest, catalog: CatalogDep
) -> QuotePublic:
    """Price a month of usage as POST /v1/quote does, at this customer's prices: their
    overrides in force on `at` (overrides/<customer>.toml) in place of the list prices
    (admin, finance, or that customer's own key)."""
    return answer_quote(body, catalog, customer.id)


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
    rows = metering_service.usage_for(
        connection=session.connection(), customer_id=customer.id, period=chosen
    )
    return usage_public(customer.id, chosen, rows)
