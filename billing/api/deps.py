"""FastAPI dependencies of the API, as Annotated aliases: the caller, its role, and the customer
or invoice a path names (the catalogue and the session come from billing/http/deps.py)."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from billing.api import exact_json
from billing.auth import service as auth_service
from billing.auth.cache import KeyCache
from billing.auth.models import Role
from billing.auth.service import Principal
from billing.customers import service as customers_service
from billing.customers.periods import Period, period_from_label
from billing.customers.service import CustomerRow
from billing.db import read_only
from billing.errors import Forbidden, InvalidPeriod, Unauthorized
from billing.http.deps import SessionDep
from billing.idempotency import service as idempotency
from billing.invoicing import service as invoicing_service
from billing.notifications import endpoints as webhook_endpoints

ModelT = TypeVar("ModelT", bound=BaseModel)
_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer bk_...")


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
    with read_only(engine) as connection:
        return auth_service.authenticate(connection=connection, key=key)


CurrentKey = Annotated[Principal, Depends(get_principal)]


async def operator_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """Whether the caller may read the operational details (/metrics, /readyz's details): an
    admin key, or BILLING_METRICS_TOKEN, as a bearer. False without credentials (the caller
    decides what that gets); 401 for a bearer that is neither, 403 for a key of another role."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    token: str | None = request.app.state.settings.metrics_token
    if token and hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        return True
    principal = await get_principal(request, credentials)
    if principal.role is not Role.ADMIN:
        raise Forbidden(
            f"operational details need an admin key or BILLING_METRICS_TOKEN; this key's role "
            f"is {principal.role}"
        )
    return True


OperatorAccess = Annotated[bool, Depends(operator_access)]


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


def _ensure_customer_access(principal: Principal, customer_id: str) -> None:
    if principal.role is Role.CUSTOMER and principal.customer_id != customer_id:
        raise Forbidden("this key belongs to another customer", field="customer")


def customer_in_path(
    customer_id: Annotated[str, Path(description="the customer's id")],
    principal: CurrentKey,
    session: SessionDep,
) -> CustomerRow:
    """The `{customer_id}` of the path, once the caller may act for it: a customer key for
    another customer is 403; then an unknown customer is 404."""
    _ensure_customer_access(principal, customer_id)
    return customers_service.get_customer(connection=session.connection(), customer_id=customer_id)


def invoice_in_path(
    invoice_id: Annotated[
        str, Path(description="the invoice's id (inv_...) or its number (INV-000123)")
    ],
    principal: CurrentKey,
    session: SessionDep,
) -> str:
    """Our id of the `{invoice_id}` of the path (an id or a number): 404 when unknown, 403
    when it is another customer's."""
    connection = session.connection()
    found = invoicing_service.resolve_invoice_id(connection, invoice_id)
    _ensure_customer_access(principal, invoicing_service.customer_of(connection, found))
    return found


# NOTE: every route with {customer_id} takes CustomerAccess, every route with {invoice_id}
# InvoiceAccess (tests/api/test_access.py walks the schema to hold this). List the role key
# before them, so a key of the wrong role is refused before the customer is looked up.
CustomerAccess = Annotated[CustomerRow, Depends(customer_in_path)]
InvoiceAccess = Annotated[str, Depends(invoice_in_path)]


def endpoint_in_path(
    endpoint_id: Annotated[str, Path(description="the webhook endpoint's id (we_...)")],
    principal: CurrentKey,
    session: SessionDep,
) -> Any:
    """The `{endpoint_id}` of the path: 404 when unknown; 403 for a customer key when it is
    not that customer's own (an admin endpoint included)."""
    found = webhook_endpoints.get(session.connection(), endpoint_id)
    if principal.role is Role.CUSTOMER and found.customer_id != principal.customer_id:
        raise Forbidden("this webhook endpoint is not this customer's", field="endpoint")
    return found


EndpointAccess = Annotated[Any, Depends(endpoint_in_path)]


class Idempotency:
    """A request's `Idempotency-Key` (docs/idempotency.md), for routes that create money:
    `replayed()` claims the key in the request's transaction (or answers what its first
    request answered), `answer()` stores this request's answer there too. Without the header
    both do nothing."""

    def __init__(self, session: Session, owner: str, key: str | None, print_: str) -> None:
        self.session, self.owner, self.key, self.print_ = session, owner, key, print_
        self.claimed = False

    def replayed(self, now: dt.datetime) -> JSONResponse | None:
        """The first answer for this key, or None once the key is claimed for this request.
        Raises IdempotencyError."""
        if self.key is None:
            return None
        connection = self.session.connection()
        stored = idempotency.claim(connection, self.owner, self.key, self.print_, now)
        if stored is None:
            self.claimed = True
            return None
        return JSONResponse(
            stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"}
        )

    def answer(self, result: ModelT, status: int, now: dt.datetime) -> ModelT:
        """`result` as the answer; stored for the key in the request's transaction."""
        if self.claimed and self.key is not None:
            body = result.model_dump(mode="json", by_alias=True)
            connection = self.session.connection()
            idempotency.complete(connection, self.owner, self.key, status, body, now)
        return result


async def get_idempotency(
    request: Request,
    principal: CurrentKey,
    session: SessionDep,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="makes a retry of this request safe: the same key and body answer "
            "the first answer again (kept 24 hours; docs/idempotency.md)",
        ),
    ] = None,
) -> Idempotency:
    """The request's Idempotency-Key, scoped to the calling API key."""
    if key is not None:
        idempotency.check_key(key)
    raw = await request.body()
    try:
        body: Any = exact_json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    print_ = idempotency.fingerprint(request.method, request.url.path, body)
    return Idempotency(session, f"key:{principal.key_id}", key, print_)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
