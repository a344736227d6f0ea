"""Finance reports over finalized invoices (DESIGN.md §8): every figure sums from invoices."""
