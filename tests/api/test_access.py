"""Access is structural: every operation in /openapi.json whose path names a customer or an
invoice refuses another customer's key (403) and answers the right caller (2xx). A new
route that forgets `CustomerAccess` or `InvoiceAccess` fails here, whoever writes it."""

from __future__ import annotations

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlmodel import Session

from billing.api.deps import customer_in_path, invoice_in_path
from billing.app import create_app
from billing.auth.models import Role
from billing.auth.service import create_key
from billing.settings import Settings
from tests.api.helpers import make_customer
from tests.conftest import TIERS, bearer


def _app_without_database():
    return create_app(Settings(tiers_dir=TIERS, database_url="sqlite://", scheduler=False))


def _scoped_operations() -> list[tuple[str, str]]:
    paths = _app_without_database().openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if "{customer_id}" in path or "{invoice_id}" in path
        for method in operations
    ]


OPERATIONS = _scoped_operations()

# A valid body for every operation that takes one: the walker must reach the route itself.
BODIES = {
    ("PUT", "/v1/customers/{customer_id}/spend-caps/{product}"): {"amount": "25.00"},
    ("PUT", "/v1/customers/{customer_id}/alert-settings"): {"thresholds": ["50", "90"]},
    ("POST", "/v1/customers/{customer_id}/commitment"): {"credit": "30000", "years": 1},
    ("POST", "/v1/customers/{customer_id}/quote"): {"usage": {"session_replay": "20000"}},
    ("POST", "/v1/customers/{customer_id}/commitment/topup"): {"credit": "1000"},
    ("PUT", "/v1/customers/{customer_id}/discount"): {"percent": "10", "reason": "non-profit"},
    ("POST", "/v1/invoices/{invoice_id}/void"): {"reason": "issued by mistake"},
    ("POST", "/v1/invoices/{invoice_id}/credit-notes"): {
        "reason": "goodwill",
        "lines": [{"line": 1, "amount": "100.00"}],
        "outcome": "reduce_due",
    },
}
COMMITMENT = {"credit": "30000", "years": 1}


def _api_routes() -> list[RouteContext]:
    """Every route of the API (the pages are not in the schema: they sign people in)."""
    routes = iter_route_contexts(_app_without_database().routes)
    return [r for r in routes if isinstance(r.original_route, APIRoute) and r.include_in_schema]


def _dependency_calls(dependant: Dependant) -> set[object]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _dependency_calls(sub)
    return found


def test_the_walker_sees_every_customer_and_invoice_route():
    methods_and_paths = set(OPERATIONS)
    assert ("GET", "/v1/customers/{customer_id}/invoices/upcoming") in methods_and_paths
    assert ("POST", "/v1/invoices/{invoice_id}/void") in methods_and_paths
    assert len(OPERATIONS) >= 19
    routes = _api_routes()
    assert len(routes) >= 30
    needs_body = {
        (method, route.path)
        for route in routes
        if route.body_field is not None
        for method in route.methods
    }
    scoped_with_body = needs_body & methods_and_paths
    assert scoped_with_body <= set(BODIES), f"add a valid body: {scoped_with_body - set(BODIES)}"


def test_every_customer_route_depends_on_customer_access_and_invoice_route_on_invoice_access():
    routes = _api_routes()
    assert len(routes) >= 30
    for route in routes:
        calls = _dependency_calls(route.dependant)
        if "{customer_id}" in route.path:
            assert customer_in_path in calls, f"{route.path} does not take CustomerAccess"
        if "{invoice_id}" in route.path:
            assert invoice_in_path in calls, f"{route.path} does not take InvoiceAccess"


START = ("POST", "/v1/customers/{customer_id}/commitment")


@pytest.fixture
def customer_keys(api, engine, keys):
    """cust_1 and cust_2, and a customer key of each beside the staff keys."""
    for customer in ("cust_1", "cust_2"):
        make_customer(api, keys, customer)
    made = dict(keys)
    with Session(engine) as session:
        for customer in ("cust_1", "cust_2"):
            made[customer], _ = create_key(
                connection=session.connection(), role=Role.CUSTOMER, customer_id=customer
            )
        session.commit()
    return made


def _start_commitment(api, admin_key) -> str:
    """A running commitment for cust_1 (for its top-up), and so an invoice: the invoice id."""
    started = api.post(
        "/v1/customers/cust_1/commitment", json=COMMITMENT, headers=bearer(admin_key)
    )
    assert started.status_code == 201, started.text
    return started.json()["invoices"][0]["id"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_another_customer_is_refused_and_the_right_caller_answered(
    api, customer_keys, method, path
):
    invoice_id = "" if (method, path) == START else _start_commitment(api, customer_keys["admin"])
    url = path.format(customer_id="cust_1", invoice_id=invoice_id, product="product_analytics")
    body = BODIES.get((method, path))

    refused = api.request(method, url, json=body, headers=bearer(customer_keys["cust_2"]))
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden"

    answered = api.request(method, url, json=body, headers=bearer(customer_keys["cust_1"]))
    if answered.status_code == 403 and answered.json()["field"] is None:
        # a staff route: its role refused the customer key before any customer was read
        answered = api.request(method, url, json=body, headers=bearer(customer_keys["admin"]))
    assert 200 <= answered.status_code < 300, answered.text
