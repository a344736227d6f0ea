"""Which Stripe call a failure came from: the SDK's HTTP client, recording each request's
method and path as it is sent, so a sync row's last error can name the call that failed
("POST /v1/invoices/in_123/finalize") beside Stripe's message."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import stripe

_LAST_CALL: ContextVar[str | None] = ContextVar("stripe_last_call", default=None)


class RecordingClient(stripe.RequestsClient):
    """The SDK's default HTTP client (requests), noting each call before it is sent."""

    def request_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
        max_network_retries: int | None = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        _LAST_CALL.set(f"{method.upper()} {urlsplit(url).path}")
        return super().request_with_retries(
            method, url, headers, post_data, max_network_retries, _usage=_usage
        )


def last_call() -> str | None:
    """The method and path of the last Stripe request sent in this context, or None."""
    return _LAST_CALL.get()


def forget() -> None:
    """Start a new try: no call recorded yet."""
    _LAST_CALL.set(None)
