"""Starting, topping up and running commitments; drawing a period's usage from credit.

Everything a commitment does happens in one transaction with the customer's row locked:
the commitment row, its up-front invoice and its ledger entries are written together or
not at all, and two requests racing to start one for the same customer cannot both win
(the lock, and on every database a unique index on the customer's active commitment).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from billing.catalog import Catalog
from billing.commitments.events import (
    EXPIRING_NOTICE,
    commitment_event,
    expiring_event,
    ledger_events,
)
from billing.commitments.models import Commitment, CommitmentStatus
from billing.credits import ledger
from billing.credits.models import CreditEntry, EntryKind
from billing.customers.periods import is_closed, period_for
from billing.customers.service import lock_customer
from billing.db import table_of
from billing.errors import (
    BillingError,
    CommitmentBelowRunning,
    CommitmentCreditUsed,
    CommitmentRunning,
    InvalidAmount,
    NoCommitmentSchedule,
    NotFound,
    TopupWindowClosed,
)
from billing.invoicing.calculate import LineIn
from billing.invoicing.issue import Issued, issue_invoice
from billing.invoicing.models import InvoiceKind, LineKind
from billing.money import (
    EXACT,
    ZERO,
    billing_digits,
    divide_to_billing_unit,
    fraction_digits,
    round_to_billing_unit,
)
from billing.pricing.commitments import (
    MONTHS_PER_YEAR,
    Bracket,
    CommitmentSchedule,
    Release,
    price_per_year,
)

_INSTANT = dt.timedelta(microseconds=1)


def _schedule(catalog: Catalog) -> CommitmentSchedule:
    if catalog.schedule is None:
        raise NoCommitmentSchedule(
            "this catalogue offers no commitments (no discounts.toml)", field="credit"
        )
    return catalog.schedule


def _flat_field(error: BillingError) -> BillingError:
    """The pricing core names fields as in a quote ("commitment.years"); here they are flat."""
    if error.field and error.field.startswith("commitment."):
        error.field = error.field.removeprefix("commitment.")
    return error


def _check_credit(amount: Decimal, currency: str, name: str = "credit") -> None:
    digits = billing_digits(currency)
    if fraction_digits(amount) > digits:
        raise InvalidAmount(
            f"{name}: {currency} amounts have at most {digits} decimal places, got {amount:f}",
            field=name,
        )
    if amount <= 0:
        raise InvalidAmount(f"{name}: must be more than 0, got {amount:f}", field=name)


def _add_years(at: dt.datetime, years: int) -> dt.datetime:
    return at.replace(year=at.year + years)  # period starts fall on days 1-28


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _active(connection: Connection, customer_id: str) -> Any:
    table = table_of(Commitment)
    query = select(table).where(
        table.c.customer_id == customer_id, table.c.status == CommitmentStatus.ACTIVE
    )
    return connection.execute(query).first()


@dataclass
class Outcome:
    """What an operation did: the commitment, invoices issued, ledger entries written."""

    commitment_id: str
    invoices: list[Issued] = field(default_factory=list)
    entries: list[ledger.Entry] = field(default_factory=list)


def start(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    credit: Decimal,
    years: int,
    now: dt.datetime,
) -> Outcome:
    """Start a commitment from the current billing period; invoice its first year."""
    schedule = _schedule(catalog)
    _check_credit(credit, schedule.currency)
    try:
        bracket = schedule.bracket_for(credit, years)
    except BillingError as error:
        raise _flat_field(error) from None
    customer = lock_customer(connection, customer_id)
    running = _active(connection, customer_id)
    if running is not None and running.ends_at <= now:  # its term is over: settle it first
        _run_schedule(connection, catalog, running.id, now, Outcome(running.id))
        running = _active(connection, customer_id)
    if running is not None and running.ends_at <= now:
        raise CommitmentRunning(
            f"the running commitment's term ended on {running.ends_at.date().isoformat()}; "
            "it ends once its last period is closed (within the close grace), then a new one "
            "can start",
            field="credit",
        )
    if running is not None:
        until = running.ends_at.date().isoformat()
        if credit < running.credit:
            raise CommitmentBelowRunning(
                f"a commitment of {_money(running.credit)} {schedule.currency} a year runs "
                f"until {until}; a smaller one can start then",
                field="credit",
            )
        raise CommitmentRunning(
            f"a commitment runs until {until}; add credit to it with POST "
            f".../commitment/topup in the first {schedule.topup_months} months of a "
            "contract year, or choose a new one when it ends",
            field="credit",
        )
    period = period_for(customer.anchor_day, now)
    commitment_id = "cmt_" + secrets.token_hex(8)
    table = table_of(Commitment)
    try:
        with connection.begin_nested():
            connection.execute(
                insert(table).values(
                    id=commitment_id,
                    customer_id=customer_id,
                    status=CommitmentStatus.ACTIVE,
                    years=years,
                    credit=credit,
                    discount_percent=bracket.discount_percent,
                    bracket_min_credit=bracket.min_credit,
                    price_per_year=price_per_year(credit, bracket, schedule.currency),
                    release=schedule.release.value,
                    starts_at=period.start,
                    ends_at=_add_years(period.start, years),
                    invoiced_years=0,
                    released_through=None,
                    created_at=now,
                )
            )
    except IntegrityError:  # another request started one between our read and insert
        raise CommitmentRunning(
            "a commitment was just started for this customer", field="credit"
        ) from None
    outcome = Outcome(commitment_id)
    _run_schedule(connection, catalog, commitment_id, now, outcome, announce=False)
    rolled = _roll_over(
        connection, catalog, customer_id, _commitment(connection, commitment_id), now
    )
    if rolled is not None:
        outcome.entries.append(rolled)
    commitment_event(connection, "commitment.started", commitment_id, schedule.currency, now)
    ledger_events(connection, customer_id, outcome.entries, schedule.currency, now)
    return outcome


def _commitment(connection: Connection, commitment_id: str) -> Any:
    table = table_of(Commitment)
    return connection.execute(select(table).where(table.c.id == commitment_id)).one()


def _year_invoice(
    connection: Connection,
    catalog: Catalog,
    row: Any,
    year: int,
    credit: Decimal,
    now: dt.datetime,
    what: str,
) -> Issued:
    schedule = _schedule(catalog)
    bracket = Bracket(row.years, row.bracket_min_credit, row.discount_percent)
    price = price_per_year(credit, bracket, schedule.currency)
    year_start = _add_years(row.starts_at, year - 1)
    description = (
        f"{what}: {_money(credit)} {schedule.currency} of usage credit, contract year {year} "
        f"of {row.years} ({year_start.date()} to {_add_years(year_start, 1).date()}), "
        f"{row.discount_percent.normalize():f}% commitment discount"
    )
    return issue_invoice(
        connection,
        customer_id=row.customer_id,
        kind=InvoiceKind.COMMITMENT,
        currency=schedule.currency,
        lines=[
            LineIn(
                kind=LineKind.COMMITMENT,
                description=description,
                quantity=Decimal(1),
                unit_amount=price,
                amount=price,
            )
        ],
        now=now,
        reference=row.id,
        period=(year_start, _add_years(year_start, 1)),
    )


def _release_amount(credit: Decimal, index: int, currency: str) -> Decimal:
    """The index-th (1..12) monthly release of a year's credit; the twelve sum to it exactly."""

    def upto(k: int) -> Decimal:
        return divide_to_billing_unit(EXACT.multiply(credit, Decimal(k)), MONTHS_PER_YEAR, currency)

    return EXACT.subtract(upto(index), upto(index - 1))


