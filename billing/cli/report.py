"""`billing report`: finance reports, invoices and revenue, as a table, CSV or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from billing.cli.common import (
    TiersOption,
    fail,
    load_tiers,
    migrated_engine,
    open_session,
    print_rows,
)
from billing.errors import BillingError
from billing.money import format_amount

app = typer.Typer(help="Finance reports: invoices and revenue.")

FromOption = Annotated[str | None, typer.Option("--from", help="first month, YYYY-MM")]
ToOption = Annotated[str | None, typer.Option("--to", help="last month, YYYY-MM")]
FormatOption = Annotated[str, typer.Option("--format", help="table | csv | json")]


@app.command("invoices")
def report_invoices(
    from_: FromOption = None, to: ToOption = None, form: FormatOption = "table"
) -> None:
    """Invoices whose period starts between --from and --to."""
    from billing.reports import service as reports
    from billing.reports.public import COLUMNS

    engine = migrated_engine()
    try:
        try:
            start, end = reports.months(from_, to)
        except BillingError as error:
            raise fail(error.message) from None
        found = reports.stream_invoices(engine, reports.InvoiceFilter(start, end))
        rows = [row.model_dump() for row in found]
    finally:
        engine.dispose()
    columns = (
        "number",
        "customer",
        "kind",
        "status",
        "period_start",
        "subtotal",
        "discount_total",
        "credits_applied",
        "amount_due",
        "sync_status",
    )
    shown = columns if form == "table" else COLUMNS
    print_rows(rows, shown, form, "Invoices")


@app.command("revenue")
def report_revenue(
    group_by: Annotated[
        str,
        typer.Option(help="product | customer | month | dimension (with --product, --dimension)"),
    ] = "product",
    from_: FromOption = None,
    to: ToOption = None,
    basis: Annotated[
        str,
        typer.Option(
            help="service: an invoice counts in the month its billing period starts; "
            "issued: in the month it was issued"
        ),
    ] = "service",
    form: FormatOption = "table",
    tiers: TiersOption = None,
    product: Annotated[str | None, typer.Option(help="--group-by dimension: the product")] = None,
    dimension: Annotated[
        str | None, typer.Option(help="--group-by dimension: one of the product's dimensions")
    ] = None,
) -> None:
    """Billings (what issued invoices charge, not cash collected; void ones left out),
    grouped, with credit notes; the last row is the total. By dimension: one product's
    billings by the value of one of its dimensions (docs/finance.md, "By dimension")."""
    from billing.reports import service as reports

    if group_by not in ("product", "customer", "month", "dimension"):
        raise fail(f"--group-by: product, customer, month or dimension, not {group_by!r}")
    if basis not in ("service", "issued"):
        raise fail(f"--basis: service or issued, not {basis!r}")
    catalog = load_tiers(tiers)
    currency = catalog.currency
    with open_session() as session:
        try:
            start, end = reports.months(from_, to)
            if group_by == "dimension":
                chosen, name = reports.dimension_of(catalog, product, dimension)
                groups, total = reports.revenue_by_dimension(
                    session.connection(), chosen, name, currency, start, end, basis
                )
            else:
                groups, total = reports.revenue(session.connection(), group_by, start, end, basis)
        except BillingError as error:
            raise fail(error.message) from None

    def row(key: str, item: reports.Revenue) -> dict[str, str]:
        return {
            group_by: key,
            "list": format_amount(item.list_amount, currency),
            "discounts": format_amount(item.discounts, currency),
            "adjustments": format_amount(item.adjustments, currency),
            "commitments": format_amount(item.commitments, currency),
            "credits_applied": format_amount(item.credits_applied, currency),
            "amount_due": format_amount(item.amount_due, currency),
            "credited": format_amount(item.credited, currency),
            "net": format_amount(item.net, currency),
        }

    rows = [row(key, item) for key, item in groups.items()] + [row("TOTAL", total)]
    columns = (
        group_by,
        "list",
        "discounts",
        "adjustments",
        "commitments",
        "credits_applied",
        "amount_due",
        "credited",
        "net",
    )
    print_rows(rows, columns, form, f"Revenue by {group_by} ({currency})")
