"""Webhook endpoints: billing events POSTed, signed, to URLs you choose (docs/webhooks.md).

Admin keys manage every endpoint (one customer's events, or every customer's with no
customer); customer keys manage their own customer's endpoints only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request

from billing.alerts.webhooks import check_url
from billing.api.deps import EndpointAccess, OwnerKey, actor
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, RotateSecretIn, WebhookEndpointIn
from billing.auth.models import Role
from billing.customers import service as customers_service
from billing.errors import Forbidden
from billing.http.deps import SessionDep
from billing.notifications import endpoints
from billing.notifications.public import (
    WebhookDeliveryListPublic,
    WebhookDeliveryPublic,
    WebhookEndpointDeletedPublic,
    WebhookEndpointListPublic,
    WebhookEndpointPublic,
    delivery_public,
    endpoint_public,
)

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}


@router.post("", status_code=201, responses=ERRORS)
def create_endpoint(
    principal: OwnerKey, body: WebhookEndpointIn, request: Request, session: SessionDep
) -> WebhookEndpointPublic:
    """Make an endpoint; the answer shows its signing secret, once. The URL must be http(s)
    to a public address (422 `webhook_url_not_allowed`), the events known types."""
    customer = body.customer
    if principal.role is Role.CUSTOMER:
        if customer is not None and customer != principal.customer_id:
            raise Forbidden("a customer key makes endpoints for its own customer", field="customer")
        customer = principal.customer_id
    connection = session.connection()
    if customer is not None:
        customers_service.get_customer(connection=connection, customer_id=customer)
    url = check_url(body.url.strip(), request.app.state.settings.webhook_allow_private)
    row, secret = endpoints.create(
        connection,
        url=url,
        events=body.events,
        customer=customer,
        description=body.description,
        actor=actor(principal),
        now=dt.datetime.now(dt.UTC),
    )
    return endpoint_public(row, secret)


@router.get("", responses=ERRORS)
def list_endpoints(
    principal: OwnerKey, session: SessionDep, customer: str | None = None
) -> WebhookEndpointListPublic:
    """Endpoints, oldest first: an admin's every one (or one customer's with `customer`);
    a customer key's its own."""
    everyone = principal.role is Role.ADMIN
    owner = customer if everyone else principal.customer_id
    rows = endpoints.listed(session.connection(), owner, everyone)
    return WebhookEndpointListPublic(endpoints=[endpoint_public(r) for r in rows])


@router.get("/{endpoint_id}", responses=ERRORS)
def get_endpoint(_: OwnerKey, endpoint: EndpointAccess) -> WebhookEndpointPublic:
    """One endpoint (without its secret)."""
    return endpoint_public(endpoint)


@router.delete("/{endpoint_id}", responses=ERRORS)
def delete_endpoint(
    _: OwnerKey, endpoint: EndpointAccess, session: SessionDep
) -> WebhookEndpointDeletedPublic:
    """Delete an endpoint: nothing more is sent to it."""
    endpoints.remove(session.connection(), endpoint.id)
    return WebhookEndpointDeletedPublic(id=endpoint.id, deleted=True)


@router.post("/{endpoint_id}/disable", responses=ERRORS)
def disable_endpoint(
    _: OwnerKey, endpoint: EndpointAccess, session: SessionDep
) -> WebhookEndpointPublic:
    """Stop sending; events keep being recorded for it and wait, in order."""
    return endpoint_public(endpoints.set_status(session.connection(), endpoint.id, False))


@router.post("/{endpoint_id}/enable", responses=ERRORS)
def enable_endpoint(
    _: OwnerKey, endpoint: EndpointAccess, session: SessionDep
) -> WebhookEndpointPublic:
    """Send again (also after an automatic disabling): what it is owed goes out in order."""
    return endpoint_public(endpoints.set_status(session.connection(), endpoint.id, True))


@router.post("/{endpoint_id}/rotate-secret", responses=ERRORS)
def rotate_secret(
    _: OwnerKey, endpoint: EndpointAccess, body: RotateSecretIn, session: SessionDep
) -> WebhookEndpointPublic:
    """A new signing secret, shown once; the old one keeps signing beside it (two v1
    values) for `overlap_hours` (24 by default, 0 to stop at once)."""
    row, secret = endpoints.rotate(
        session.connection(),
        endpoint.id,
        dt.timedelta(hours=body.overlap_hours),
        dt.datetime.now(dt.UTC),
    )
    return endpoint_public(row, secret)


@router.post("/{endpoint_id}/test", status_code=202, responses=ERRORS)
def send_test_event(
    _: OwnerKey, endpoint: EndpointAccess, session: SessionDep
) -> WebhookDeliveryPublic:
    """Queue a `ping` event for this endpoint only; the next delivery run sends it (see
    its delivery for the outcome)."""
    connection = session.connection()
    event_id = endpoints.test_event(connection, endpoint.id, dt.datetime.now(dt.UTC))
    [row] = [r for r in endpoints.deliveries(connection, endpoint.id, 5) if r.event_id == event_id]
    return delivery_public(row, detail=False)


@router.get("/{endpoint_id}/deliveries", responses=ERRORS)
def list_deliveries(
    principal: OwnerKey, endpoint: EndpointAccess, session: SessionDep
) -> WebhookDeliveryListPublic:
    """The latest 100 deliveries, newest first. Admins read a failure's detail; customers
    a reason that says nothing of internal addresses."""
    rows = endpoints.deliveries(session.connection(), endpoint.id)
    detail = principal.role is Role.ADMIN
    return WebhookDeliveryListPublic(
        endpoint=endpoint.id, deliveries=[delivery_public(r, detail=detail) for r in rows]
    )


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", responses=ERRORS)
def replay_delivery(
    principal: OwnerKey, endpoint: EndpointAccess, delivery_id: int, session: SessionDep
) -> WebhookDeliveryPublic:
    """Send a delivery again, in its place in the endpoint's order (due now)."""
    connection = session.connection()
    endpoints.replay(connection, endpoint.id, delivery_id, dt.datetime.now(dt.UTC))
    [row] = [r for r in endpoints.deliveries(connection, endpoint.id, 1000) if r.id == delivery_id]
    return delivery_public(row, detail=principal.role is Role.ADMIN)
