"""Idempotency keys: a money-creating request sent twice creates one thing (docs/idempotency.md)."""
