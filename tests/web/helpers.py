"""Signing a TestClient in to the portal or the finance pages, as a person would: a link,
its page, its button."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billing.web import signin

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_link(
    engine: Engine,
    customer_id: str | None,
    *,
    ttl: dt.timedelta = dt.timedelta(minutes=15),
    now: dt.datetime | None = None,
) -> str:
    """A sign-in token, made as `billing portal-link` makes it."""
    at = now or dt.datetime.now(dt.UTC)
    kind = signin.CUSTOMER if customer_id else signin.FINANCE
    with engine.begin() as connection:
        secret = signin.load_secret(connection, None, at)
        token, _ = signin.create_link(
            connection, secret, kind=kind, customer_id=customer_id, ttl=ttl, now=at
        )
    return token


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def use_link(client: TestClient, token: str, area: str = "portal"):
    """Open the link's page and press Sign in; the answer to the press."""
    page = client.get(f"/{area}/signin", params={"token": token})
    assert page.status_code == 200, page.text
    return client.post(
        f"/{area}/signin",
        data={"csrf_token": csrf_of(page.text), "token": token},
        follow_redirects=False,
    )


def sign_in(client: TestClient, engine: Engine, customer_id: str | None) -> str:
    """Sign `client` in (a customer, or finance with None); the session's CSRF token."""
    area = "portal" if customer_id else "finance"
    answer = use_link(client, make_link(engine, customer_id), area)
    assert answer.status_code == 303, answer.text
    home = client.get("/portal/caps" if customer_id else "/finance/stripe")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)
