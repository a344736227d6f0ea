"""Spend caps: per customer and product, enforced at ingestion (docs/spend-caps.md)."""
