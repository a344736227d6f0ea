"""Alert webhook signatures: the same scheme as every webhook (billing/notifications/signing.py,
docs/webhooks.md), with the customer's alert signing secret."""

from __future__ import annotations

from billing.notifications.signing import HEADER, TOLERANCE_SECONDS, new_secret, signature, verify

__all__ = ["HEADER", "TOLERANCE_SECONDS", "new_secret", "signature", "verify"]
