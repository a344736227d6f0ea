"""Alerts fired for a customer, and the customer's alert settings (docs/spend-caps.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from billing.alerts import service as alerts_service
from billing.alerts.settings import settings_json, update_settings
from billing.api.deps import (
    OwnerKey,
    ReaderKey,
    SessionDep,
    ensure_customer_access,
    labelled_period,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import AlertSettingsIn, ErrorOut
from billing.customers import service as customers_service

router = APIRouter(prefix="/v1/customers", tags=["alerts"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}


@router.get("/{customer_id}/alerts", responses=ERRORS)
def list_alerts(
    customer_id: str,
    session: SessionDep,
    principal: ReaderKey,
    period: Annotated[str | None, Query(description="YYYY-MM (default: every period)")] = None,
) -> dict[str, Any]:
    """Alerts fired, newest first, with their webhook delivery state."""
    ensure_customer_access(principal, customer_id)
    customer = customers_service.get_customer(session=session, customer_id=customer_id)
    start = None
    if period is not None:
        start = labelled_period(period, customer.billing_anchor_day).start
    rows = alerts_service.list_alerts(session.connection(), customer_id, start)
    return {"customer": customer_id, "alerts": [alerts_service.alert_json(r) for r in rows]}


@router.get("/{customer_id}/alert-settings", responses=ERRORS)
def get_alert_settings(customer_id: str, session: SessionDep, principal: OwnerKey) -> Any:
    """Thresholds, the free-allowance alert, the webhook URL and its signing secret."""
    ensure_customer_access(principal, customer_id)
    return settings_json(customers_service.get_customer(session=session, customer_id=customer_id))


@router.put("/{customer_id}/alert-settings", responses=ERRORS)
def put_alert_settings(
    customer_id: str,
    body: AlertSettingsIn,
    request: Request,
    session: SessionDep,
    principal: OwnerKey,
) -> Any:
    """Change alert settings; fields left out keep their value. Setting a first webhook URL
    issues the secret its deliveries are signed with (shown here, to this customer only)."""
    ensure_customer_access(principal, customer_id)
    customer = update_settings(
        session=session,
        customer_id=customer_id,
        changes={name: getattr(body, name) for name in body.model_fields_set},
        allow_private=request.app.state.settings.webhook_allow_private,
    )
    session.commit()
    return settings_json(customer)
