"""Spend caps: per customer and product, enforced at ingestion (DESIGN.md §5)."""
