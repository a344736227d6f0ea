"""`billing quote`: price a month of usage, exactly as POST /v1/quote does."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any

import typer

from billing import quotes
from billing.cli.common import TiersOption, fail, load_tiers, parse_field, show_number
from billing.errors import BillingError
from billing.parsing import parse_amount, parse_date, parse_percent, parse_quantity, parse_years


def quote(
    usage: Annotated[list[str], typer.Argument(help="PRODUCT=QUANTITY pairs", metavar="USAGE...")],
    discount: Annotated[str | None, typer.Option(help="percentage discount, e.g. 20")] = None,
    cap: Annotated[list[str] | None, typer.Option(help="PRODUCT=AMOUNT spend cap")] = None,
    credit: Annotated[str | None, typer.Option(help="annual commitment credit")] = None,
    years: Annotated[int | None, typer.Option(help="commitment term in years")] = None,
    tiers: TiersOption = None,
    at: Annotated[str | None, typer.Option(help="price date YYYY-MM-DD (default today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    options: Annotated[bool, typer.Option("--options", help="price every bracket")] = False,
    customer: Annotated[
        str | None,
        typer.Option(help="price at this customer's overrides (overrides/<customer>.toml)"),
    ] = None,
) -> None:
    """Price a month of usage, exactly as POST /v1/quote does (with --customer, as
    POST /v1/customers/{id}/quote does)."""
    catalog = load_tiers(tiers)
    try:
        parsed_usage = _pairs(usage, "usage", parse_quantity)
        caps = _pairs(cap or [], "spend_caps", parse_amount)
        percent = (
            parse_field("discount_percent", parse_percent, discount) if discount else Decimal(0)
        )
        day = parse_field("at", parse_date, at) if at else dt.datetime.now(dt.UTC).date()
        commitment = None
        if (credit is None) != (years is None):
            raise fail("--credit and --years go together")
        if credit is not None and years is not None:
            commitment = (
                parse_field("commitment.credit", parse_amount, credit),
                parse_field("commitment.years", parse_years, years),
            )
        result = quotes.quote(
            catalog=catalog,
            usage=parsed_usage,
            at=day,
            discount_percent=percent,
            spend_caps=caps,
            commitment=commitment,
            include_options=options,
            customer=customer,
        )
    except BillingError as error:
        raise fail(f"{error.field}: {error.message}" if error.field else error.message) from None
    document = quotes.quote_public(result, catalog=catalog, at=day).model_dump(
        mode="json", by_alias=True
    )
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(render_quote(document))


def _pairs(items: list[str], name: str, parse: Any) -> dict[str, Decimal]:
    parsed: dict[str, Decimal] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"{name}: expected PRODUCT=VALUE, got {item!r}")
        if key.strip() in parsed:
            raise fail(f"{name}.{key.strip()}: given twice")
        parsed[key.strip()] = parse_field(
            f"{name}.{key.strip()}", parse, value.strip().replace("_", "")
        )
    return parsed


def render_quote(q: dict[str, Any]) -> str:
    """A quote as a readable text table."""
    n = show_number
    cur = q["currency"]
    out = [f"Quote at {q['at']} ({cur})", ""]
    for line in q["lines"]:
        capped = f"  capped at {n(line['billable_quantity'])}" if line["capped"] else ""
        out.append(f"{line['name']}: {n(line['quantity'])} {line['unit']}s{capped}")
        for t in line["tiers"]:
            span = f"{n(t['from'])} – {n(t['up_to'])}"
            fee = f" + {t['flat_fee']}" if Decimal(t["flat_fee"]) else ""
            out.append(
                f"  {span:<28} {n(t['quantity']):>16} × {t['unit_price']:<14}{fee} "
                f"= {t['amount']:>14}"
            )
        out.append(
            f"  subtotal {line['subtotal']}  discount {line['discount']}  total {line['total']}"
        )
        out.append("")
    out.append(f"Subtotal {q['subtotal']:>14} {cur}")
    out.append(f"Discount {q['discount']:>14} {cur}")
    out.append(f"Total    {q['total']:>14} {cur}")
    c = q.get("commitment")
    if c:
        out += [
            "",
            f"Commitment: {c['credit']} {cur} a year for {c['years']} year(s), "
            f"{c['discount_percent']}% off",
            f"  price per year {c['price_per_year']}, monthly credit {c['monthly_credit']}, "
            f"monthly overage {c['monthly_overage']}",
            f"  a year paying as you go {c['annual_cost_without_commitment']}, "
            f"committed {c['annual_cost_with_commitment']}, saving {c['saving']}",
        ]
    for o in q.get("commitment_options") or []:
        mark = "  ← recommended" if o["recommended"] else ""
        out.append(
            f"  {o['years']} yr from {o['bracket']['min_credit']:>10} {o['discount_percent']:>3}% "
            f"credit {o['credit']:>12} saves {o['saving']:>12} a year{mark}"
        )
    return "\n".join(out)
