"""Usage-based billing and pricing engine."""

__version__ = "0.1.0"