def _run_schedule(
    connection: Connection,
    catalog: Catalog,
    commitment_id: str,
    now: dt.datetime,
    outcome: Outcome,
    *,
    announce: bool = True,
) -> None:
    """Invoice contract years, release credit and end the term, as far as `now` reaches;
    with `announce`, the billing events of what it did (commitments/events.py).

    The commitment is read again under its customer's lock, so two runs at once (two
    processes) never act on the same progress twice.
    """
    first_entry = len(outcome.entries)
    schedule = _schedule(catalog)
    currency = schedule.currency
    table = table_of(Commitment)
    owner = connection.execute(
        select(table.c.customer_id).where(table.c.id == commitment_id)
    ).scalar_one()
    customer = lock_customer(connection, owner)
    row = _commitment(connection, commitment_id)
    if row.status != CommitmentStatus.ACTIVE:
        return
    invoiced = row.invoiced_years
    released_through = row.released_through
    # Contract years that have started: invoice each once, grant its credit.
    while invoiced < row.years and _add_years(row.starts_at, invoiced) <= now:
        invoiced += 1
        issued = _year_invoice(connection, catalog, row, invoiced, row.credit, now, "Commitment")
        outcome.invoices.append(issued)
        upfront = row.release == Release.UPFRONT.value
        note = f"{_money(row.credit)} {currency} for contract year {invoiced}" + (
            "" if upfront else "; released one twelfth a period"
        )
        outcome.entries.append(
            ledger.append(
                connection,
                row.customer_id,
                EntryKind.GRANT,
                row.credit if upfront else ZERO,
                now,
                commitment_id=row.id,
                reference=issued.id,
                period_start=_add_years(row.starts_at, invoiced - 1),
                note=note,
            )
        )
    # Monthly releases: one per billing period started within the term. NOTE: the period
    # pipeline's order (docs/invoicing.md): a period's credit is released only once the
    # period before it is closed and has drawn its credit, so which job runs first never
    # changes what a period draws; the term's first period is released at once.
    closed_through = customer.closed_through
    if row.release == Release.MONTHLY.value:
        period = period_for(customer.anchor_day, row.starts_at)
        first = period.start
        index = 0
        while (
            period.start < row.ends_at
            and period.start <= now
            and (period.start == first or is_closed(closed_through, period.start - _INSTANT))
        ):
            index += 1
            if released_through is None or period.start > released_through:
                amount = _release_amount(row.credit, (index - 1) % MONTHS_PER_YEAR + 1, currency)
                outcome.entries.append(
                    ledger.append(
                        connection,
                        row.customer_id,
                        EntryKind.RELEASE,
                        amount,
                        now,
                        commitment_id=row.id,
                        period_start=period.start,
                        note=f"period {period.label}",
                    )
                )
                released_through = period.start
            period = period_for(customer.anchor_day, period.end)
    values: dict[str, Any] = {"invoiced_years": invoiced, "released_through": released_through}
    # The term ends once its last period is closed and has drawn its credit.
    if row.ends_at <= now and is_closed(closed_through, row.ends_at - _INSTANT):
        left = ledger.balances(connection, row.customer_id).commitment
        if left > 0:
            outcome.entries.append(
                ledger.append(
                    connection,
                    row.customer_id,
                    EntryKind.EXPIRY,
                    -left,
                    now,
                    commitment_id=row.id,
                    note=f"unused credit at the end of the term on {row.ends_at.date()}",
                )
            )
        share = EXACT.divide(EXACT.multiply(left, schedule.rollover_percent), Decimal(100))
        values.update(
            status=CommitmentStatus.ENDED,
            rollover_amount=round_to_billing_unit(share, currency),
            rollover_until=period_for(customer.anchor_day, row.ends_at).end,
        )
    connection.execute(update(table).where(table.c.id == row.id).values(**values))
    if not announce:
        return
    ledger_events(connection, row.customer_id, outcome.entries[first_entry:], currency, now)
    if values.get("status") == CommitmentStatus.ENDED:
        commitment_event(connection, "commitment.ended", row.id, currency, now)
    elif row.ends_at - EXPIRING_NOTICE <= now < row.ends_at:
        expiring_event(connection, row, unused_credit(connection, row.id, now), currency, now)


