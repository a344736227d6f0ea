"""Customers and their billing periods."""
