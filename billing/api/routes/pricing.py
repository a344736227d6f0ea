"""Public pricing calculator: the catalogue in force and quotes. No key needed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from billing import quotes
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, QuoteRequest
from billing.catalog import Catalog
from billing.catalog.public import CatalogPublic, catalog_public
from billing.errors import InvalidDate, RateLimited
from billing.http.deps import CatalogDep
from billing.observability.metrics import RATE_LIMITED
from billing.parsing import parse_date
from billing.quotes import QuotePublic

router = APIRouter(prefix="/v1", tags=["pricing"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, object]] = {422: {"model": ErrorOut}}


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@router.get("/products", responses=ERRORS)
async def list_products(
    catalog: CatalogDep,
    at: Annotated[str | None, Query(description="date, YYYY-MM-DD (default today)")] = None,
) -> CatalogPublic:
    """The catalogue in force: products, units, models, tier tables, commitment brackets."""
    day = _today() if at is None else _query_date(at)
    return catalog_public(catalog, day)


async def rate_limited(request: Request) -> None:
    """BILLING_QUOTE_RATE_PER_MINUTE per client IP: the public endpoint is not a free CPU."""
    client = request.client.host if request.client else "unknown"
    wait = request.app.state.quote_limiter.allow(client)
    if wait:
        RATE_LIMITED.labels("/v1/quote").inc()
        raise RateLimited(f"too many quotes from {client}: try again in {wait} s", retry_after=wait)


@router.post(
    "/quote",
    responses={**ERRORS, 429: {"model": ErrorOut}},
    dependencies=[Depends(rate_limited)],
)
async def create_quote(body: QuoteRequest, catalog: CatalogDep) -> QuotePublic:
    """Price a month of usage, with optional caps, discount and commitment.

    Rate limited per client IP (BILLING_QUOTE_RATE_PER_MINUTE, 120 by default): over it,
    429 with Retry-After."""
    return answer_quote(body, catalog)


def answer_quote(body: QuoteRequest, catalog: Catalog, customer: str | None = None) -> QuotePublic:
    """The quote a request asks for, at list prices or with `customer`'s overrides."""
    at = body.at or _today()
    commitment = (body.commitment.credit, body.commitment.years) if body.commitment else None
    result = quotes.quote(
        catalog=catalog,
        usage=body.usage,
        at=at,
        discount_percent=body.discount_percent or Decimal(0),
        spend_caps=body.spend_caps,
        commitment=commitment,
        include_options=body.include_commitment_options,
        customer=customer,
    )
    return quotes.quote_public(result, catalog=catalog, at=at)


def _query_date(value: str) -> dt.date:
    try:
        return parse_date(value)
    except ValueError:
        raise InvalidDate(f"at must be a date like 2026-11-01, got {value!r}", field="at") from None
