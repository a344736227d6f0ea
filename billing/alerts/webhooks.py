"""Whether a webhook URL may be saved: an http(s) URL whose host may be a webhook's.

Checked when a customer saves it (the API and the portal), without resolving the name:
saving never depends on DNS. Refused: other schemes, credentials in the URL, a bad port,
an address literal that `billing.webhooks_out.address` refuses, and `localhost` names
(unless BILLING_WEBHOOK_ALLOW_PRIVATE is on). At every delivery the name is resolved once and
each address it resolves to is checked by the same rules (`billing.webhooks_out.send`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from billing.errors import WebhookUrlNotAllowed
from billing.webhooks_out.address import address_problem, parse

MAX_URL = 2000


def check_url(url: str, allow_private: bool) -> str:
    """The URL, or WebhookUrlNotAllowed(field="webhook_url") saying why it cannot be used."""

    def refuse(why: str) -> WebhookUrlNotAllowed:
        return WebhookUrlNotAllowed(f"webhook_url: {why}", field="webhook_url")

    if len(url) > MAX_URL:
        raise refuse(f"at most {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise refuse(f"must be an http:// or https:// URL, not {parts.scheme or 'no'} scheme")
    if parts.username or parts.password:
        raise refuse("must not carry credentials; the signature authenticates us")
    host = parts.hostname
    if not host:
        raise refuse("has no host")
    try:
        problem = address_problem(parse(host), allow_private=allow_private)
    except ValueError:  # a name, not an address literal
        if not allow_private and (host == "localhost" or host.endswith(".localhost")):
            problem = f"{host} is a loopback name"
        else:
            problem = None
    if problem:
        raise refuse(problem)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise refuse(f"bad port: {error}") from None
    return url
