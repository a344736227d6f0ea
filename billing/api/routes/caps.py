"""Spend caps and quota state (docs/spend-caps.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response

from billing.api.deps import CustomerAccess, OwnerKey, PipelineKey, ReaderKey, actor
from billing.api.exact_json import ExactJSONRoute
from billing.api.schemas import ErrorOut, SpendCapIn
from billing.caps import service as caps_service
from billing.caps.public import (
    CapChangesPublic,
    LimitedListPublic,
    QuotaPublic,
    SpendCapChangePublic,
    SpendCapsPublic,
    cap_change_public,
    cap_changes_public,
    quota_public,
    spend_caps_public,
)
from billing.caps.quota import ProductQuota
from billing.catalog import Catalog
from billing.customers.service import CustomerRow
from billing.http.deps import CatalogDep, LimitsChanged, SessionDep
from billing.metering import quota as quota_service
from billing.metering.limited import LimitedList

router = APIRouter(prefix="/v1", tags=["spend caps"], route_class=ExactJSONRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}


def _this_period(
    customer: CustomerRow, session: SessionDep, catalog: Catalog
) -> list[ProductQuota]:
    """Every product's quota view this period."""
    now = dt.datetime.now(dt.UTC)
    return quota_service.quotas(session.connection(), catalog, customer.id, now)


@router.get("/customers/{customer_id}/spend-caps", responses=ERRORS)
def list_spend_caps(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> SpendCapsPublic:
    """Every product's cap, accrued charge, q_max, accepted quantity and status this period."""
    views = _this_period(customer, session, catalog)
    return spend_caps_public(customer.id, views, catalog)


@router.put("/customers/{customer_id}/spend-caps/{product}", responses=ERRORS)
def put_spend_cap(
    principal: OwnerKey,
    customer: CustomerAccess,
    product: str,
    body: SpendCapIn,
    session: SessionDep,
    catalog: CatalogDep,
    limits: LimitsChanged,
) -> SpendCapChangePublic:
    """Set a product's cap (or remove it with null); the answer says what it did this period.

    Customer keys set their own caps only; admin keys any.
    """
    change = quota_service.set_cap(
        connection=session.connection(),
        catalog=catalog,
        customer_id=customer.id,
        product=product,
        amount=body.amount,
        actor=actor(principal),
        now=dt.datetime.now(dt.UTC),
    )
    limits.moved()
    return cap_change_public(
        customer.id, change.quota, catalog, previous=change.old_amount, effect=change.effect
    )


@router.get("/customers/{customer_id}/spend-caps/changes", responses=ERRORS)
def list_cap_changes(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> CapChangesPublic:
    """The audit trail of cap changes: who, when, old -> new, and the effect."""
    rows = caps_service.cap_changes(session.connection(), customer.id)
    return cap_changes_public(customer.id, rows, catalog.currency)


@router.get("/customers/{customer_id}/quota", responses=ERRORS)
def get_quota(
    _: ReaderKey, customer: CustomerAccess, session: SessionDep, catalog: CatalogDep
) -> QuotaPublic:
    """Quota state this period per product: limit, accepted, billed, over the limit, status."""
    views = _this_period(customer, session, catalog)
    return quota_public(customer.id, views, catalog)


@router.get(
    "/quota/limited",
    response_model=LimitedListPublic,
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
