"""`billing keys`: create (printed once), list, revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from billing.auth import service as auth_service
from billing.auth.models import Role
from billing.cli.common import open_session

app = typer.Typer(help="API keys: create (printed once), list, revoke.")


@app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="admin, finance, ingest or customer")],
    customer: Annotated[str | None, typer.Option(help="the customer a customer key is for")] = None,
    name: Annotated[str, typer.Option(help="a label, e.g. who uses it")] = "",
) -> None:
    """Create an API key and print it once; only its digest is stored."""
    with open_session() as session:
        key, row = auth_service.create_key(
            connection=session.connection(), role=role, customer_id=customer, name=name
        )
    typer.echo(key)
    typer.echo(f"({row.role} key {row.prefix}…: shown once, store it now)", err=True)


@app.command("list")
def keys_list() -> None:
    """List keys by prefix (keys themselves are never stored)."""
    with open_session() as session:
        for row in auth_service.list_keys(connection=session.connection()):
            state = "revoked" if row.revoked_at else "active"
            owner = f" customer={row.customer_id}" if row.customer_id else ""
            typer.echo(f"{row.id}\t{row.prefix}…\t{row.role}{owner}\t{state}\t{row.name}")


@app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="key id or prefix")]) -> None:
    """Revoke a key at once."""
    with open_session() as session:
        row = auth_service.revoke_key(connection=session.connection(), prefix_or_id=key)
    typer.echo(f"revoked {row.prefix}…")
