"""Backtests of tier-file changes: closed periods' stored usage re-priced under an old and a
new catalogue, exactly as the close priced it (docs/pricing-changes.md)."""
