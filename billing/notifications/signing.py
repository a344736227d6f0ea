"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>" with a signing secret.

The header reads  Billing-Signature: t=1795000000,v1=<hex digest>  and, while a rotated
secret overlaps the new one, carries one v1 per secret (the newest first), as Stripe does:
a receiver accepts the request when any v1 matches a secret it holds (docs/webhooks.md).
The timestamp is signed too, so a captured request cannot be replayed later than the
receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

HEADER = "Billing-Signature"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret ("whsec_" and 43 URL-safe characters)."""
    return "whsec_" + secrets.token_urlsafe(32)


def digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (Unix seconds), signed with one
    secret or with each of several (the newest first)."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    return f"t={timestamp}," + ",".join(f"v1={digest(key, timestamp, body)}" for key in keys)


def verify(secret: str, header: str, body: bytes, now: int) -> bool:
    """Whether `header` signs `body` with `secret` (any of its v1 values), within the
    tolerance of `now` (Unix seconds)."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in parts if name == "t"]
    try:
        timestamp = int(stamps[0])
    except (IndexError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, value) for name, value in parts if name == "v1")
