"""Create, find, list and revoke API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from billing.auth.models import ApiKey, Role
from billing.customers.service import read_customer
from billing.db import table_of
from billing.errors import KeyNeedsCustomer, KeyTakesNoCustomer, NotFound

KEY_PREFIX = "bk_"


def hash_key(key: str) -> str:
    """SHA-256 digest of a key (keys are 256-bit random, so a fast hash is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, role and, for customer keys, the customer."""

    key_id: int
    role: Role
    customer_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    """A stored key as listed: its id, the prefix it is shown by, role, customer (customer
    keys), label and when it was created and revoked. Never the key or its digest."""

    id: int
    prefix: str
    role: Role
    customer_id: str | None
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


_KEYS = table_of(ApiKey)
_RECORD = select(
    _KEYS.c.id,
    _KEYS.c.prefix,
    _KEYS.c.role,
    _KEYS.c.customer_id,
    _KEYS.c.name,
    _KEYS.c.created_at,
    _KEYS.c.revoked_at,
)


def _record(row: Row[*tuple[Any, ...]]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        prefix=row.prefix,
        role=Role(row.role),
        customer_id=row.customer_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_key(
    *, connection: Connection, role: Role, customer_id: str | None = None, name: str = ""
) -> tuple[str, ApiKeyRecord]:
    """Create a key; return the key in clear (shown once) and its stored record."""
    if role is Role.CUSTOMER and not customer_id:
        raise KeyNeedsCustomer("a customer key needs --customer", field="customer")
    if role is not Role.CUSTOMER and customer_id:
        raise KeyTakesNoCustomer("only customer keys are bound to a customer", field="customer")
    if customer_id:
        read_customer(connection, customer_id)  # NotFound for an unknown customer
    key = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    key_id = connection.execute(
        insert(_KEYS)
        .values(
            prefix=key[:12],
            key_hash=hash_key(key),
            role=role.value,
            customer_id=customer_id,
            name=name,
            created_at=dt.datetime.now(dt.UTC),
        )
        .returning(_KEYS.c.id)
    ).scalar_one()
    return key, _record(connection.execute(_RECORD.where(_KEYS.c.id == key_id)).one())


def authenticate(*, connection: Connection, key: str) -> Principal | None:
    """The principal of a live key, or None."""
    digest = hash_key(key)
    row = connection.execute(
        select(_KEYS.c.id, _KEYS.c.key_hash, _KEYS.c.role, _KEYS.c.customer_id).where(
            _KEYS.c.key_hash == digest, _KEYS.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    if not hmac.compare_digest(row.key_hash, digest):  # constant time, whatever the index did
        return None
    return Principal(row.id, Role(row.role), row.customer_id)


def list_keys(*, connection: Connection) -> list[ApiKeyRecord]:
    """Every key, newest first (prefixes only; keys are never stored)."""
    return [_record(row) for row in connection.execute(_RECORD.order_by(_KEYS.c.id.desc()))]


def revoke_key(*, connection: Connection, prefix_or_id: str) -> ApiKeyRecord:
    """Revoke a key by id or prefix."""
    query = _RECORD.where(_KEYS.c.prefix == prefix_or_id)
    if prefix_or_id.isdigit():
        query = _RECORD.where(_KEYS.c.id == int(prefix_or_id))
    rows = connection.execute(query).all()
    if len(rows) != 1:
        raise NotFound(f"no single key matches {prefix_or_id!r}", field="key")
    revoked = replace(_record(rows[0]), revoked_at=dt.datetime.now(dt.UTC))
    connection.execute(
        update(_KEYS).where(_KEYS.c.id == revoked.id).values(revoked_at=revoked.revoked_at)
    )
    return revoked
