"""Finance reports (finance or admin keys): invoices (JSON or streamed CSV), revenue, caps hit.
They read from the read replica when one is configured and fresh (ReadSessionDep)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from billing.api.deps import StaffKey
from billing.api.schemas import ErrorOut
from billing.http.deps import CatalogDep, ReadEngineDep, ReadSessionDep
from billing.reports import service as reports
from billing.reports.public import (
    CapsReportPublic,
    InvoiceReportPublic,
    RevenuePublic,
    csv_lines,
    revenue_public,
)

router = APIRouter(prefix="/v1/reports", tags=["finance reports"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 422)}
MonthQuery = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]


@router.get(
    "/invoices",
    response_model=InvoiceReportPublic,
    responses={
        **ERRORS,
        200: {
            "description": "the invoices, as JSON or (format=csv) as CSV with a header line",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
def invoices_report(
    _: StaffKey,
    reads: ReadEngineDep,  # after the key: a refused caller never reaches the replica
    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}$")] = None,
    to: MonthQuery = None,
    status: Annotated[
        str | None,
        Query(description="finalized | payment_failed | paid | uncollectible | void"),
    ] = None,
    customer: str | None = None,
    sync_status: Annotated[
        str | None,
        Query(description="a state the sync_status column shows (not_synced, nothing_due too)"),
    ] = None,
    format: Literal["json", "csv"] = "json",  # the query parameter's name
) -> Any:
    """Invoices whose period starts in [from, to], oldest number first. CSV is streamed."""
    start, end = reports.months(from_, to)
    filters = reports.invoice_filter(start, end, status, customer, sync_status)
    rows = reports.stream_invoices(reads, filters)
    if format == "csv":
        name = f"invoices-{from_ or 'all'}-{to or 'all'}.csv"
        return StreamingResponse(
            csv_lines(rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return InvoiceReportPublic(invoices=list(rows))


@router.get("/revenue", responses=ERRORS)
def revenue_report(
    _: StaffKey,
    session: ReadSessionDep,
    catalog: CatalogDep,
    group_by: Literal["product", "customer", "month", "dimension"] = "product",
    from_: Annotated[str | None, Query(alias="from", pattern=r"^\d{4}-\d{2}$")] = None,
    to: MonthQuery = None,
    basis: Annotated[
        Literal["service", "issued"],
        Query(
            description="which month an invoice counts in: service, the month its billing "
            "period starts (default); issued, the month it was issued"
        ),
    ] = "service",
    product: Annotated[
        str | None, Query(max_length=64, description="group_by=dimension: the product")
    ] = None,
    dimension: Annotated[
        str | None,
        Query(max_length=40, description="group_by=dimension: one of the product's dimensions"),
    ] = None,
) -> RevenuePublic:
    """Billings: list price, discounts, commitments sold, credits applied and amount due,
    per group, from issued invoices (not void), dated by `basis`; the totals equal the sums
    over those invoices. Billings are what invoices charge, not cash collected."""
    start, end = reports.months(from_, to)
    if group_by == "dimension":
        chosen, name = reports.dimension_of(catalog, product, dimension)
        groups, total = reports.revenue_by_dimension(
            session.connection(), chosen, name, catalog.currency, start, end, basis
        )
    else:
        groups, total = reports.revenue(session.connection(), group_by, start, end, basis)
    return revenue_public(group_by, catalog.currency, groups, total, basis)


@router.get("/caps", responses=ERRORS)
def caps_report(_: StaffKey, session: ReadSessionDep) -> CapsReportPublic:
    """Customer x product pairs limited by their cap in the current period."""
    return CapsReportPublic(
        caps_hit=reports.caps_hit(session.connection(), dt.datetime.now(dt.UTC))
    )
