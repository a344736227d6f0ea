"""Stripe sync: finalized invoices pushed to Stripe exactly once, and Stripe's answers back."""
