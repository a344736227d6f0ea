"""Every table, imported in one place so that metadata (and Alembic) sees them all."""

from billing.auth.models import ApiKey
from billing.customers.models import Customer
from billing.metering.models import Event, Usage

__all__ = ["ApiKey", "Customer", "Event", "Usage"]
