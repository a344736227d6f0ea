"""Liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from billing import __version__
from billing.api.deps import CatalogDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(catalog: CatalogDep, request: Request) -> dict[str, Any]:
    """The service is up and its catalogue loaded; whether Stripe sync runs."""
    return {
        "status": "ok",
        "version": __version__,
        "catalog": {"directory": catalog.directory, "products": len(catalog.products)},
        "stripe_sync": request.app.state.settings.stripe_sync_state,
    }
