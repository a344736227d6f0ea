"""Alerts fired for a customer, and the customer's alert settings (docs/spend-caps.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from billing.alerts import service as alerts_service
from billing.alerts.public import AlertListPublic, AlertSettingsPublic, alert_settings_public
from billing.alerts.settings import update_settings
from billing.api.deps import CustomerAccess, OwnerKey, ReaderKey, labelled_period
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import AlertSettingsIn, ErrorOut
from billing.auth.models import Role
from billing.http.deps import SessionDep

router = APIRouter(prefix="/v1/customers", tags=["alerts"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}


@router.get("/{customer_id}/alerts", responses=ERRORS)
def list_alerts(
    reader: ReaderKey,
    customer: CustomerAccess,
    session: SessionDep,
    period: Annotated[str | None, Query(description="YYYY-MM (default: every period)")] = None,
) -> AlertListPublic:
    """Alerts fired, newest first, with their webhook delivery state. Why a delivery failed
    is told in detail to admin and finance keys; the customer's key gets the status its
    endpoint answered or a generic reason, never what sits at an address."""
    start = None
    if period is not None:
        start = labelled_period(period, customer.billing_anchor_day).start
    staff = reader.role is not Role.CUSTOMER
    alerts = alerts_service.list_alerts(session.connection(), customer.id, start, detail=staff)
    return AlertListPublic(customer=customer.id, alerts=alerts)


@router.get("/{customer_id}/alert-settings", responses=ERRORS)
def get_alert_settings(_: OwnerKey, customer: CustomerAccess) -> AlertSettingsPublic:
    """Thresholds, the free-allowance alert, the webhook URL and its signing secret."""
    return alert_settings_public(customer)


@router.put("/{customer_id}/alert-settings", responses=ERRORS)
def put_alert_settings(
    _: OwnerKey,
    customer: CustomerAccess,
    body: AlertSettingsIn,
    request: Request,
    session: SessionDep,
) -> AlertSettingsPublic:
    """Change alert settings; fields left out keep their value. Setting a first webhook URL
    issues the secret its deliveries are signed with (shown here, to this customer only)."""
    changed = update_settings(
        connection=session.connection(),
        customer_id=customer.id,
        changes={name: getattr(body, name) for name in body.model_fields_set},
        allow_private=request.app.state.settings.webhook_allow_private,
    )
    return alert_settings_public(changed)
