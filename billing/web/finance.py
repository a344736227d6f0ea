"""The finance pages (`/finance`): invoices with filters and CSV, revenue by product per
month as a chart, discounts and credits, caps hit, and Stripe sync with failures first.
Figures come from the same report functions as `/v1/reports/*`."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic_core import PydanticCustomError

from billing.catalog import Catalog
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.errors import (
    BillingError,
    InvalidAmount,
    InvalidCreditNoteLine,
    MissingField,
    UnknownAction,
    UnknownStatus,
)
from billing.http.deps import CatalogDep, ReadEngineDep, ReadSessionDep, SessionDep
from billing.http.downloads import download
from billing.http.errors import status_of
from billing.idempotency import service as idempotency
from billing.invoicing import service as invoicing_service
from billing.invoicing.models import CreditNoteOutcome, InvoiceStatus
from billing.invoicing.party import seller_of
from billing.invoicing.public import InvoicePublic
from billing.jobs import runner
from billing.jobs.context import JobContext
from billing.jobs.registry import SYNC_STRIPE
from billing.money import format_exact
from billing.parsing import parse_amount
from billing.reports import service as reports
from billing.reports.public import csv_lines
from billing.stripe_sync.sync import retry_all, retry_now
from billing.web.access import FinancePost, FinanceUser, now
from billing.web.charts import stacked_bars
from billing.web.signin import WebUser
from billing.web.templating import Area

router = APIRouter(include_in_schema=False)
NAV = (
    ("/finance/invoices", "Invoices"),
    ("/finance/revenue", "Billings"),
    ("/finance/caps", "Caps hit"),
    ("/finance/stripe", "Stripe sync"),
)
AREA = Area("Finance", "/finance", NAV)
PAGE_ROWS = 500
Month = Annotated[str, Query(max_length=7)]
Text = Annotated[str, Query(max_length=64)]
STATUSES = tuple(InvoiceStatus)


@router.get("/finance")
def finance_home(user: FinanceUser) -> RedirectResponse:
    return RedirectResponse("/finance/invoices", status_code=303)


def filter_form(
    from_: Annotated[str, Query(alias="from", max_length=7)] = "",
    to: Month = "",
    status: Text = "",
    customer: Text = "",
    sync_status: Text = "",
) -> dict[str, str]:
    """The invoice filters as the page and its CSV link take them (blank: any)."""
    return {
        "from": from_,
        "to": to,
        "status": status,
        "customer": customer,
        "sync_status": sync_status,
    }


FilterForm = Annotated[dict[str, str], Depends(filter_form)]


def _filters(form: dict[str, str]) -> reports.InvoiceFilter:
    start, end = reports.months(form["from"] or None, form["to"] or None)
    return reports.invoice_filter(start, end, form["status"], form["customer"], form["sync_status"])


@router.get("/finance/invoices", response_class=HTMLResponse)
def invoices_page(
    request: Request, user: FinanceUser, reads: ReadEngineDep, form: FilterForm
) -> HTMLResponse:
    """Invoices matching the filters (the first 500 shown; the CSV has them all)."""
    query = urlencode({k: v for k, v in form.items() if v})
    context: dict[str, Any] = {
        "form": form,
        "rows": [],
        "count": 0,
        "error": None,
        "statuses": STATUSES,
        "sync_states": reports.SYNC_FILTERS,  # also after an error: the form keeps its options
    }
    try:
        filters = _filters(form)
    except BillingError as error:
        context["error"] = {"field": error.field, "message": error.message}
        return AREA.page(
            request,
            user,
            "finance_invoices.html",
            context,
            active="/finance/invoices",
            status=status_of(error),
        )
    due: dict[str, Decimal] = {}
    for row in reports.stream_invoices(reads, filters):
        if len(context["rows"]) < PAGE_ROWS:
            context["rows"].append(row)
        context["count"] += 1
        if row.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAYMENT_FAILED):  # unpaid
            due[row.currency] = due.get(row.currency, Decimal(0)) + Decimal(row.amount_due)
    context["due"] = {currency: format_exact(v, currency) for currency, v in due.items()}
    context["csv"] = f"/finance/invoices.csv{'?' + query if query else ''}"
    return AREA.page(request, user, "finance_invoices.html", context, active="/finance/invoices")


@router.get("/finance/invoices.csv")
def invoices_csv(user: FinanceUser, reads: ReadEngineDep, form: FilterForm) -> Response:
    """Every invoice matching the filters, as CSV, streamed."""
    rows = reports.stream_invoices(reads, _filters(form))
    name = f"invoices-{form['from'] or 'all'}-{form['to'] or 'all'}.csv"
    return StreamingResponse(
        csv_lines(rows),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _no_invoice(request: Request, user: WebUser, invoice_id: str) -> HTMLResponse:
    missing = {"title": "Invoice not found", "message": f"No invoice {invoice_id}."}
    return AREA.page(request, user, "message.html", missing, active="/finance/invoices", status=404)


@router.get("/finance/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_page(
    invoice_id: str, request: Request, session: SessionDep, user: FinanceUser
) -> HTMLResponse:
    """Any customer's invoice (by id or number), with its credit notes and the form to
    issue one."""
    connection = session.connection()
    days = request.app.state.settings.invoice_due_days
    try:
        found_id = invoicing_service.resolve_invoice_id(connection, invoice_id)
        found = invoicing_service.get_invoice(connection, found_id, due_days=days)
    except BillingError:
        return _no_invoice(request, user, invoice_id)
    return _invoice_page(request, user, found)


@router.get("/finance/invoices/{invoice_id}/pdf", response_model=None)
def invoice_pdf(
    invoice_id: str, request: Request, session: SessionDep, user: FinanceUser
) -> Response:
    """Any customer's invoice (by id or number) as a PDF download, as the API draws it."""
    connection = session.connection()
    settings = request.app.state.settings
    try:
        made = invoicing_service.invoice_pdf(
            connection,
            invoicing_service.resolve_invoice_id(connection, invoice_id),
            due_days=settings.invoice_due_days,
            seller=seller_of(settings),
        )
    except BillingError:
        return _no_invoice(request, user, invoice_id)
    return download(made.content, made.filename, made.media_type)


