"""Customer tables and bodies (Base -> Create -> table -> Public)."""

from __future__ import annotations

import datetime as dt

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class CustomerBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320, regex=r"^[^@\s]+@[^@\s]+$")
    billing_anchor_day: int = Field(default=1, ge=1, le=28)
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class CustomerCreate(CustomerBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    id: str = Field(max_length=64, regex=ID_PATTERN)


class Customer(CustomerBase, table=True):
    id: str = Field(primary_key=True, max_length=64)
    currency: str | None = Field(default="USD", max_length=3)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    # Events before this instant belong to closed periods and are refused (period_closed).
    closed_through: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class CustomerPublic(CustomerBase):
    id: str
    currency: str | None
    created_at: dt.datetime
    closed_through: dt.datetime | None