def _roll_over(
    connection: Connection, catalog: Catalog, customer_id: str, new: Any, now: dt.datetime
) -> ledger.Entry | None:
    """Move the share of the last term's unused credit into `new`, if it qualifies.

    A renewal qualifies when it starts before the last term's `rollover_until` (the end of
    the billing period in which that term ended) with at least the same annual credit.
    """
    table = table_of(Commitment)
    previous = connection.execute(
        select(table)
        .where(table.c.customer_id == customer_id, table.c.status == CommitmentStatus.ENDED)
        .order_by(table.c.ends_at.desc())
        .limit(1)
    ).first()
    if (
        previous is None
        or previous.rolled_into is not None
        or not previous.rollover_amount
        or previous.rollover_until is None
        or now >= previous.rollover_until
        or new.credit < previous.credit
    ):
        return None
    connection.execute(update(table).where(table.c.id == previous.id).values(rolled_into=new.id))
    percent = _schedule(catalog).rollover_percent.normalize()
    return ledger.append(
        connection,
        customer_id,
        EntryKind.ROLLOVER,
        previous.rollover_amount,
        now,
        commitment_id=new.id,
        reference=previous.id,
        note=f"{percent:f}% of the credit unused when {previous.id} ended",
    )


def run_due(connection: Connection, catalog: Catalog, now: dt.datetime) -> list[Outcome]:
    """Every active commitment's invoices, releases and term ends up to now, as far as the
    customers' closed periods allow (the jobs go through billing/pipeline.py, which closes
    periods and runs this per customer in order)."""
    table = table_of(Commitment)
    ids = connection.execute(
        select(table.c.id)
        .where(table.c.status == CommitmentStatus.ACTIVE)
        .order_by(table.c.customer_id)
    ).scalars()
    outcomes = []
    for commitment_id in list(ids):
        outcome = Outcome(commitment_id)
        _run_schedule(connection, catalog, commitment_id, now, outcome)
        if outcome.invoices or outcome.entries:
            outcomes.append(outcome)
    return outcomes


