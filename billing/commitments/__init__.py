"""Self-selected commitments and the prepaid-credit ledger (docs/discounts.md)."""
