"""`billing commitments`: the options priced for a customer, start one, show them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from sqlalchemy import select

from billing.cli.common import TiersOption, fail, load_tiers, open_session, parse_field
from billing.customers import service as customers_service
from billing.db import table_of
from billing.money import format_amount
from billing.parsing import parse_amount

app = typer.Typer(help="Commitments: options, start, show.")


@app.command("options")
def commitments_options(
    customer: Annotated[str, typer.Argument(help="customer id")],
    usage: Annotated[
        str | None, typer.Option(help="monthly usage at list price, instead of the run rate")
    ] = None,
    tiers: TiersOption = None,
) -> None:
    """Every bracket priced for the customer's run rate; the largest saver marked."""
    from billing.commitments.projection import project
    from billing.pricing.commitments import commitment_options

    catalog = load_tiers(tiers)
    if catalog.schedule is None:
        raise fail("this catalogue offers no commitments (no discounts.toml)", 1)
    with open_session() as session:
        connection = session.connection()
        found = customers_service.get_customer(connection=connection, customer_id=customer)
        if usage is not None:
            monthly, basis = parse_field("usage", parse_amount, usage), "your --usage"
        else:
            projection = project(
                connection,
                catalog,
                customer,
                found.billing_anchor_day,
                dt.datetime.now(dt.UTC),
                found.created_at,
            )
            monthly = projection.monthly
            basis = f"{projection.basis.replace('_', ' ')} {', '.join(projection.periods)}"
    currency = catalog.currency
    typer.echo(f"{customer}: {format_amount(monthly, currency)} {currency} a month ({basis})")
    for option in commitment_options(catalog.schedule, monthly):
        q = option.quote
        mark = "  <- recommended" if option.recommended else ""
        credit, price = format_amount(q.credit, currency), format_amount(q.price_per_year, currency)
        typer.echo(
            f"  {q.years}y {credit:>12} credit {q.discount_percent.normalize():>3f}% off: "
            f"{price:>12} a year, saves {format_amount(q.saving, currency):>10} a year{mark}"
        )


@app.command("start")
def commitments_start(
    customer: Annotated[str, typer.Argument(help="customer id")],
    credit: Annotated[str, typer.Option(help="annual credit, e.g. 30000")],
    years: Annotated[int, typer.Option(help="term length in years")] = 1,
    tiers: TiersOption = None,
) -> None:
    """Start a commitment: invoice its first contract year and grant its credit."""
    from billing.commitments import service as commitments
    from billing.credits import ledger

    catalog = load_tiers(tiers)
    amount = parse_field("credit", parse_amount, credit)
    with open_session() as session:
        outcome = commitments.start(
            session.connection(), catalog, customer, amount, years, dt.datetime.now(dt.UTC)
        )
        left = ledger.balance(session.connection(), customer)
    for issued in outcome.invoices:
        typer.echo(f"invoice {issued.number}: {format_amount(issued.amount_due, catalog.currency)}")
    typer.echo(f"credit available now: {format_amount(left, catalog.currency)}")


@app.command("show")
def commitments_show(
    customer: Annotated[str, typer.Argument(help="customer id")],
    tiers: TiersOption = None,
) -> None:
    """The customer's commitments and credit ledger."""
    from billing.commitments.models import Commitment
    from billing.credits import ledger

    catalog = load_tiers(tiers)
    currency = catalog.currency
    with open_session() as session:
        connection = session.connection()
        customers_service.get_customer(connection=connection, customer_id=customer)
        table = table_of(Commitment)
        rows = list(
            connection.execute(
                select(table).where(table.c.customer_id == customer).order_by(table.c.created_at)
            )
        )
        entries = ledger.entries(connection, customer)
    if not rows:
        typer.echo(f"{customer}: no commitment")
    for row in rows:
        typer.echo(
            f"{row.id} {row.status}: {format_amount(row.credit, currency)} {currency} a year for "
            f"{row.years}y at {row.discount_percent.normalize():f}% off, "
            f"{row.starts_at.date()} to {row.ends_at.date()}, release {row.release}"
        )
    for entry in entries:
        amount = format_amount(entry.amount, currency)
        typer.echo(
            f"  {entry.created_at:%Y-%m-%d} {entry.kind:<13} {amount:>12}"
            f"  balance {format_amount(entry.balance_after, currency):>12}  {entry.note}"
        )