def run_for_customer(
    connection: Connection, catalog: Catalog, customer_id: str, now: dt.datetime
) -> Outcome | None:
    """Move the customer's running commitment as far as `now` and its closed periods allow;
    what it did, or None without a running commitment."""
    running = _active(connection, customer_id)
    if running is None:
        return None
    outcome = Outcome(running.id)
    _run_schedule(connection, catalog, running.id, now, outcome)
    return outcome


def customers_with_commitments(
    connection: Connection, ids: Sequence[str] | None = None
) -> set[str]:
    """Customers (among `ids`, or all) with a running commitment."""
    table = table_of(Commitment)
    query = select(table.c.customer_id).where(table.c.status == CommitmentStatus.ACTIVE)
    if ids is not None:
        query = query.where(table.c.customer_id.in_(list(ids)))
    return set(connection.execute(query).scalars())


def topup(
    connection: Connection, catalog: Catalog, customer_id: str, amount: Decimal, now: dt.datetime
) -> Outcome:
    """Add credit to the current contract year at the running bracket, inside the window.

    The added credit is invoiced at once (discounted by the running bracket) and becomes
    available at once. Later contract years keep the credit chosen at the start.
    """
    schedule = _schedule(catalog)
    _check_credit(amount, schedule.currency)
    lock_customer(connection, customer_id)
    row = _active(connection, customer_id)
    if row is None:
        raise NotFound("no running commitment to top up; start one instead", field="customer")
    year, year_start, window_end = topup_window(row.starts_at, schedule.topup_months, now)
    if now >= window_end:
        next_window = _add_years(year_start, 1)
        when = (
            f"the next window opens on {next_window.date()}"
            if next_window < row.ends_at
            else f"a new commitment can start when this one ends on {row.ends_at.date()}"
        )
        raise TopupWindowClosed(
            f"top-ups keep the bracket only in the first {schedule.topup_months} months of a "
            f"contract year (this window closed on {window_end.date()}); {when}",
            field="credit",
        )
    outcome = Outcome(row.id)
    issued = _year_invoice(connection, catalog, row, year + 1, amount, now, "Commitment top-up")
    outcome.invoices.append(issued)
    outcome.entries.append(
        ledger.append(
            connection,
            customer_id,
            EntryKind.GRANT,
            amount,
            now,
            commitment_id=row.id,
            reference=issued.id,
            note=f"top-up of {_money(amount)} {schedule.currency}, available at once",
        )
    )
    ledger_events(connection, customer_id, outcome.entries, schedule.currency, now)
    return outcome


