"""Where a webhook may point: http(s) URLs to routable hosts.

Refused always: other schemes, credentials in the URL, and addresses no webhook should
reach (unspecified, link-local such as cloud metadata at 169.254.169.254, multicast,
reserved). Refused unless BILLING_WEBHOOK_ALLOW_PRIVATE is on: loopback and private
networks. Hostnames are checked again at delivery, on the addresses they resolve to.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from billing.errors import WebhookUrlNotAllowed

MAX_URL = 2000


def _address_problem(address: str, allow_private: bool) -> str | None:
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified or ip.is_link_local or ip.is_multicast or ip.is_reserved:
        return f"{address} is not a routable address"
    if not allow_private and (ip.is_loopback or ip.is_private):
        return f"{address} is a loopback or private address"
    return None


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
        problem = _address_problem(host, allow_private)
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


def resolved_problem(url: str, allow_private: bool) -> str | None:
    """At delivery: why the URL's host resolves somewhere it must not go (None if fine)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as error:
        return f"cannot resolve {host}: {error}"
    for info in infos:
        problem = _address_problem(str(info[4][0]), allow_private)
        if problem:
            return problem
    return None
