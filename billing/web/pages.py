"""Public pages. `/pricing` works without JavaScript (a GET form priced on the server)
and, with it, re-prices live through `POST /v1/quote` as the visitor types or drags."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic_core import PydanticCustomError

from billing import quotes
from billing.catalog.public import catalog_public
from billing.errors import BillingError
from billing.http.deps import CatalogDep
from billing.parsing import parse_quantity
from billing.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    """Where `make run`'s address lands: the pricing page, the API docs, and how to open the
    portal and the finance pages."""
    context = {"products": len(catalog.products), "currency": catalog.currency, "home": "/"}
    return render(request, "home.html", context, private=False)


def not_found_page(request: Request) -> HTMLResponse:
    """The HTML 404 of a page path (the API's paths answer the JSON error body)."""
    context = {
        "title": "Page not found",
        "message": f"There is no page at {request.url.path}. Start from the home page.",
        "home": "/",
    }
    return render(request, "message.html", context, status=404, private=False)


@router.get("/pricing", response_class=HTMLResponse)
def pricing_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    """The pricing calculator; query parameters `<product>=<quantity>` price on the server."""
    today = dt.datetime.now(dt.UTC).date()
    products = catalog_public(catalog, today).model_dump(mode="json", by_alias=True)
    usage: dict[str, Decimal] = {}
    errors: dict[str, str] = {}
    for product in products["products"]:
        raw = request.query_params.get(product["key"], "").strip().replace(",", "").replace("_", "")
        if not raw:
            continue
        try:
            usage[product["key"]] = parse_quantity(raw)
        except PydanticCustomError as error:
            errors[product["key"]] = error.message()
        except ArithmeticError:
            errors[product["key"]] = "quantity must be a number"
    quote: dict[str, Any] | None = None
    if usage and not errors:
        try:
            result = quotes.quote(
                catalog=catalog, usage=usage, at=today, include_options=catalog.schedule is not None
            )
            shown = quotes.quote_public(result, catalog=catalog, at=today)
            quote = shown.model_dump(mode="json", by_alias=True)
        except BillingError as error:
            errors[(error.field or "").rsplit(".", 1)[-1]] = error.message
    context = {
        "catalog": products,
        "values": {key: request.query_params.get(key, "") for key in catalog.products},
        "errors": errors,
        "quote": quote,
    }
    return render(request, "pricing.html", context, private=False)