def topup_window(
    starts_at: dt.datetime, topup_months: int, now: dt.datetime
) -> tuple[int, dt.datetime, dt.datetime]:
    """The contract year running at `now` (0-based), its start, and the end of its top-up
    window (top-ups keep the bracket from the year's start until then)."""
    year = 0
    while _add_years(starts_at, year + 1) <= now:
        year += 1
    year_start = _add_years(starts_at, year)
    return year, year_start, _add_months(year_start, topup_months)


def _add_months(at: dt.datetime, months: int) -> dt.datetime:
    index = at.month - 1 + months
    return at.replace(year=at.year + index // 12, month=index % 12 + 1)  # days 1-28


@dataclass(frozen=True, slots=True)
class Unused:
    """A running commitment's credit not used yet (major units): available in the balance
    now, and the running contract year's credit not released yet; and what was used."""

    available: Decimal
    unreleased: Decimal
    used: Decimal

    @property
    def total(self) -> Decimal:
        return EXACT.add(self.available, self.unreleased)


def unused_credit(connection: Connection, commitment_id: str, now: dt.datetime) -> Unused:
    """What of a commitment's credit is still unused (the caller holds the customer's lock)."""
    row = _commitment(connection, commitment_id)
    available = ledger.balances(connection, row.customer_id).commitment
    entries = table_of(CreditEntry)
    granted = connection.execute(
        select(func.coalesce(func.sum(entries.c.amount), 0)).where(
            entries.c.commitment_id == commitment_id,
            entries.c.kind.in_((EntryKind.GRANT, EntryKind.RELEASE, EntryKind.ROLLOVER)),
        )
    ).scalar_one()
    unreleased = ZERO
    if row.release == Release.MONTHLY.value and row.status == CommitmentStatus.ACTIVE:
        _, year_start, _ = topup_window(row.starts_at, 0, now)
        released = connection.execute(
            select(func.coalesce(func.sum(entries.c.amount), 0)).where(
                entries.c.commitment_id == commitment_id,
                entries.c.kind == EntryKind.RELEASE,
                entries.c.period_start >= year_start,
            )
        ).scalar_one()
        unreleased = max(EXACT.subtract(row.credit, Decimal(released)), ZERO)
    used = max(EXACT.subtract(Decimal(granted), available), ZERO)
    return Unused(available=available, unreleased=unreleased, used=used)


def cancel(
    connection: Connection,
    commitment_id: str,
    now: dt.datetime,
    *,
    why: str,
    allow_used: bool,
    currency: str,
) -> Unused | None:
    """Cancel a running commitment: nothing more is released, invoiced or drawn from it,
    and its credit still available is withdrawn from the balance (docs/discounts.md,
    "Cancelling"). None when it is not running (already ended or cancelled).

    Raises CommitmentCreditUsed when some of its credit was drawn and `allow_used` is off
    (a void must not leave usage covered by credit nobody pays for).
    """
    owner = _commitment(connection, commitment_id).customer_id
    lock_customer(connection, owner)
    row = _commitment(connection, commitment_id)
    if row.status != CommitmentStatus.ACTIVE:
        return None
    unused = unused_credit(connection, commitment_id, now)
    if unused.used > 0 and not allow_used:
        raise CommitmentCreditUsed(
            f"{_money(unused.used)} {currency} of this commitment's credit has been used: it "
            "cannot be voided; credit the unused part with a credit note instead",
            field="invoice",
        )
    if unused.available > 0:
        ledger.append(
            connection,
            owner,
            EntryKind.WITHDRAWAL,
            -unused.available,
            now,
            commitment_id=commitment_id,
            note=f"credit of cancelled commitment {commitment_id} withdrawn: {why}",
        )
    table = table_of(Commitment)
    connection.execute(
        update(table).where(table.c.id == commitment_id).values(status=CommitmentStatus.CANCELLED)
    )
    commitment_event(connection, "commitment.ended", commitment_id, currency, now)
    return unused
