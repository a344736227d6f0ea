"""The spend cap of a customer's product, and the audit trail of every change to it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

from billing.db import AUTOINCREMENT, ExactDecimal, UTCDateTime


class SpendCap(SQLModel, table=True):
    __tablename__ = "spend_cap"

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    amount: Decimal = Field(sa_type=ExactDecimal)  # in the catalogue's currency
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)


class SpendCapChange(SQLModel, table=True):
    """Who changed a cap, when, from what to what, and what it did to the current period."""

    __tablename__ = "spend_cap_change"
    __table_args__ = (PrimaryKeyConstraint("customer_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64, index=True)
    product: str = Field(max_length=64)
    old_amount: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    new_amount: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    changed_by: str = Field(max_length=64)  # "key 12 (admin)"
    changed_at: dt.datetime = Field(sa_type=UTCDateTime)
    effect: str = Field(max_length=500)
