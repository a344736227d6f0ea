"""Invoices: numbered per series without gaps, immutable once finalized (DESIGN.md §7)."""
