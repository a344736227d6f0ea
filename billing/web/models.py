"""Sign-in links, browser sessions, and the generated signing key (when none is configured).

Only digests of link and session tokens are stored: a copy of the database signs nobody in.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class WebLink(SQLModel, table=True):
    """A single-use sign-in link: to one customer's portal, or to the finance pages."""

    __tablename__ = "web_link"

    token_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # "customer" | "finance"
    customer_id: str | None = Field(default=None, foreign_key="customer.id", max_length=64)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser. Ended by signing out, by expiry, or when its API key is revoked."""

    __tablename__ = "web_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # "customer" | "finance"
    customer_id: str | None = Field(default=None, foreign_key="customer.id", max_length=64)
    key_id: int | None = Field(default=None, foreign_key="api_key.id")
    via: str = Field(max_length=64)  # "link" | "finance key 3" ...
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    ended_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSecret(SQLModel, table=True):
    """The signing key generated on first use when BILLING_SECRET_KEY is not set."""

    __tablename__ = "web_secret"

    id: int = Field(primary_key=True)
    secret: str = Field(max_length=128)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
