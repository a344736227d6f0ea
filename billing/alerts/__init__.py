"""Usage alerts: thresholds of a cap and used-up free allowances, delivered through an outbox."""