def _invoice_page(
    request: Request,
    user: WebUser,
    found: InvoicePublic,
    *,
    credit_form: dict[str, str] | None = None,
    credit_error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    invoice = found.model_dump(mode="json", by_alias=True)  # the template reads the API's keys
    creditable = found.status in (
        InvoiceStatus.FINALIZED,
        InvoiceStatus.PAYMENT_FAILED,
        InvoiceStatus.PAID,
    )
    context = {
        "invoice": invoice,
        "back": "/finance/invoices",
        "pdf": f"/finance/invoices/{found.number}/pdf",
        "csrf": user.csrf,
        # NOTE: single-use: a resubmitted form issues no second note (docs/finance.md).
        "form_token": secrets.token_urlsafe(18),
        "credit_form": (credit_form or {"outcome": "reduce_due"}) if creditable else None,
        "credit_error": credit_error,
    }
    return AREA.page(
        request, user, "invoice.html", context, active="/finance/invoices", status=status
    )


@router.post("/finance/invoices/{invoice_id}/credit-notes", response_model=None)
def credit_note_post(
    invoice_id: str, request: Request, session: SessionDep, posted: FinancePost
) -> Response:
    """Issue a credit note from the invoice page: one line, whole or part of its amount,
    with an outcome and a reason; then show the invoice with its notes. A resubmitted form
    (the same single-use token) issues nothing new."""
    catalog: Catalog = request.app.state.catalog
    connection = session.connection()
    form = {k: posted.text(k) for k in ("line", "amount", "outcome", "reason")}
    token = posted.text("form_token")
    days = request.app.state.settings.invoice_due_days
    try:
        found = invoicing_service.get_invoice(connection, invoice_id, due_days=days)
    except BillingError:
        return _no_invoice(request, posted.user, invoice_id)
    try:
        if not token:
            raise MissingField("the form is out of date: open the invoice again", field="form")
        owner = f"finance:{posted.user.key_id or posted.user.via}"
        stored = idempotency.claim(
            connection,
            owner,
            f"form:{token}",
            idempotency.fingerprint("POST", request.url.path, form),
            now(),
        )
        if stored is None:
            amount = _form_amount(form["amount"])
            if not form["line"].isdigit():
                raise InvalidCreditNoteLine("choose a line to credit", field="line")
            create_credit_note(
                connection,
                catalog,
                found.id,
                reason=form["reason"],
                lines=[LineRequest(line=int(form["line"]), amount=amount)],
                outcome=_outcome(form["outcome"]),
                actor=f"finance page ({posted.user.via})",
                now=now(),
            )
            idempotency.complete(connection, owner, f"form:{token}", 303, {}, now())
    except BillingError as error:
        session.rollback()
        return _invoice_page(
            request,
            posted.user,
            invoicing_service.get_invoice(session.connection(), invoice_id, due_days=days),
            credit_form=form,
            credit_error=error.message,
            status=status_of(error),
        )
    return RedirectResponse(f"/finance/invoices/{found.id}#credit-notes", status_code=303)


def _form_amount(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        return parse_amount(text.replace(",", ""))
    except PydanticCustomError as error:
        raise InvalidAmount(f"amount: {error.message()}", field="amount") from None


def _outcome(text: str) -> CreditNoteOutcome:
    try:
        return CreditNoteOutcome(text)
    except ValueError:
        raise UnknownAction(
            f"outcome is reduce_due, credit_balance or refund, got {text!r}", field="outcome"
        ) from None


def _default_range(today: dt.date) -> tuple[str, str]:
    """The last twelve months, this one included."""
    first = today.replace(day=1)
    start = (
        first.replace(year=first.year - 1)
        if first.month == 12
        else first.replace(year=first.year - 1, month=first.month + 1)
    )
    return f"{start:%Y-%m}", f"{first:%Y-%m}"


def _money(value: Decimal, catalog: Catalog) -> str:
    return format_exact(value, catalog.currency)


@router.get("/finance/revenue", response_class=HTMLResponse)
def revenue_page(
    request: Request,
    user: FinanceUser,
    session: ReadSessionDep,
    catalog: CatalogDep,
    from_: Annotated[str, Query(alias="from", max_length=7)] = "",
    to: Month = "",
    basis: Annotated[str, Query(max_length=10)] = "service",
) -> HTMLResponse:
    """Billings by product per month (chart and table, with totals), discounts and credits
    used; months by service (the billing period's start) or by issue."""
    default_from, default_to = _default_range(now().date())
    form = {"from": from_ or default_from, "to": to or default_to, "basis": basis}
    context: dict[str, Any] = {"form": form, "error": None, "currency": catalog.currency}
    try:
        if basis not in reports.BASES:
            raise UnknownStatus(f"basis: service or issued, not {basis!r}", field="basis")
        start, end = reports.months(form["from"], form["to"])
    except BillingError as error:
        context["error"] = {"field": error.field, "message": error.message}
        return AREA.page(
            request,
            user,
            "finance_revenue.html",
            context,
            active="/finance/revenue",
            status=status_of(error),
        )
    connection = session.connection()
    matrix = reports.revenue_by_month_and_product(connection, start, end, basis)
    by_month, total = reports.revenue(connection, "month", start, end, basis)
    by_product, _ = reports.revenue(connection, "product", start, end, basis)
    months = list(matrix)
    products = [key for key in catalog.products if any(key in row for row in matrix.values())]
    names = {key: catalog.products[key].name for key in products}
    series = [(names[key], [_net(matrix[m].get(key)) for m in months]) for key in products]
    this_month = now().strftime("%Y-%m")
    context.update(
        chart=stacked_bars(months, series, catalog.currency) if months else None,
        months=months,
        series=[
            (name, [_money(v, catalog) for v in values], _money(sum(values, Decimal(0)), catalog))
            for name, values in series
        ],
        month_totals=[
            _money(sum((values[index] for _, values in series), Decimal(0)), catalog)
            for index in range(len(months))
        ],
        matrix_total=_money(sum((v for _, values in series for v in values), Decimal(0)), catalog),
        this_month=this_month,
        this_month_open=basis == "service"
        and end is not None
        and start is not None
        and start.strftime("%Y-%m") <= this_month < end.strftime("%Y-%m"),
        by_month=[(key, _figures(item, catalog)) for key, item in by_month.items()],
        by_product=[
            (names.get(key, key), _figures(item, catalog)) for key, item in by_product.items()
        ],
        total=_figures(total, catalog),
    )
    return AREA.page(request, user, "finance_revenue.html", context, active="/finance/revenue")


def _net(item: reports.Revenue | None) -> Decimal:
    """A product's revenue in a month: its usage lines less its discount lines, with its
    adjustments, less its credit notes."""
    if item is None:
        return Decimal(0)
    return item.list_amount - item.discounts + item.adjustments - item.credited


def _figures(item: reports.Revenue, catalog: Catalog) -> dict[str, Any]:
    return {
        "list": _money(item.list_amount, catalog),
        "discounts": _money(item.discounts, catalog),
        "adjustments": _money(item.adjustments, catalog),
        "commitments": _money(item.commitments, catalog),
        "credits_applied": _money(item.credits_applied, catalog),
        "amount_due": _money(item.amount_due, catalog),
        "credited": _money(item.credited, catalog),
        "net": _money(item.net, catalog),
        "invoices": len(item.invoices),
    }


@router.get("/finance/caps", response_class=HTMLResponse)
def caps_page(request: Request, user: FinanceUser, session: ReadSessionDep) -> HTMLResponse:
    """Customer x product pairs limited by their cap in the current period."""
    catalog: Catalog = request.app.state.catalog
    rows = [
        {
            **row.model_dump(),
            "product_name": (
                catalog.products[row.product].name
                if row.product in catalog.products
                else row.product
            ),
            "cap": "" if not row.cap else format_exact(Decimal(row.cap), catalog.currency),
        }
        for row in reports.caps_hit(session.connection(), now())
    ]
    context = {"rows": rows, "currency": catalog.currency}
    return AREA.page(request, user, "finance_caps.html", context, active="/finance/caps")


@router.get("/finance/stripe", response_class=HTMLResponse)
def stripe_page(request: Request, session: SessionDep, user: FinanceUser) -> HTMLResponse:
    """Where each invoice stands with Stripe, failures first, with a retry action."""
    connection = session.connection()
    rows = reports.sync_panel(connection)
    context = {
        "state": request.app.state.settings.stripe_sync_state,
        "counts": reports.sync_counts(connection),
        "rows": rows,
        "retryable": sum(1 for r in rows if r["retryable"]),
        "retried": request.query_params.get("retried"),
        "outcome": request.query_params.get("outcome"),
        "csrf": user.csrf,
    }
    return AREA.page(request, user, "finance_stripe.html", context, active="/finance/stripe")


@router.post("/finance/stripe/retry")
def stripe_retry(request: Request, session: SessionDep, posted: FinancePost) -> RedirectResponse:
    """Put an invoice first in line and, when Stripe sync is on, run the sync job now."""
    session.commit()  # the sign-in check is done: hold no transaction while Stripe is called
    engine = request.app.state.engine
    invoice_id = posted.text("invoice")
    if not retry_now(engine, invoice_id, now()):
        outcome = "not retried: it is not waiting or failed"
    else:
        outcome = _run_sync(request)
    try:
        days = request.app.state.settings.invoice_due_days
        number = invoicing_service.get_invoice(
            session.connection(), invoice_id, due_days=days
        ).number
    except BillingError:
        number = invoice_id
    query = urlencode({"retried": number, "outcome": outcome})
    return RedirectResponse(f"/finance/stripe?{query}", status_code=303)


@router.post("/finance/stripe/retry-all")
def stripe_retry_all(
    request: Request, session: SessionDep, posted: FinancePost
) -> RedirectResponse:
    """Put every failed, mismatched or waiting invoice in line and, when Stripe sync is on,
    run the sync job now."""
    session.commit()  # the sign-in check is done: hold no transaction while Stripe is called
    queued = retry_all(request.app.state.engine, now())
    outcome = "nothing to retry" if queued == 0 else _run_sync(request)
    retried = f"{queued} invoice{'s' if queued != 1 else ''}"
    query = urlencode({"retried": retried, "outcome": outcome})
    return RedirectResponse(f"/finance/stripe?{query}", status_code=303)


def _run_sync(request: Request) -> str:
    """Run the Stripe sync job now when it is on and free; what it did, in words."""
    engine, settings = request.app.state.engine, request.app.state.settings
    if not SYNC_STRIPE.enabled(settings):
        return "queued; Stripe sync is off (BILLING_STRIPE_API_KEY is not set)"
    context = JobContext(engine=engine, settings=settings, catalog=request.app.state.catalog)
    report = runner.run_if_free(SYNC_STRIPE, context)
    return "queued; a sync running elsewhere will take it" if report is None else str(report)
