"""Finance reports over finalized invoices (docs/finance.md): every figure sums from invoices."""
