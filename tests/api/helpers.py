"""Calling the API through a TestClient as its users do: customers, events, spend caps."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import bearer
from tests.metering.helpers import event, recent

CAP = "/v1/customers/cust_1/spend-caps/product_analytics"


def make_customer(
    api: TestClient, keys: dict[str, str], customer_id: str = "cust_1", **extra: Any
) -> dict[str, Any]:
    """Create a customer with the admin key; its JSON."""
    body = {"id": customer_id, "name": "Customer One", **extra}
    response = api.post("/v1/customers", json=body, headers=bearer(keys["admin"]))
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def send(api: TestClient, key: str, events: list[dict[str, Any]], **kwargs: Any) -> Any:
    """POST a batch of events with `key`; the response."""
    return api.post("/v1/events", json={"events": events}, headers=bearer(key), **kwargs)


def ev(event_id: str, quantity: Any = 1, product: str = "product_analytics") -> dict[str, Any]:
    """An event a minute ago, in the current period (the API checks timestamps against the
    clock: the real one, or `mid_month`'s)."""
    return event(event_id, quantity, product, at=recent().isoformat())
