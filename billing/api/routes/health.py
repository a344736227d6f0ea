"""Liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from billing import __version__
from billing.api.deps import CatalogDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(catalog: CatalogDep) -> dict[str, Any]:
    """The service is up and its catalogue loaded."""
    return {
        "status": "ok",
        "version": __version__,
        "catalog": {"directory": catalog.directory, "products": len(catalog.products)},
    }
