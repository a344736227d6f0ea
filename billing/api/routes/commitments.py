"""Commitments, the credit ledger and percentage discounts (docs/discounts.md)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, select

from billing.api.deps import (
    AdminKey,
    CatalogDep,
    OwnerKey,
    ReaderKey,
    SessionDep,
    ensure_customer_access,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import CommitmentIn, DiscountIn, ErrorOut, TopUpIn
from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.commitments.discounts import set_discount
from billing.commitments.models import Commitment
from billing.commitments.projection import project
from billing.credits import ledger
from billing.customers import service as customers_service
from billing.db import table_of
from billing.errors import InvalidAmount, NoCommitmentSchedule
from billing.money import format_exact, format_quantity
from billing.parsing import parse_amount
from billing.pricing.commitments import commitment_options
from billing.quotes import commitment_json

router = APIRouter(prefix="/v1/customers", tags=["commitments"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


def _money(value: Any, catalog: Catalog) -> str | None:
    return None if value is None else format_exact(value, catalog.currency)


def commitment_view(row: Any, catalog: Catalog) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "credit": _money(row.credit, catalog),
        "years": row.years,
        "discount_percent": format_quantity(row.discount_percent),
        "bracket_min_credit": _money(row.bracket_min_credit, catalog),
        "price_per_year": _money(row.price_per_year, catalog),
        "release": row.release,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "invoiced_years": row.invoiced_years,
    }


def _outcome_json(
    connection: Connection, outcome: commitments.Outcome, catalog: Catalog
) -> dict[str, Any]:
    table = table_of(Commitment)
    row = connection.execute(select(table).where(table.c.id == outcome.commitment_id)).one()
    return {
        "commitment": commitment_view(row, catalog),
        "invoices": [
            {
                "id": i.id,
                "number": i.number,
                "kind": "commitment",
                "total": _money(i.amount_due, catalog),
            }
            for i in outcome.invoices
        ],
        "ledger": [
            {
                "kind": e.kind,
                "amount": _money(e.amount, catalog),
                "balance_after": _money(e.balance_after, catalog),
                "note": e.note,
            }
            for e in outcome.entries
        ],
        "balance": _money(ledger.balance(connection, row.customer_id), catalog),
    }


def _usage_param(text: str) -> Decimal:
    try:
        return parse_amount(text)
    except PydanticCustomError as error:
        raise InvalidAmount(f"usage: {error.message()}", field="usage") from None


def _committed(session: Any, outcome: commitments.Outcome, catalog: Catalog) -> dict[str, Any]:
    """The answer of a commitment change, read before the commit that makes it durable."""
    answer = _outcome_json(session.connection(), outcome, catalog)
    session.commit()
    return answer


@router.get("/{customer_id}/commitment/options", responses=ERRORS)
def get_options(
    customer_id: str,
    session: SessionDep,
    catalog: CatalogDep,
    principal: ReaderKey,
    usage: Annotated[
        str | None,
        Query(description="monthly usage at list price to project instead of the run rate"),
    ] = None,
) -> dict[str, Any]:
    """Every bracket priced for this customer's run rate, the largest saver recommended."""
    ensure_customer_access(principal, customer_id)
    if catalog.schedule is None:
        raise NoCommitmentSchedule("this catalogue offers no commitments", field="customer")
    customer = customers_service.get_customer(session=session, customer_id=customer_id)
    periods: tuple[str, ...] = ()
    if usage is not None:
        monthly, basis = _usage_param(usage), "override"
    else:
        projection = project(
            session.connection(),
            catalog,
            customer_id,
            customer.billing_anchor_day,
            dt.datetime.now(dt.UTC),
            customer.created_at,
        )
        monthly, basis, periods = projection.monthly, projection.basis, projection.periods
    options = commitment_options(catalog.schedule, monthly)
    best = next((o.quote for o in options if o.recommended), None)
    return {
        "customer": customer_id,
        "currency": catalog.currency,
        "basis": basis,
        "basis_periods": list(periods),
        "monthly_usage": _money(monthly, catalog),
        "annual_usage": _money(monthly * 12, catalog),
        "options": [
            {**commitment_json(o.quote, catalog.currency), "recommended": o.recommended}
            for o in options
        ],
        "recommended": None
        if best is None
        else {"credit": _money(best.credit, catalog), "years": best.years},
    }


@router.post("/{customer_id}/commitment", status_code=201, responses=ERRORS)
def start_commitment(
    customer_id: str,
    body: CommitmentIn,
    session: SessionDep,
    catalog: CatalogDep,
    principal: OwnerKey,
) -> dict[str, Any]:
    """Start a commitment: its first contract year is invoiced now, its credit granted."""
    ensure_customer_access(principal, customer_id)
    now = dt.datetime.now(dt.UTC)
    outcome = commitments.start(
        session.connection(), catalog, customer_id, body.credit, body.years, now
    )
    return _committed(session, outcome, catalog)


@router.post("/{customer_id}/commitment/topup", responses=ERRORS)
def top_up(
    customer_id: str,
    body: TopUpIn,
    session: SessionDep,
    catalog: CatalogDep,
    principal: OwnerKey,
) -> dict[str, Any]:
    """Add credit to the current contract year at the running bracket (inside the window)."""
    ensure_customer_access(principal, customer_id)
    now = dt.datetime.now(dt.UTC)
    outcome = commitments.topup(session.connection(), catalog, customer_id, body.credit, now)
    return _committed(session, outcome, catalog)


@router.get("/{customer_id}/commitment", responses=ERRORS)
def get_commitment(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """The customer's commitments, newest first, and the credit balance."""
    ensure_customer_access(principal, customer_id)
    customers_service.get_customer(session=session, customer_id=customer_id)
    table = table_of(Commitment)
    connection = session.connection()
    rows = connection.execute(
        select(table).where(table.c.customer_id == customer_id).order_by(table.c.created_at.desc())
    )
    return {
        "customer": customer_id,
        "commitments": [commitment_view(r, catalog) for r in rows],
        "balance": _money(ledger.balance(connection, customer_id), catalog),
    }


@router.get("/{customer_id}/credits", responses=ERRORS)
def get_credits(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """The credit ledger, oldest first: every grant, release, draw, carry-forward, expiry."""
    ensure_customer_access(principal, customer_id)
    customers_service.get_customer(session=session, customer_id=customer_id)
    connection = session.connection()
    rows = ledger.entries(connection, customer_id)
    return {
        "customer": customer_id,
        "currency": catalog.currency,
        "balance": _money(ledger.balance(connection, customer_id), catalog),
        "entries": [
            {
                "id": r.id,
                "kind": r.kind,
                "amount": _money(r.amount, catalog),
                "balance_after": _money(r.balance_after, catalog),
                "commitment": r.commitment_id,
                "reference": r.reference,
                "period_start": None if r.period_start is None else r.period_start.isoformat(),
                "note": r.note,
                "at": r.created_at.isoformat(),
            }
            for r in rows
        ],
    }


@router.put("/{customer_id}/discount", responses=ERRORS)
def put_discount(
    customer_id: str,
    body: DiscountIn,
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    principal: AdminKey,
) -> dict[str, Any]:
    """Set a percentage discount (admin): it applies to every usage line, before credits,
    and caps are measured after it."""
    change = set_discount(
        connection=session.connection(),
        catalog=catalog,
        customer_id=customer_id,
        percent=body.percent,
        reason=body.reason,
        until=body.until,
        now=dt.datetime.now(dt.UTC),
    )
    session.commit()
    request.app.state.limited_list.invalidate()
    return change
