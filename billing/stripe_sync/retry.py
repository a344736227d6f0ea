"""What every push to Stripe shares: which failures are tried again, how long to wait, the
idempotency key of one try, and reading our ids back from Stripe's metadata
(docs/stripe.md, "Exactly once")."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import stripe

from billing.stripe_sync.calls import last_call
from billing.stripe_sync.models import SyncStatus

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=2)
TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError)


def transient(error: Exception) -> bool:
    """Worth trying again later: a network error, a 429, a 409 (another request with the same
    idempotency key is still in progress) or a 5xx."""
    if isinstance(error, TRANSIENT):
        return True
    status = getattr(error, "http_status", None)
    return (
        isinstance(error, stripe.StripeError)
        and status is not None
        and (status == 409 or status >= 500)
    )


def key(name: str, attempt: int) -> str:
    """The idempotency key of one request of one try: `name` on the first, `name-<attempt>`
    after. Stripe keeps a key's first answer for 24 hours, a 500 included, so a try after a
    failure uses a new key, and it is safe because every object is first looked up by our
    metadata (docs/stripe.md, "Exactly once")."""
    return f"{name}-{attempt}" if attempt else name


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, ... up to 2 h, with up to 20 % jitter."""
    delay: dt.timedelta = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)
    jitter = dt.timedelta(
        microseconds=random.randrange(int(delay / dt.timedelta(microseconds=1)) // 5 + 1)
    )
    return delay + jitter  # jitter spreads retries, it is not a secret


def meta(obj: Any, name: str) -> str | None:
    """The metadata value `name` of a Stripe object (None when absent)."""
    metadata: Any = getattr(obj, "metadata", None)
    if not metadata:
        return None
    value = metadata.to_dict().get(name) if hasattr(metadata, "to_dict") else metadata.get(name)
    return None if value is None else str(value)


def describe(error: Exception) -> str:
    """A Stripe error as finance reads it on the row: its class, Stripe's message, and the
    call it answered ("... (POST /v1/invoices/in_1/finalize)") when one was sent."""
    text = f"{type(error).__name__}: {getattr(error, 'user_message', None) or error}"
    call = last_call()
    return text if call is None else f"{text} ({call})"


def failed_try(
    error: Exception, attempts: int, now: dt.datetime, status: SyncStatus | None = None
) -> tuple[str, dict[str, Any]]:
    """What a failed push does to its sync row (invoice or credit note), and which count of
    the run's report it adds to. With `status` (a mismatch, an amount Stripe cannot carry)
    the row ends there; a Stripe error is tried again later when transient, else it ends
    `sync_failed` with Stripe's message."""
    if status is None:
        message = describe(error)
        if transient(error):
            retry = {"next_attempt_at": now + backoff(attempts)}
            return "retrying", {"attempts": attempts, "last_error": message[:500], **retry}
        status = SyncStatus.SYNC_FAILED
    else:
        message = str(error)
    counter = "mismatched" if status == SyncStatus.MISMATCH else "failed"
    return counter, {"status": status, "attempts": attempts, "last_error": message[:500]}
