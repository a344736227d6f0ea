"""Fixtures of the page tests."""

import pytest

from tests.web.portal_data import seed


@pytest.fixture
def seeded(engine, catalog):
    """acme and globex with this period's usage and last period invoiced (portal_data.py);
    the moment it was seeded at."""
    return seed(engine, catalog)
