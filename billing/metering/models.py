"""Raw events (kept for audit and re-aggregation) and the running usage totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlmodel import Field, SQLModel

from billing.db import ExactDecimal, UTCDateTime


class Event(SQLModel, table=True):
    """A raw event, kept for audit and re-aggregation; keyed by id for deduplication only."""

    id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(foreign_key="customer.id", max_length=64)
    product: str = Field(max_length=64)
    quantity: Decimal = Field(sa_type=ExactDecimal)
    timestamp: dt.datetime = Field(sa_type=UTCDateTime)
    period_start: dt.datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="accepted", max_length=16)  # accepted | over_limit
    received_at: dt.datetime = Field(sa_type=UTCDateTime)


class Usage(SQLModel, table=True):
    """Running totals per customer, product and period, updated in the ingesting transaction."""

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
