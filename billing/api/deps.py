"""FastAPI dependencies, as Annotated aliases: catalogue, database session, caller and roles."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from billing.auth import service as auth_service
from billing.auth.cache import KeyCache
from billing.auth.models import Role
from billing.auth.service import Principal
from billing.catalog import Catalog
from billing.customers.periods import Period, period_from_label
from billing.db import read_only, session_scope
from billing.errors import Forbidden, InvalidPeriod, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer bk_...")


async def get_catalog(request: Request) -> Catalog:
    """The catalogue loaded at start-up."""
    catalog: Catalog = request.app.state.catalog
    return catalog


async def get_engine(request: Request) -> Engine:
    """The database engine of this process."""
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session per request, committed when the route returns without error."""
    with session_scope(engine) as session:
        yield session


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SessionDep = Annotated[Session, Depends(get_session)]


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from its bearer key; 401 without a live key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    engine: Engine = request.app.state.engine
    cache: KeyCache = request.app.state.key_cache
    key = credentials.credentials

    principal = cache.remembered(key)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, engine, key)
        if principal is not None:
            cache.remember(key, principal)
    if principal is None:
        raise Unauthorized("this API key is not valid or has been revoked")
    return principal


def _authenticate(engine: Engine, key: str) -> Principal | None:
    with read_only(engine) as session:
        return auth_service.authenticate(session=session, key=key)


CurrentKey = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only keys with one of `roles`."""
    allowed = ", ".join(r.value for r in roles)

    async def check(principal: CurrentKey) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this needs a key with role {allowed}; yours is {principal.role}")
        return principal

    return check


AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
IngestKey = Annotated[Principal, Depends(require(Role.INGEST, Role.ADMIN))]
ReaderKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.FINANCE, Role.CUSTOMER))]
StaffKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.FINANCE))]
OwnerKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.CUSTOMER))]
PipelineKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.FINANCE, Role.INGEST))]


def labelled_period(label: str, anchor_day: int) -> Period:
    """The period a `?period=YYYY-MM` query names, or a 422 naming the field."""
    try:
        return period_from_label(label, anchor_day)
    except ValueError as error:
        raise InvalidPeriod(str(error), field="period") from None


def actor(principal: Principal) -> str:
    """How an audit trail names the caller: "admin key 3"."""
    return f"{principal.role.value} key {principal.key_id}"


def ensure_customer_access(principal: Principal, customer_id: str) -> None:
    """A customer key reads and changes only its own customer."""
    if principal.role is Role.CUSTOMER and principal.customer_id != customer_id:
        raise Forbidden("this key belongs to another customer", field="customer")
