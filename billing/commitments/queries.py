"""Reads behind the commitment answers (the API and the portal): a customer's commitments,
the credit ledger, what a change did, and every bracket priced for the customer's usage.
Nothing here writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, func, select

from billing.catalog import Catalog
from billing.commitments.models import Commitment
from billing.commitments.projection import project
from billing.commitments.public import (
    ChoicePublic,
    CommitmentChangePublic,
    CommitmentOptionsPublic,
    CommitmentsPublic,
    CreditLedgerPublic,
    change_public,
    commitment_public,
    credit_entry_public,
)
from billing.commitments.service import Outcome
from billing.credits import ledger
from billing.credits.models import CreditEntry, EntryKind
from billing.customers.service import CustomerRow
from billing.db import table_of
from billing.errors import NoCommitmentSchedule
from billing.money import format_exact
from billing.pricing.commitments import commitment_options
from billing.quotes import commitment_option_public

_COMMITMENTS = table_of(Commitment)


def commitments(connection: Connection, catalog: Catalog, customer_id: str) -> CommitmentsPublic:
    """The customer's commitments, newest first, and the available credit."""
    rows = connection.execute(
        select(_COMMITMENTS)
        .where(_COMMITMENTS.c.customer_id == customer_id)
        .order_by(_COMMITMENTS.c.created_at.desc())
    )
    currency = catalog.currency
    return CommitmentsPublic(
        customer=customer_id,
        commitments=[commitment_public(r, currency) for r in rows],
        balance=format_exact(ledger.balance(connection, customer_id), currency),
    )


def topped_up(connection: Connection, commitment_id: str, since: dt.datetime) -> Decimal:
    """The credit top-ups added to a commitment at or after `since` (the running contract
    year's start), in the currency's major units: its `grant` entries that buy no contract
    year (a year's grant carries the year's `period_start`; a top-up's has none)."""
    entries = table_of(CreditEntry)
    total = connection.execute(
        select(func.coalesce(func.sum(entries.c.amount), 0)).where(
            entries.c.commitment_id == commitment_id,
            entries.c.kind == EntryKind.GRANT,
            entries.c.period_start.is_(None),
            entries.c.created_at >= since,
        )
    ).scalar_one()
    return Decimal(total)


def credits(connection: Connection, catalog: Catalog, customer_id: str) -> CreditLedgerPublic:
    """The credit ledger, oldest first, and the available credit."""
    currency = catalog.currency
    rows = ledger.entries(connection, customer_id)
    return CreditLedgerPublic(
        customer=customer_id,
        currency=currency,
        balance=format_exact(ledger.balance(connection, customer_id), currency),
        entries=[credit_entry_public(r, currency) for r in rows],
    )


def change(connection: Connection, catalog: Catalog, outcome: Outcome) -> CommitmentChangePublic:
    """What a start or top-up did, read in its own transaction (before it commits)."""
    query = select(_COMMITMENTS).where(_COMMITMENTS.c.id == outcome.commitment_id)
    row = connection.execute(query).one()
    return change_public(
        row=row,
        invoices=outcome.invoices,
        entries=outcome.entries,
        balance=ledger.balance(connection, row.customer_id),
        currency=catalog.currency,
    )


def options(
    connection: Connection,
    catalog: Catalog,
    customer: CustomerRow,
    now: dt.datetime,
    monthly_usage: Decimal | None = None,
) -> CommitmentOptionsPublic:
    """Every bracket priced at the customer's run rate (or `monthly_usage` at list price),
    the largest saver recommended; NoCommitmentSchedule when the catalogue offers none."""
    if catalog.schedule is None:
        raise NoCommitmentSchedule("this catalogue offers no commitments", field="customer")
    periods: tuple[str, ...] = ()
    if monthly_usage is not None:
        monthly, basis = monthly_usage, "override"
    else:
        projection = project(
            connection, catalog, customer.id, customer.billing_anchor_day, now, customer.created_at
        )
        monthly, basis, periods = projection.monthly, projection.basis, projection.periods
    currency = catalog.currency
    offered = commitment_options(catalog.schedule, monthly)
    best = next((o.quote for o in offered if o.recommended), None)
    return CommitmentOptionsPublic(
        customer=customer.id,
        currency=currency,
        basis=basis,
        basis_periods=list(periods),
        monthly_usage=format_exact(monthly, currency),
        annual_usage=format_exact(monthly * 12, currency),
        options=[commitment_option_public(o, currency) for o in offered],
        recommended=None
        if best is None
        else ChoicePublic(credit=format_exact(best.credit, currency), years=best.years),
    )
