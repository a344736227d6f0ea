"""`billing caps`: set, remove and show spend caps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from billing.cli.common import TiersOption, load_tiers, open_session, parse_field
from billing.money import format_amount, group_quantity
from billing.parsing import parse_amount

app = typer.Typer(help="Spend caps: set, remove, show.")


@app.command("set")
def caps_set(
    customer: Annotated[str, typer.Argument(help="customer id")],
    product: Annotated[str, typer.Argument(help="product key")],
    amount: Annotated[str, typer.Argument(help='the cap, e.g. 250.00; "none" removes it')],
    tiers: TiersOption = None,
) -> None:
    """Set or remove a spend cap (as an admin would); prints what it does this period."""
    from billing.metering import quota as quota_service

    catalog = load_tiers(tiers)
    value = None if amount.lower() == "none" else parse_field("amount", parse_amount, amount)
    with open_session() as session:
        change = quota_service.set_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id=customer,
            product=product,
            amount=value,
            actor="cli",
            now=dt.datetime.now(dt.UTC),
        )
    typer.echo(change.effect)


@app.command("show")
def caps_show(
    customer: Annotated[str, typer.Argument(help="customer id")],
    tiers: TiersOption = None,
) -> None:
    """Each product's cap, limit, accepted quantity and status this period."""
    from billing.metering import quota as quota_service

    catalog = load_tiers(tiers)
    with open_session() as session:
        views = quota_service.quotas(
            session.connection(), catalog, customer, dt.datetime.now(dt.UTC)
        )
    typer.echo(f"{customer}, period {views[0].period.label} ({catalog.currency})")
    for view in views:
        cap = "-" if view.cap is None else format_amount(view.cap, catalog.currency)
        limit = "-" if view.limit_quantity is None else group_quantity(view.limit_quantity)
        accrued = format_amount(view.accrued, catalog.currency)
        typer.echo(
            f"  {view.product:<20} cap {cap:>10}  limit {limit:>16}  "
            f"accepted {view.accepted:>16,f}  accrued {accrued:>10}  {view.status}"
        )
