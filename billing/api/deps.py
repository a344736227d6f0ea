"""FastAPI dependencies, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from billing.catalog import Catalog


async def get_catalog(request: Request) -> Catalog:
    """The catalogue loaded at start-up."""
    catalog: Catalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
