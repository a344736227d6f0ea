"""Commitments, the credit ledger and percentage discounts (docs/discounts.md)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError

from billing.api.deps import AdminKey, CustomerAccess, IdempotencyDep, OwnerKey, ReaderKey
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import CommitmentIn, DiscountIn, ErrorOut, TopUpIn
from billing.commitments import queries
from billing.commitments import service as commitments
from billing.commitments.discounts import set_discount
from billing.commitments.public import (
    CommitmentChangePublic,
    CommitmentOptionsPublic,
    CommitmentsPublic,
    CreditLedgerPublic,
    DiscountPublic,
)
from billing.errors import InvalidAmount
from billing.http.deps import CatalogDep, LimitsChanged, SessionDep
from billing.parsing import parse_amount

router = APIRouter(prefix="/v1/customers", tags=["commitments"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


def _usage_param(text: str) -> Decimal:
    try:
        return parse_amount(text)
    except PydanticCustomError as error:
        raise InvalidAmount(f"usage: {error.message()}", field="usage") from None


@router.get("/{customer_id}/commitment/options", responses=ERRORS)
def get_options(
    _: ReaderKey,
    customer: CustomerAccess,
    session: SessionDep,
    catalog: CatalogDep,
    usage: Annotated[
        str | None,
        Query(description="monthly usage at list price to project instead of the run rate"),
    ] = None,
) -> CommitmentOptionsPublic:
    """Every bracket priced for this customer's run rate, the largest saver recommended."""
    monthly = None if usage is None else _usage_param(usage)
    now = dt.datetime.now(dt.UTC)
    return queries.options(session.connection(), catalog, customer, now, monthly)


@router.post(
    "/{customer_id}/commitment",
    status_code=201,
    responses=ERRORS,
    response_model=CommitmentChangePublic,
)
def start_commitment(
    _: OwnerKey,
    customer: CustomerAccess,
    body: CommitmentIn,
    session: SessionDep,
    catalog: CatalogDep,
    idempotent: IdempotencyDep,
) -> CommitmentChangePublic | JSONResponse:
    """Start a commitment: its first contract year is invoiced now, its credit granted.
    Send an `Idempotency-Key` to make a retry safe (docs/idempotency.md)."""
    now = dt.datetime.now(dt.UTC)
    replayed = idempotent.replayed(now)
    if replayed is not None:
        return replayed
    connection = session.connection()
    outcome = commitments.start(connection, catalog, customer.id, body.credit, body.years, now)
    return idempotent.answer(queries.change(connection, catalog, outcome), 201, now)


@router.post(
    "/{customer_id}/commitment/topup", responses=ERRORS, response_model=CommitmentChangePublic
)
def top_up(
    _: OwnerKey,
    customer: CustomerAccess,
    body: TopUpIn,
    session: SessionDep,
    catalog: CatalogDep,
    idempotent: IdempotencyDep,
) -> CommitmentChangePublic | JSONResponse:
    """Add credit to the current contract year at the running bracket (inside the window).
    Send an `Idempotency-Key` to make a retry safe (docs/idempotency.md)."""
    now = dt.datetime.now(dt.UTC)
    replayed = idempotent.replayed(now)
    if replayed is not None:
        return replayed
    connection = session.connection()
    outcome = commitments.topup(connection, catalog, customer.id, body.credit, now)
    return idempotent.answer(queries.change(connection, catalog, outcome), 200, now)


@router.get("/{customer_id}/commitment", responses=ERRORS)
def get_commitment(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> CommitmentsPublic:
    """The customer's commitments, newest first, and the credit balance."""
    return queries.commitments(session.connection(), catalog, customer.id)


@router.get("/{customer_id}/credits", responses=ERRORS)
def get_credits(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> CreditLedgerPublic:
    """The credit ledger, oldest first: every grant, release, draw, carry-forward, expiry."""
    return queries.credits(session.connection(), catalog, customer.id)


@router.put("/{customer_id}/discount", responses=ERRORS)
def put_discount(
    _: AdminKey,
    customer: CustomerAccess,
    body: DiscountIn,
    session: SessionDep,
    catalog: CatalogDep,
    limits: LimitsChanged,
) -> DiscountPublic:
    """Set a percentage discount (admin): it applies to every usage line, before credits,
    and caps are measured after it."""
    change = set_discount(
        connection=session.connection(),
        catalog=catalog,
        customer_id=customer.id,
        percent=body.percent,
        reason=body.reason,
        until=body.until,
        now=dt.datetime.now(dt.UTC),
    )
    limits.moved()
    return change
