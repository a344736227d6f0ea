"""Invoices: list, read (JSON or PDF), the upcoming draft, and void (docs/invoicing.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from billing.api.deps import (
    CustomerAccess,
    IdempotencyDep,
    InvoiceAccess,
    ReaderKey,
    StaffKey,
    actor,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import CreditNoteIn, ErrorOut, VoidIn
from billing.corrections import credit_notes
from billing.corrections.calculate import LineRequest
from billing.corrections.void import void
from billing.http.deps import CatalogDep, SessionDep
from billing.http.downloads import PDF_ANSWER, PDFResponse, download
from billing.invoicing import service as invoices
from billing.invoicing.models import CreditNoteOutcome
from billing.invoicing.party import seller_of
from billing.invoicing.public import (
    CreditNoteListPublic,
    CreditNotePublic,
    InvoiceListPublic,
    InvoicePublic,
    UpcomingInvoicePublic,
    VoidPublic,
    credit_note_public,
)
from billing.settings import Settings

router = APIRouter(prefix="/v1", tags=["invoices"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}
# A PDF route's errors are still the JSON error body (a `model` would be filed under the
# route's own media type, application/pdf).
_ERROR_JSON = {"schema": {"$ref": f"#/components/schemas/{ErrorOut.__name__}"}}
PDF_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"content": {"application/json": _ERROR_JSON}} for code in (401, 403, 404, 422)
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


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
def get_invoice(
    _: ReaderKey, invoice_id: InvoiceAccess, session: SessionDep, settings: SettingsDep
) -> InvoicePublic:
    """One invoice with its lines and their tier breakdown, and its due date."""
    return invoices.get_invoice(
        session.connection(), invoice_id, due_days=settings.invoice_due_days
    )


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=PDFResponse,
    responses={**PDF_ERRORS, 200: PDF_ANSWER},
)
def get_invoice_pdf(
    _: ReaderKey, invoice_id: InvoiceAccess, session: SessionDep, settings: SettingsDep
) -> Response:
    """The invoice as a PDF (an attachment named after its number, `INV-000123.pdf`): the
    seller (BILLING_SELLER_*), the customer, dates, status, every line and the amount due,
    the same figures as `GET /v1/invoices/{invoice_id}`."""
    made = invoices.invoice_pdf(
        session.connection(),
        invoice_id,
        due_days=settings.invoice_due_days,
        seller=seller_of(settings),
    )
    return download(made.content, made.filename, made.media_type)


@router.post("/invoices/{invoice_id}/void", responses=ERRORS, response_model=VoidPublic)
def void_invoice(
    principal: StaffKey,
    invoice_id: InvoiceAccess,
    body: VoidIn,
    session: SessionDep,
    catalog: CatalogDep,
    idempotent: IdempotencyDep,
    settings: SettingsDep,
) -> VoidPublic | JSONResponse:
    """Void an unpaid invoice (finance or admin), with a reason; credits drawn go back. With
    `"reissue": true` a corrected invoice for the same period replaces it. A paid invoice is
    corrected by a credit note instead (409 `invoice_paid`); voiding a commitment's invoice
    cancels the commitment. Send an `Idempotency-Key` to make a retry safe."""
    now = dt.datetime.now(dt.UTC)
    replayed = idempotent.replayed(now)
    if replayed is not None:
        return replayed
    connection = session.connection()
    voided, issued = void(
        connection,
        catalog,
        invoice_id,
        reason=body.reason,
        actor=actor(principal),
        now=now,
        reissue=body.reissue,
    )
    days = settings.invoice_due_days
    result = VoidPublic(
        voided=invoices.get_invoice(connection, voided, due_days=days),
        reissued=None
        if issued is None
        else invoices.get_invoice(connection, issued.id, due_days=days),
    )
    return idempotent.answer(result, 200, now)


@router.post(
    "/invoices/{invoice_id}/credit-notes",
    status_code=201,
    responses=ERRORS,
    response_model=CreditNotePublic,
)
def create_credit_note(
    principal: StaffKey,
    invoice_id: InvoiceAccess,
    body: CreditNoteIn,
    session: SessionDep,
    catalog: CatalogDep,
    idempotent: IdempotencyDep,
    settings: SettingsDep,
) -> CreditNotePublic | JSONResponse:
    """Credit an open or paid invoice (finance or admin): whole lines, part of a line's
    amount, or a quantity re-priced; `outcome` says where the money goes (docs/invoicing.md,
    "Credit notes"). Send an `Idempotency-Key` to make a retry safe."""
    now = dt.datetime.now(dt.UTC)
    replayed = idempotent.replayed(now)
    if replayed is not None:
        return replayed
    connection = session.connection()
    note = credit_notes.create_credit_note(
        connection,
        catalog,
        invoice_id,
        reason=body.reason,
        lines=[
            LineRequest(line=line.line, amount=line.amount, quantity=line.quantity)
            for line in body.lines
        ],
        outcome=CreditNoteOutcome(body.outcome),
        actor=actor(principal),
        now=now,
    )
    number = invoices.get_invoice(connection, invoice_id, due_days=settings.invoice_due_days).number
    return idempotent.answer(credit_note_public(note, number), 201, now)


@router.get("/invoices/{invoice_id}/credit-notes", responses=ERRORS)
def list_credit_notes(
    _: ReaderKey, invoice_id: InvoiceAccess, session: SessionDep, settings: SettingsDep
) -> CreditNoteListPublic:
    """An invoice's credit notes, in number order."""
    days = settings.invoice_due_days
    invoice = invoices.get_invoice(session.connection(), invoice_id, due_days=days)
    return CreditNoteListPublic(invoice=invoice.id, credit_notes=invoice.credit_notes)
