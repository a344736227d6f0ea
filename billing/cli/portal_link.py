"""`billing portal-link`: a single-use sign-in link to a customer's portal or to finance."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer

from billing.cli.common import fail, open_session
from billing.settings import get_settings


def _duration(text: str) -> dt.timedelta:
    """ "90s", "15m", "2h", "1d" -> a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if match is None:
        raise fail(f"--ttl: a duration like 90s, 15m, 2h or 1d, got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return dt.timedelta(**{unit: int(match.group(1))})


def portal_link(
    customer: Annotated[
        str | None, typer.Argument(help="the customer to sign in (omit with --finance)")
    ] = None,
    finance: Annotated[
        bool, typer.Option("--finance", help="a link to the finance pages instead")
    ] = False,
    ttl: Annotated[
        str | None, typer.Option(help="how long the link works: 90s, 15m, 2h, 1d (default 15m)")
    ] = None,
) -> None:
    """Print a single-use sign-in link to a customer's portal (or to the finance pages).

    The link's host is BILLING_PUBLIC_URL. It works once, until it expires; the session it
    opens lasts BILLING_SESSION_TTL.
    """
    from billing.web import signin

    if finance == (customer is not None):
        raise fail("give a CUSTOMER, or --finance for a finance link (not both)")
    settings = get_settings()
    lifetime = settings.portal_link_ttl if ttl is None else _duration(ttl)
    now = dt.datetime.now(dt.UTC)
    kind = signin.FINANCE if finance else signin.CUSTOMER
    with open_session() as session:
        connection = session.connection()
        secret = signin.load_secret(connection, settings.secret_key, now)
        token, expires = signin.create_link(
            connection, secret, kind=kind, customer_id=customer, ttl=lifetime, now=now
        )
    path = "finance" if finance else "portal"
    typer.echo(f"{settings.public_url.rstrip('/')}/{path}/signin?token={token}")
    typer.echo(f"(works once, until {expires:%Y-%m-%d %H:%M} UTC)", err=True)
