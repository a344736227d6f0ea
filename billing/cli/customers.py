"""`billing customers`: create customers."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from billing.cli.common import fail, load_tiers, open_session, print_rows
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate

app = typer.Typer(help="Customers: create, list.")


@app.command("create")
def customers_create(
    customer_id: Annotated[str, typer.Argument(help="customer id")],
    name: Annotated[str, typer.Option(help="display name")],
    email: Annotated[str | None, typer.Option()] = None,
    anchor_day: Annotated[int, typer.Option(help="billing anchor day, 1-28")] = 1,
    billing_start: Annotated[
        str | None,
        typer.Option(
            help="where billing begins, ISO 8601 with an offset, not in the future "
            "(default: now); usage before it is refused"
        ),
    ] = None,
) -> None:
    """Create a customer."""
    catalog = load_tiers(None)
    try:
        data = CustomerCreate.model_validate(
            {
                "id": customer_id,
                "name": name,
                "email": email,
                "billing_anchor_day": anchor_day,
                "billing_start": billing_start,
            }
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise fail(f"{first['loc'][0]}: {first['msg']}") from None
    with open_session() as session:
        customers_service.create_customer(
            connection=session.connection(), data=data, currency=catalog.currency
        )
    typer.echo(f"created customer {customer_id}")


@app.command("list")
def customers_list(
    form: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Every customer, by id: name, email, billing anchor day, billing start, closed through."""
    rows: list[dict[str, str]] = []
    after: str | None = None
    with open_session() as session:
        while True:
            page = customers_service.list_customers(
                connection=session.connection(), limit=500, after=after
            )
            rows += [
                {
                    "id": c.id,
                    "name": c.name,
                    "email": c.email or "",
                    "anchor_day": str(c.billing_anchor_day),
                    "billing_start": "" if c.billing_start is None else c.billing_start.isoformat(),
                    "closed_through": ""
                    if c.closed_through is None
                    else c.closed_through.date().isoformat(),
                }
                for c in page
            ]
            if len(page) < 500:
                break
            after = page[-1].id
    columns = ("id", "name", "email", "anchor_day", "billing_start", "closed_through")
    print_rows(rows, columns, form, f"Customers ({len(rows)})")
