"""Sign-in for people in a browser: single-use links, sessions, and CSRF tokens.

A link token is `<random>.<expires>.<signature>`; a session cookie is `<random>.<signature>`.
Signatures are HMAC-SHA256 with the secret key, so forged or altered tokens are refused
without a database read; the database holds only SHA-256 digests of the random parts, and
is what makes a link single-use and a sign-out final. A CSRF token is the HMAC of the
session's random part (or, before sign-in, of a random cookie), so it cannot be read from
another origin and needs no storage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from billing.auth.models import ApiKey, Role
from billing.auth.service import Principal
from billing.customers.models import Customer
from billing.db import table_of
from billing.errors import InvalidLinkLifetime, NotFound
from billing.web.models import WebLink, WebSecret, WebSession

CUSTOMER, FINANCE = "customer", "finance"
_LINKS = table_of(WebLink)
_SESSIONS = table_of(WebSession)
_SECRETS = table_of(WebSecret)
_KEYS = table_of(ApiKey)


def load_secret(connection: Connection, configured: str | None, now: dt.datetime) -> bytes:
    """BILLING_SECRET_KEY, or the key generated once and kept in the database."""
    if configured:
        return configured.encode()
    row = connection.execute(select(_SECRETS.c.secret).where(_SECRETS.c.id == 1)).first()
    if row is None:  # the first to insert wins; everyone reads the winner's key
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(_SECRETS)
            .values(id=1, secret=secrets.token_urlsafe(48), created_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = connection.execute(select(_SECRETS.c.secret).where(_SECRETS.c.id == 1)).one()
    return str(row.secret).encode()


def _sign(secret: bytes, purpose: str, text: str) -> str:
    return hmac.new(secret, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _verified(secret: bytes, purpose: str, signed: str) -> str | None:
    """The part before the last dot when the signature after it is right; else None."""
    text, _, signature = signed.rpartition(".")
    if not text or not hmac.compare_digest(_sign(secret, purpose, text), signature):
        return None
    return text


# --- links ---------------------------------------------------------------------------------


def create_link(
    connection: Connection,
    secret: bytes,
    *,
    kind: str,
    customer_id: str | None,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> tuple[str, dt.datetime]:
    """A new single-use sign-in token, and when it expires."""
    customers = table_of(Customer)
    found = connection.execute(select(customers.c.id).where(customers.c.id == customer_id))
    if kind == CUSTOMER and found.first() is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    if ttl <= dt.timedelta(0) or ttl > dt.timedelta(days=7):
        raise InvalidLinkLifetime("a link lives between 1 second and 7 days", field="ttl")
    random_part = secrets.token_urlsafe(24)
    expires = now + ttl
    text = f"{random_part}.{int(expires.timestamp())}"
    connection.execute(
        insert(_LINKS).values(
            token_hash=_digest(random_part),
            kind=kind,
            customer_id=customer_id,
            created_at=now,
            expires_at=expires,
        )
    )
    return f"{text}.{_sign(secret, 'link', text)}", expires


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """A link's state: `problem` is None when it can be used now."""

    kind: str | None
    customer_id: str | None
    problem: str | None


def check_link(
    connection: Connection, secret: bytes, token: str, now: dt.datetime, *, consume: bool
) -> LinkCheck:
    """Whether `token` signs someone in now; with `consume`, use it up (once, atomically)."""
    text = _verified(secret, "link", token)
    if text is None:
        return LinkCheck(None, None, "This sign-in link is not valid. Ask for a new one.")
    random_part, _, _expires = text.partition(".")
    row = connection.execute(
        select(_LINKS).where(_LINKS.c.token_hash == _digest(random_part))
    ).first()
    if row is None:
        return LinkCheck(None, None, "This sign-in link is not valid. Ask for a new one.")
    if row.used_at is not None:
        return LinkCheck(row.kind, row.customer_id, "This sign-in link has already been used.")
    if row.expires_at <= now:
        return LinkCheck(row.kind, row.customer_id, "This sign-in link has expired.")
    if consume:
        used = connection.execute(
            update(_LINKS)
            .where(_LINKS.c.token_hash == row.token_hash, _LINKS.c.used_at.is_(None))
            .values(used_at=now)
        )
        if used.rowcount != 1:  # another request used it first
            return LinkCheck(row.kind, row.customer_id, "This sign-in link has already been used.")
    return LinkCheck(row.kind, row.customer_id, None)


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebUser:
    """Who a browser is signed in as, and the CSRF token its forms must carry."""

    kind: str
    customer_id: str | None
    key_id: int | None
    via: str
    expires_at: dt.datetime
    csrf: str

    @property
    def principal(self) -> Principal:
        """The same principal an API key of this kind would be: the same access rules."""
        role = Role.CUSTOMER if self.kind == CUSTOMER else Role.FINANCE
        return Principal(self.key_id or 0, role, self.customer_id)

    @property
    def actor(self) -> str:
        """How audit trails name changes made from this session."""
        return f"{self.kind} portal ({self.via})"


def start_session(
    connection: Connection,
    secret: bytes,
    *,
    kind: str,
    customer_id: str | None,
    key_id: int | None,
    via: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> str:
    """A new session; returns the cookie value."""
    random_part = secrets.token_urlsafe(32)
    connection.execute(
        insert(_SESSIONS).values(
            token_hash=_digest(random_part),
            kind=kind,
            customer_id=customer_id,
            key_id=key_id,
            via=via,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return f"{random_part}.{_sign(secret, 'session', random_part)}"


def session_user(
    connection: Connection, secret: bytes, cookie: str | None, now: dt.datetime
) -> WebUser | None:
    """The signed-in user of a session cookie, or None (unsigned, unknown, ended, expired,
    or opened with an API key that has since been revoked)."""
    random_part = _verified(secret, "session", cookie) if cookie else None
    if random_part is None:
        return None
    row = connection.execute(
        select(_SESSIONS, _KEYS.c.revoked_at)
        .select_from(_SESSIONS.outerjoin(_KEYS, _KEYS.c.id == _SESSIONS.c.key_id))
        .where(_SESSIONS.c.token_hash == _digest(random_part))
    ).first()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if row.key_id is not None and row.revoked_at is not None:
        return None
    csrf = _sign(secret, "csrf", random_part)
    return WebUser(row.kind, row.customer_id, row.key_id, row.via, row.expires_at, csrf)


def end_session(
    connection: Connection, secret: bytes, cookie: str | None, now: dt.datetime
) -> None:
    """Sign out: the cookie stops working everywhere, even if a copy of it survives."""
    random_part = _verified(secret, "session", cookie) if cookie else None
    if random_part is not None:
        connection.execute(
            update(_SESSIONS)
            .where(_SESSIONS.c.token_hash == _digest(random_part), _SESSIONS.c.ended_at.is_(None))
            .values(ended_at=now)
        )


# --- CSRF ----------------------------------------------------------------------------------


def new_presession() -> str:
    """A random value for the cookie that binds the CSRF token of a sign-in form."""
    return secrets.token_urlsafe(24)


def presession_csrf(secret: bytes, presession: str) -> str:
    return _sign(secret, "csrf-pre", presession)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
