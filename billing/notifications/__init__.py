"""Notifications: billing events (what changed money or access) written in the transaction
of the change, and delivered to webhook endpoints (docs/webhooks.md)."""
