"""Commitments: prepaid terms of usage credit (the ledger of that credit is billing/credits)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Index, PrimaryKeyConstraint, text
from sqlmodel import Field, SQLModel

from billing.db import ExactDecimal, UTCDateTime


class CommitmentStatus(StrEnum):
    ACTIVE = "active"  # running: releases credit, invoices contract years
    ENDED = "ended"  # its term is over; unused credit expired (or rolled over)
    CANCELLED = "cancelled"  # its invoice was voided or credited: nothing more is released


class Commitment(SQLModel, table=True):
    """A prepaid term: annual credit, bracket, price, and how far its schedule has run."""

    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        Index("ix_commitment_id", "id"),
        # At most one running commitment per customer, whatever races to start one.
        Index(
            "uq_commitment_active",
            "customer_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)  # cmt_...
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    status: str = Field(max_length=16)  # a CommitmentStatus
    years: int
    credit: Decimal = Field(sa_type=ExactDecimal)  # per contract year; top-ups are grants
    discount_percent: Decimal = Field(sa_type=ExactDecimal)
    bracket_min_credit: Decimal = Field(sa_type=ExactDecimal)
    price_per_year: Decimal = Field(sa_type=ExactDecimal)  # invoiced at each year's start
    release: str = Field(max_length=16)  # monthly | upfront
    starts_at: dt.datetime = Field(sa_type=UTCDateTime)
    ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    invoiced_years: int = 0  # contract years invoiced so far
    released_through: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # At term end: the share of unused credit a renewal started before `rollover_until`
    # (of equal or larger credit) receives, and the commitment that received it.
    rollover_amount: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    rollover_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    rolled_into: str | None = Field(default=None, max_length=32)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
