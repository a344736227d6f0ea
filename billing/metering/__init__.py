"""Metering: events in, idempotently; running usage per customer, product and period."""
