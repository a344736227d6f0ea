"""Public pages. `/pricing` is priced on the server from its query string, the one place
its state lives (`?<product>=<quantity>&cap.<product>=<amount>`): it works without
JavaScript (a GET form), and with it the page re-renders from the same URL as the visitor
types or drags, so a link always reopens the quote it shows (docs/pricing-api.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic_core import PydanticCustomError

from billing import quotes
from billing.catalog import Catalog
from billing.catalog.public import catalog_public
from billing.errors import BillingError
from billing.http.deps import CatalogDep
from billing.money import ZERO, billing_digits, format_exact, fraction_digits, group_quantity
from billing.observability.metrics import RATE_LIMITED
from billing.parsing import MAX_AMOUNT, MAX_DECIMALS, MAX_QUANTITY, parse_amount, parse_quantity
from billing.pricing import CommitmentOption, Quote
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


CAP_PREFIX = "cap."
DEFAULTS_RULE = (
    "each product starts at the top of its first paid tier: its free allowance plus one "
    "whole paid tier"
)


@router.get("/pricing", response_class=HTMLResponse)
def pricing_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    """The pricing calculator, priced on the server from the query string:
    `<product>=<quantity>` and `cap.<product>=<amount>` (the catalogue's currency). With no
    quantity at all, every product is priced at its starting volume (`DEFAULTS_RULE`). Bad
    input is explained next to its field, and the other products are still priced.

    Each answer is a quote, so it draws on the client address's quote budget, shared with
    `POST /v1/quote` (BILLING_QUOTE_RATE_PER_MINUTE): over it, the page keeps the inputs,
    prices nothing, says when to try again, and answers 429 with Retry-After."""
    today = dt.datetime.now(dt.UTC).date()
    shown = catalog_public(catalog, today).model_dump(mode="json", by_alias=True)
    form = read_pricing_form(request.query_params, catalog, today)
    client = request.client.host if request.client else "unknown"
    wait = request.app.state.quote_limiter.allow(client)
    if wait:
        RATE_LIMITED.labels("/pricing").inc()
        result, problem = None, f"Too many quotes from your address. Try again in {wait} s."
    else:
        result, problem = _price(form, catalog, today)
    quote = (
        None
        if result is None
        else quotes.quote_public(result, catalog=catalog, at=today).model_dump(
            mode="json", by_alias=True
        )
    )
    names = {p["key"]: p["name"] for p in shown["products"]}
    lines = {line["product"]: line for line in quote["lines"]} if quote else {}
    context = {
        "catalog": shown,
        "form": form,
        "cap_prefix": CAP_PREFIX,
        "defaults_rule": DEFAULTS_RULE,
        "quote": quote,
        "lines": lines,
        "left_out": [names[key] for key in names if form.left_out(key)],
        "uncapped": [names[key] for key in names if form.uncapped(key) and key in lines],
        "problem": problem,
        "options": _options_view(result, quote, catalog.currency) if result and quote else [],
        "share": f"/pricing?{form.query()}",
    }
    response = render(request, "pricing.html", context, status=429 if wait else 200, private=False)
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@dataclass
class PricingForm:
    """The calculator's inputs as the query string gave them.

    `texts` maps each input's name (`<product>` or `cap.<product>`) to the text shown in
    it; `usage` and `caps` hold what parsed (quantities in units, caps in major units of
    the catalogue's currency); `errors` maps an input's name to a sentence for a person.
    `defaults` is True when the query named no quantity and the starting volumes are shown.
    """

    products: tuple[str, ...]
    texts: dict[str, str]
    usage: dict[str, Decimal]
    caps: dict[str, Decimal]
    errors: dict[str, str] = field(default_factory=dict)
    defaults: bool = False

    def left_out(self, key: str) -> bool:
        """Whether a product's quantity is bad, so the total leaves the product out."""
        return key in self.errors

    def uncapped(self, key: str) -> bool:
        """Whether a product's cap is bad, so the product is priced without a cap."""
        return f"{CAP_PREFIX}{key}" in self.errors

    def query(self) -> str:
        """The query string that reopens this form: every quantity (an empty one too, so
        the starting volumes do not come back) and every cap that is set, cleaned of
        grouping characters."""
        pairs = [(key, clean_number(self.texts[key])) for key in self.products]
        for key in self.products:
            cap = clean_number(self.texts[f"{CAP_PREFIX}{key}"])
            if cap:
                pairs.append((f"{CAP_PREFIX}{key}", cap))
        return urlencode(pairs)


def clean_number(text: str) -> str:
    """A typed number without what people put between digits: commas, underscores, spaces."""
    return "".join(ch for ch in text if ch not in ",_" and not ch.isspace())


def read_pricing_form(params: Mapping[str, str], catalog: Catalog, at: dt.date) -> PricingForm:
    """Read `<product>=<quantity>` and `cap.<product>=<amount>` for every product in force
    on `at`; unknown parameters are ignored. Messages name no API field: they say what to
    type, next to the input at fault."""
    starting = quotes.starting_usage(catalog, at)
    products = tuple(starting)
    defaults = not any(key in params for key in products)
    form = PricingForm(products=products, texts={}, usage={}, caps={}, defaults=defaults)
    for key in products:
        unit = catalog.products[key].unit
        example = group_quantity(starting[key])
        if defaults:
            form.texts[key] = example
            form.usage[key] = starting[key]
        else:
            text = params.get(key, "").strip()
            form.texts[key] = text
            if clean_number(text):
                _take(form, key, read_quantity(clean_number(text), unit, example))
        cap_name = f"{CAP_PREFIX}{key}"
        cap_text = params.get(cap_name, "").strip()
        form.texts[cap_name] = cap_text
        if clean_number(cap_text):
            _take(form, cap_name, read_cap(clean_number(cap_text), catalog.currency))
    return form


def _take(form: PricingForm, name: str, read: Decimal | str) -> None:
    if isinstance(read, str):
        form.errors[name] = read
    elif name.startswith(CAP_PREFIX):
        form.caps[name.removeprefix(CAP_PREFIX)] = read
    else:
        form.usage[name] = read


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else f"{unit}s"


def _number(text: str) -> Decimal | None:
    """The typed text as a finite Decimal, or None (for messages only: never priced)."""
    if len(text) > 64:
        return None
    try:
        number = Decimal(text)
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def read_quantity(text: str, unit: str, example: str) -> Decimal | str:
    """A monthly volume (units) as the API reads it, or a sentence saying what to type."""
    try:
        return parse_quantity(text)
    except PydanticCustomError:
        pass
    units = _plural(unit)
    number = _number(text)
    if number is None:
        return f"Enter a number of {units}, like {example}"
    if number < 0:
        return f"A volume cannot be negative: enter 0 or more {units}, like {example}"
    if number > MAX_QUANTITY:
        return f"The calculator prices at most {group_quantity(MAX_QUANTITY)} {units} a month"
    return f"Enter a number of {units} with at most {MAX_DECIMALS} decimal places, like {example}"


def read_cap(text: str, currency: str) -> Decimal | str:
    """A spend cap (major units of `currency`), or a sentence saying what to type."""
    digits = billing_digits(currency)
    example = "50" if digits == 0 else f"50 or 50.{'0' * digits}"
    plain = f"A spend cap is an amount in {currency}, like {example}"
    try:
        amount = parse_amount(text)
    except PydanticCustomError:
        number = _number(text)
        if number is None:
            return plain
        if number < 0:
            return f"A spend cap cannot be negative. {plain}"
        if number > MAX_AMOUNT:
            return f"A spend cap is at most {group_quantity(MAX_AMOUNT)} {currency}"
        amount = number
    if fraction_digits(amount) > digits:
        if digits == 0:
            return f"A spend cap in {currency} is a whole amount, like 50"
        like = f"50.{'25'.ljust(digits, '0')}"
        return f"A spend cap in {currency} has at most {digits} decimal places, like {like}"
    return amount


def _price(form: PricingForm, catalog: Catalog, at: dt.date) -> tuple[Quote | None, str]:
    """Price every product whose quantity reads (without its cap when the cap does not); a
    product the quote service refuses is left out with a message next to it and the rest
    priced again. (None, a sentence) when nothing can be priced."""
    usage = {k: v for k, v in form.usage.items() if not form.left_out(k)}
    while True:
        caps = {k: v for k, v in form.caps.items() if k in usage}
        try:
            result = quotes.quote(
                catalog=catalog,
                usage=usage,
                at=at,
                spend_caps=caps,
                include_options=catalog.schedule is not None,
            )
        except BillingError as error:
            path = error.field or ""
            key = path.rsplit(".", 1)[-1]
            if key not in usage:
                return None, "This quote could not be priced. Check the volumes and caps."
            capped = path.startswith("spend_caps.")
            name = f"{CAP_PREFIX}{key}" if capped else key
            form.errors[name] = (
                f"This spend cap could not be applied. It is an amount in {catalog.currency}."
                if capped
                else "This volume could not be priced. Enter a number of "
                f"{_plural(catalog.products[key].unit)}."
            )
            del usage[key]
            continue
        return result, ""


def _options_view(result: Quote, quote: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    """The commitment table's rows: each option's public figures, and what to say of it:
    `verdict` is best | saves | even | costs | outgrown; `amount` the saving (or the extra
    cost) a year; `next` the bracket that saves more, for an outgrown one."""
    options: tuple[CommitmentOption, ...] = result.commitment_options or ()
    shown = quote["commitment_options"] or []
    rows: list[dict[str, Any]] = []
    for index, (option, public) in enumerate(zip(options, shown, strict=True)):
        saving = option.quote.saving
        if option.recommended:
            verdict = "best"
        elif option.outgrown:
            verdict = "outgrown"
        elif saving > ZERO:
            verdict = "saves"
        elif saving == ZERO:
            verdict = "even"
        else:
            verdict = "costs"
        following = shown[index + 1] if index + 1 < len(shown) else None
        rows.append(
            {
                **public,
                "verdict": verdict,
                "amount": format_exact(abs(saving), currency),
                "next": following if following and following["years"] == public["years"] else None,
            }
        )
    return rows
