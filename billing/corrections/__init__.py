"""Corrections of issued invoices: voiding an unpaid one, and credit notes (docs/invoicing.md).

They span domains (an invoice, the credit ledger, a commitment the invoice sold), so they
live above them; the invoice and credit-note records themselves belong to invoicing.
"""
