"""Create, find, list and revoke API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from billing.auth.models import ApiKey, Role
from billing.customers.models import Customer
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


def create_key(
    *, session: Session, role: Role, customer_id: str | None = None, name: str = ""
) -> tuple[str, ApiKey]:
    """Create a key; return the key in clear (shown once) and its stored row."""
    if role is Role.CUSTOMER and not customer_id:
        raise KeyNeedsCustomer("a customer key needs --customer", field="customer")
    if role is not Role.CUSTOMER and customer_id:
        raise KeyTakesNoCustomer("only customer keys are bound to a customer", field="customer")
    if customer_id and session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    key = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    row = ApiKey(
        prefix=key[:12],
        key_hash=hash_key(key),
        role=role.value,
        customer_id=customer_id,
        name=name,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    return key, row


def authenticate(*, session: Session, key: str) -> Principal | None:
    """The principal of a live key, or None."""
    digest = hash_key(key)
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if row is None or row.revoked_at is not None or row.id is None:
        return None
    if not hmac.compare_digest(row.key_hash, digest):  # constant time, whatever the index did
        return None
    return Principal(row.id, Role(row.role), row.customer_id)


def list_keys(*, session: Session) -> list[ApiKey]:
    """Every key, newest first (prefixes only; keys are never stored)."""
    return list(session.exec(select(ApiKey).order_by(ApiKey.id.desc())))  # type: ignore[union-attr]


def revoke_key(*, session: Session, prefix_or_id: str) -> ApiKey:
    """Revoke a key by id or prefix."""
    query = select(ApiKey).where(ApiKey.prefix == prefix_or_id)
    if prefix_or_id.isdigit():
        query = select(ApiKey).where(ApiKey.id == int(prefix_or_id))
    rows = list(session.exec(query))
    if len(rows) != 1:
        raise NotFound(f"no single key matches {prefix_or_id!r}", field="key")
    rows[0].revoked_at = dt.datetime.now(dt.UTC)
    session.add(rows[0])
    return rows[0]
