"""Every table, imported in one place so that metadata (and Alembic) sees them all."""

from billing.alerts.models import Alert, Outbox
from billing.auth.models import ApiKey
from billing.caps.models import SpendCap, SpendCapChange
from billing.customers.models import Customer
from billing.metering.models import Event, Usage

__all__ = ["Alert", "ApiKey", "Customer", "Event", "Outbox", "SpendCap", "SpendCapChange", "Usage"]
