"""The append-only credit ledger table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

from billing.db import AUTOINCREMENT, ExactDecimal, UTCDateTime


class EntryKind(StrEnum):
    """What moved a customer's credit balance (billing/credits/ledger.py says how)."""

    GRANT = "grant"
    RELEASE = "release"
    DRAW = "draw"
    CARRY_FORWARD = "carry_forward"
    EXPIRY = "expiry"
    ROLLOVER = "rollover"
    REVERSAL = "reversal"
    CREDIT_NOTE = "credit_note"
    WITHDRAWAL = "withdrawal"


class CreditEntry(SQLModel, table=True):
    """One movement of a customer's credit balance; the balance is the sum of amounts."""

    __tablename__ = "credit_entry"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        ForeignKeyConstraint(
            ["customer_id", "commitment_id"], ["commitment.customer_id", "commitment.id"]
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64, index=True)
    commitment_id: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=16)  # an EntryKind
    amount: Decimal = Field(sa_type=ExactDecimal)  # signed change of the available balance
    balance_after: Decimal = Field(sa_type=ExactDecimal)
    # the part of balance_after that came from credit notes (drawn after commitment credit,
    # never expired with a term)
    credit_note_balance_after: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    reference: str | None = Field(default=None, max_length=64)  # invoice or commitment id
    period_start: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str = Field(default="", max_length=300)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
