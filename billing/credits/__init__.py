"""Usage credit: the append-only ledger of a customer's balance, and drawing it on invoices."""
