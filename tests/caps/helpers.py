"""Setting spend caps in service tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection

from billing.catalog import Catalog
from billing.metering import quota as quota_service


def set_cap(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    product: str,
    amount: Decimal | None,
    now: dt.datetime,
) -> quota_service.CapChange:
    """Set (None: remove) a customer's cap on a product at `now`, as the actor "test"."""
    return quota_service.set_cap(
        connection=connection,
        catalog=catalog,
        customer_id=customer_id,
        product=product,
        amount=amount,
        actor="test",
        now=now,
    )
