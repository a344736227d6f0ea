"""Invoices: numbered per series without gaps, immutable once finalized (docs/invoicing.md)."""
