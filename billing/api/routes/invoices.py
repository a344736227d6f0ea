"""Invoices: list, read, the upcoming draft, and void (docs/invoicing.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter

from billing.api.deps import CustomerAccess, InvoiceAccess, ReaderKey, StaffKey, actor
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, VoidIn
from billing.http.deps import CatalogDep, SessionDep
from billing.invoicing import service as invoices
from billing.invoicing.public import (
    InvoiceListPublic,
    InvoicePublic,
    UpcomingInvoicePublic,
    VoidPublic,
)

router = APIRouter(prefix="/v1", tags=["invoices"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


@router.get("/customers/{customer_id}/invoices", responses=ERRORS)
def list_invoices(_: ReaderKey, customer: CustomerAccess, session: SessionDep) -> InvoiceListPublic:
    """The customer's invoices, newest first (usage and commitment invoices)."""
    found = invoices.list_invoices(session.connection(), customer.id)
    return InvoiceListPublic(customer=customer.id, invoices=found)


@router.get("/customers/{customer_id}/invoices/upcoming", responses=ERRORS)
def upcoming_invoice(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> UpcomingInvoicePublic:
    """The running period's invoice as it stands now: computed on demand, nothing stored."""
    now = dt.datetime.now(dt.UTC)
    return invoices.upcoming(session.connection(), catalog, customer.id, now)


@router.get("/invoices/{invoice_id}", responses=ERRORS)
def get_invoice(_: ReaderKey, invoice_id: InvoiceAccess, session: SessionDep) -> InvoicePublic:
    """One invoice with its lines and their tier breakdown."""
    return invoices.get_invoice(session.connection(), invoice_id)


@router.post("/invoices/{invoice_id}/void", responses=ERRORS)
def void_invoice(
    principal: StaffKey,
    invoice_id: InvoiceAccess,
    body: VoidIn,
    session: SessionDep,
    catalog: CatalogDep,
) -> VoidPublic:
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
    return VoidPublic(
        voided=invoices.get_invoice(connection, voided),
        reissued=None if issued is None else invoices.get_invoice(connection, issued.id),
    )
