"""Customer tables and bodies (Base -> Create -> table -> Public)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from pydantic import AwareDatetime, ConfigDict, field_validator
from sqlmodel import Field, SQLModel

from billing.db import ExactDecimal, UTCDateTime

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class CustomerBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    billing_anchor_day: int = Field(default=1, ge=1, le=28)
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class CustomerCreate(CustomerBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    id: str = Field(max_length=64)
    # Where billing begins (an instant with its UTC offset, not in the future); default: the
    # start of the billing period of sign-up.
    # Usage before it is refused (before_billing_start); set it in the past to import
    # history (docs/metering.md, "Billing start").
    billing_start: AwareDatetime | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not re.fullmatch(ID_PATTERN, value):
            raise ValueError(
                "an id is 1-64 letters, digits and _ . : - (starting with a letter or digit)"
            )
        return value

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"not an email address: {value!r}")
        return value


class Customer(CustomerBase, table=True):
    id: str = Field(primary_key=True, max_length=64)
    currency: str | None = Field(default="USD", max_length=3)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    # Where the customer's billing periods begin: usage before it is refused (docs/metering.md).
    billing_start: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Events before this instant belong to closed periods and are refused (period_closed).
    closed_through: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A percentage discount on every usage line (docs/discounts.md); caps take it into account.
    discount_percent: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    discount_reason: str | None = Field(default=None, max_length=200)
    discount_until: dt.date | None = None
    # Alerts (docs/spend-caps.md): percentages of a cap, comma-separated; the free-allowance alert.
    alert_thresholds: str = Field(default="50,80,100", max_length=100)
    alert_free_allowance: bool = True
    alert_webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_secret: str | None = Field(default=None, max_length=64)


class CustomerPublic(CustomerBase):
    id: str
    currency: str | None
    created_at: dt.datetime
    billing_start: dt.datetime | None
    closed_through: dt.datetime | None
