"""API key table. The key itself is never stored: only its SHA-256 digest and a prefix."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    INGEST = "ingest"
    CUSTOMER = "customer"


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    customer_id: str | None = Field(default=None, foreign_key="customer.id", max_length=64)
    name: str = Field(default="", max_length=200)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
