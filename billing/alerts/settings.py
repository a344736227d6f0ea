"""A customer's alert settings: thresholds, the free-allowance alert, the webhook and its secret."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, update

from billing.alerts.signing import new_secret
from billing.alerts.webhooks import check_url
from billing.customers import service as customers_service
from billing.customers.models import Customer
from billing.customers.service import CustomerRow
from billing.db import table_of
from billing.errors import InvalidThreshold, NullNotAllowed, TooManyItems

MAX_THRESHOLDS = 10


def update_settings(
    *,
    connection: Connection,
    customer_id: str,
    changes: dict[str, Any],
    allow_private: bool,
) -> CustomerRow:
    """Apply the fields present in `changes`; a first webhook URL gets a signing secret.
    The customer as now stored."""
    customer = customers_service.get_customer(connection=connection, customer_id=customer_id)
    for name, what in (
        ("thresholds", "a list of percentages, [] for none"),
        ("free_allowance", "true or false"),
    ):
        if name in changes and changes[name] is None:
            raise NullNotAllowed(f"{name} cannot be null: send {what}, or leave it out", field=name)
    values: dict[str, Any] = {}
    if "thresholds" in changes:
        thresholds: list[Decimal] = changes["thresholds"]
        if len(thresholds) > MAX_THRESHOLDS:
            raise TooManyItems(f"at most {MAX_THRESHOLDS} thresholds", field="thresholds")
        for index, value in enumerate(thresholds):
            if not 0 < value <= 100:
                raise InvalidThreshold(
                    f"a threshold is a percentage of the cap above 0 and at most 100, "
                    f"got {value:f}",
                    field=f"thresholds.{index}",
                )
        values["alert_thresholds"] = ",".join(f"{t.normalize():f}" for t in sorted(set(thresholds)))
    if "free_allowance" in changes:
        values["alert_free_allowance"] = changes["free_allowance"]
    if "webhook_url" in changes:
        url = changes["webhook_url"]
        values["alert_webhook_url"] = None if url is None else check_url(url, allow_private)
        if url is not None and customer.webhook_secret is None:
            values["webhook_secret"] = new_secret()
    if changes.get("rotate_secret"):
        values["webhook_secret"] = new_secret()
    if not values:
        return customer
    table = table_of(Customer)
    connection.execute(update(table).where(table.c.id == customer_id).values(**values))
    return replace(customer, **values)
