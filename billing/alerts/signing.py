"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>" with the customer's secret.

The header reads  Billing-Signature: t=1795000000,v1=<hex digest>  (docs/spend-caps.md has
the receiver's side). The timestamp is signed too, so a captured request cannot be
replayed later than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "Billing-Signature"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret for a customer's webhook."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (Unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: int) -> bool:
    """Whether `header` signs `body` with `secret`, within the tolerance of `now`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
