"""Commitments, the credit ledger and percentage discounts as the API and the portal show
them. Money is exact, trimmed to the currency's minor digits ("30000.00")."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from pydantic import Field

from billing.credits.ledger import Entry
from billing.money import format_exact, format_quantity
from billing.public import Day, MoneyText, MonthLabel, PercentText, PublicModel, Timestamp
from billing.quotes import CommitmentOptionPublic


class CommitmentPublic(PublicModel):
    id: str
    status: str = Field(description="active | ended")
    credit: MoneyText = Field(
        description="annual credit chosen at the start; top-ups are ledger grants of their own"
    )
    years: int
    discount_percent: PercentText
    bracket_min_credit: MoneyText
    price_per_year: MoneyText = Field(description="invoiced at the start of each contract year")
    release: str = Field(description="monthly | upfront")
    starts_at: Timestamp
    ends_at: Timestamp
    invoiced_years: int


class CommitmentInvoicePublic(PublicModel):
    """An invoice a commitment change issued."""

    id: str
    number: str = Field(examples=["INV-000123"])
    kind: str = Field(description="commitment")
    total: MoneyText


class LedgerMovePublic(PublicModel):
    """A ledger entry a commitment change wrote."""

    kind: str
    amount: MoneyText
    balance_after: MoneyText
    note: str


class CommitmentChangePublic(PublicModel):
    """What starting or topping up a commitment did."""

    commitment: CommitmentPublic
    invoices: list[CommitmentInvoicePublic]
    ledger: list[LedgerMovePublic]
    balance: MoneyText = Field(description="available credit after the change")


class CommitmentsPublic(PublicModel):
    customer: str
    commitments: list[CommitmentPublic] = Field(description="newest first")
    balance: MoneyText = Field(description="available credit")


class CreditEntryPublic(PublicModel):
    """One movement of the credit balance."""

    id: int
    kind: str = Field(
        description="grant | release | draw | carry_forward | expiry | rollover | reversal"
    )
    amount: MoneyText = Field(description="signed change of the available balance")
    balance_after: MoneyText
    commitment: str | None
    reference: str | None = Field(description="the invoice or commitment it concerns")
    period_start: Timestamp | None
    note: str
    at: Timestamp


class CreditLedgerPublic(PublicModel):
    customer: str
    currency: str
    balance: MoneyText
    entries: list[CreditEntryPublic] = Field(description="oldest first")


class ChoicePublic(PublicModel):
    credit: MoneyText
    years: int


class CommitmentOptionsPublic(PublicModel):
    """Every bracket priced for a customer's usage, the largest saver recommended."""

    customer: str
    currency: str
    basis: str = Field(description="override | last_90_days | current_period | no_usage")
    basis_periods: list[MonthLabel]
    monthly_usage: MoneyText = Field(description="usage at list price per month")
    annual_usage: MoneyText
    options: list[CommitmentOptionPublic]
    recommended: ChoicePublic | None


class DiscountPublic(PublicModel):
    """A customer's percentage discount, as set."""

    customer: str
    percent: PercentText | None = Field(description="null: no discount")
    reason: str | None
    until: Day | None = Field(description="last day of the periods it applies to")
    applies_from: MonthLabel = Field(description="the period from which it applies")


class IssuedRecord(Protocol):
    """An invoice just issued: its id, number and amount."""

    @property
    def id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def amount_due(self) -> Decimal: ...


def _money(value: Decimal, currency: str) -> str:
    return format_exact(value, currency)


def commitment_public(row: Any, currency: str) -> CommitmentPublic:
    """A stored commitment."""
    return CommitmentPublic(
        id=row.id,
        status=row.status,
        credit=_money(row.credit, currency),
        years=row.years,
        discount_percent=format_quantity(row.discount_percent),
        bracket_min_credit=_money(row.bracket_min_credit, currency),
        price_per_year=_money(row.price_per_year, currency),
        release=row.release,
        starts_at=row.starts_at.isoformat(),
        ends_at=row.ends_at.isoformat(),
        invoiced_years=row.invoiced_years,
    )


def change_public(
    *,
    row: Any,
    invoices: Iterable[IssuedRecord],
    entries: Iterable[Entry],
    balance: Decimal,
    currency: str,
) -> CommitmentChangePublic:
    """A commitment change: the commitment now, the invoices issued, the entries written."""
    return CommitmentChangePublic(
        commitment=commitment_public(row, currency),
        invoices=[
            CommitmentInvoicePublic(
                id=i.id, number=i.number, kind="commitment", total=_money(i.amount_due, currency)
            )
            for i in invoices
        ],
        ledger=[
            LedgerMovePublic(
                kind=e.kind,
                amount=_money(e.amount, currency),
                balance_after=_money(e.balance_after, currency),
                note=e.note,
            )
            for e in entries
        ],
        balance=_money(balance, currency),
    )


def credit_entry_public(row: Any, currency: str) -> CreditEntryPublic:
    """A stored ledger entry."""
    return CreditEntryPublic(
        id=row.id,
        kind=row.kind,
        amount=_money(row.amount, currency),
        balance_after=_money(row.balance_after, currency),
        commitment=row.commitment_id,
        reference=row.reference,
        period_start=None if row.period_start is None else row.period_start.isoformat(),
        note=row.note,
        at=row.created_at.isoformat(),
    )
