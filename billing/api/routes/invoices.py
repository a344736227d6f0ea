"""Invoices: list, read, the upcoming draft, and void (docs/invoicing.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter

from billing.api.deps import (
    CatalogDep,
    ReaderKey,
    SessionDep,
    StaffKey,
    actor,
    ensure_customer_access,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, VoidIn
from billing.customers import service as customers_service
from billing.invoicing import service as invoices

router = APIRouter(prefix="/v1", tags=["invoices"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


@router.get("/customers/{customer_id}/invoices", responses=ERRORS)
def list_invoices(customer_id: str, session: SessionDep, principal: ReaderKey) -> dict[str, Any]:
    """The customer's invoices, newest first (usage and commitment invoices)."""
    ensure_customer_access(principal, customer_id)
    customers_service.get_customer(session=session, customer_id=customer_id)
    return {
        "customer": customer_id,
        "invoices": invoices.list_invoices(session.connection(), customer_id),
    }


@router.get("/customers/{customer_id}/invoices/upcoming", responses=ERRORS)
def upcoming_invoice(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """The running period's invoice as it stands now: computed on demand, nothing stored."""
    ensure_customer_access(principal, customer_id)
    return invoices.upcoming(session.connection(), catalog, customer_id, dt.datetime.now(dt.UTC))


@router.get("/invoices/{invoice_id}", responses=ERRORS)
def get_invoice(invoice_id: str, session: SessionDep, principal: ReaderKey) -> dict[str, Any]:
    """One invoice with its lines and their tier breakdown."""
    connection = session.connection()
    ensure_customer_access(principal, invoices.customer_of(connection, invoice_id))
    return invoices.get_invoice(connection, invoice_id)


@router.post("/invoices/{invoice_id}/void", responses=ERRORS)
def void_invoice(
    invoice_id: str,
    body: VoidIn,
    session: SessionDep,
    catalog: CatalogDep,
    principal: StaffKey,
) -> dict[str, Any]:
    """Void a finalized invoice (finance or admin), with a reason; credits drawn go back.
    With `"reissue": true` a corrected invoice for the same period replaces it."""
    connection = session.connection()
    voided, issued = invoices.void(
        connection,
        catalog,
        invoice_id,
        reason=body.reason,
        actor=actor(principal),
        now=dt.datetime.now(dt.UTC),
        reissue=body.reissue,
    )
    answer = {
        "voided": invoices.get_invoice(connection, voided),
        "reissued": None if issued is None else invoices.get_invoice(connection, issued.id),
    }
    session.commit()
    return answer
