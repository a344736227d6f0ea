"""Spend caps and quota state (docs/spend-caps.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response

from billing.api.deps import (
    CatalogDep,
    OwnerKey,
    PipelineKey,
    ReaderKey,
    SessionDep,
    actor,
    ensure_customer_access,
)
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, SpendCapIn
from billing.caps import service as caps_service
from billing.caps.quota import ProductQuota
from billing.catalog import Catalog
from billing.metering import quota as quota_service
from billing.metering.limited import LimitedList
from billing.money import format_amount, format_quantity

router = APIRouter(prefix="/v1", tags=["spend caps"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}


def _quantity(value: Any) -> str | None:
    return None if value is None else format_quantity(value)


def cap_json(view: ProductQuota, catalog: Catalog) -> dict[str, Any]:
    """One product's cap and quota state, as every caps and quota answer shows it."""
    currency = catalog.currency
    return {
        "product": view.product,
        "unit": catalog.products[view.product].unit,
        "cap": None if view.cap is None else format_amount(view.cap, currency),
        "discount_percent": format_quantity(view.discount_percent),
        "q_max": _quantity(view.q_max),
        "limit_quantity": _quantity(view.limit_quantity),
        "accepted_quantity": format_quantity(view.accepted),
        "billed_quantity": format_quantity(view.billed),
        "accrued": format_amount(view.accrued, currency),
        "over_limit_events": view.over_limit_events,
        "over_limit_quantity": format_quantity(view.over_limit_quantity),
        "status": view.status,
        "thresholds_fired": [k.removeprefix("cap_") for k in view.alerts_fired if k[:4] == "cap_"],
        "alerts_fired": list(view.alerts_fired),
    }


def _period_json(views: list[ProductQuota]) -> dict[str, str]:
    period = views[0].period
    return {
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
    }


def _this_period(
    customer_id: str, session: SessionDep, catalog: Catalog
) -> tuple[list[ProductQuota], dict[str, Any]]:
    """Every product's quota view this period, and the answer's common head."""
    now = dt.datetime.now(dt.UTC)
    views = quota_service.quotas(session.connection(), catalog, customer_id, now)
    head = {"customer": customer_id, "currency": catalog.currency, **_period_json(views)}
    return views, head


@router.get("/customers/{customer_id}/spend-caps", responses=ERRORS)
def list_spend_caps(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """Every product's cap, accrued charge, q_max, accepted quantity and status this period."""
    ensure_customer_access(principal, customer_id)
    views, head = _this_period(customer_id, session, catalog)
    return {**head, "spend_caps": [cap_json(v, catalog) for v in views]}


@router.put("/customers/{customer_id}/spend-caps/{product}", responses=ERRORS)
def put_spend_cap(
    customer_id: str,
    product: str,
    body: SpendCapIn,
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    principal: OwnerKey,
) -> dict[str, Any]:
    """Set a product's cap (or remove it with null); the answer says what it did this period.

    Customer keys set their own caps only; admin keys any.
    """
    ensure_customer_access(principal, customer_id)
    change = quota_service.set_cap(
        connection=session.connection(),
        catalog=catalog,
        customer_id=customer_id,
        product=product,
        amount=body.amount,
        actor=actor(principal),
        now=dt.datetime.now(dt.UTC),
    )
    session.commit()
    request.app.state.limited_list.invalidate()
    old = change.old_amount
    return {
        "customer": customer_id,
        "currency": catalog.currency,
        **_period_json([change.quota]),
        **cap_json(change.quota, catalog),
        "previous_cap": None if old is None else format_amount(old, catalog.currency),
        "effect": change.effect,
    }


@router.get("/customers/{customer_id}/spend-caps/changes", responses=ERRORS)
def list_cap_changes(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """The audit trail of cap changes: who, when, old -> new, and the effect."""
    ensure_customer_access(principal, customer_id)
    rows = caps_service.cap_changes(session.connection(), customer_id)
    currency = catalog.currency

    def money(value: Any) -> str | None:
        return None if value is None else format_amount(value, currency)

    return {
        "customer": customer_id,
        "changes": [
            {
                "product": r.product,
                "old_amount": money(r.old_amount),
                "new_amount": money(r.new_amount),
                "changed_by": r.changed_by,
                "changed_at": r.changed_at.isoformat(),
                "effect": r.effect,
            }
            for r in rows
        ],
    }


@router.get("/customers/{customer_id}/quota", responses=ERRORS)
def get_quota(
    customer_id: str, session: SessionDep, catalog: CatalogDep, principal: ReaderKey
) -> dict[str, Any]:
    """Quota state this period per product: limit, accepted, billed, over the limit, status."""
    ensure_customer_access(principal, customer_id)
    views, head = _this_period(customer_id, session, catalog)
    return {
        **head,
        "limited": [v.product for v in views if v.limited],
        "products": [cap_json(v, catalog) for v in views],
    }


@router.get(
    "/quota/limited",
    responses={**ERRORS, 304: {"description": "unchanged since the ETag sent"}},
)
async def list_limited(request: Request, _: PipelineKey) -> Response:
    """Every customer and product limited in its current period, for a pipeline to drop early.

    Answers carry an ETag; send it back as If-None-Match and an unchanged list is a bodiless
    304. The list is kept in memory and refreshed from the database when this process
    changes a limit, and at least every BILLING_QUOTA_CACHE_SECONDS otherwise.
    """
    limited: LimitedList = request.app.state.limited_list
    snapshot = await limited.current()
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == snapshot.etag:
        return Response(status_code=304, headers=headers)
    return Response(snapshot.body, media_type="application/json", headers=headers)
