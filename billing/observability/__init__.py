"""Metrics, structured logs with request ids, and the HTTP guards (size limits, rate limits)."""
