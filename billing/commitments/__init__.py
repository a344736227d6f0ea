"""Self-selected commitments and the prepaid-credit ledger (DESIGN.md §6)."""
