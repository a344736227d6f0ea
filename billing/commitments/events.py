"""The billing events of commitments and credit (docs/webhooks.md): commitment.started and
.ended, credits.granted, .expiring and .expired, each with the object as the API returns
it, written in the transaction of the change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from billing.commitments.models import Commitment
from billing.commitments.public import commitment_public, credit_entry_public
from billing.credits.ledger import Entry
from billing.credits.models import CreditEntry, EntryKind
from billing.db import table_of
from billing.money import format_exact
from billing.notifications.events import emit

_COMMITMENTS = table_of(Commitment)
_ENTRIES = table_of(CreditEntry)
# Credit that becomes available; and credit that is lost (withdrawals on a cancellation are
# reported by commitment.ended instead).
_GRANTED = (EntryKind.GRANT, EntryKind.RELEASE, EntryKind.ROLLOVER, EntryKind.CREDIT_NOTE)
_EXPIRED = (EntryKind.EXPIRY,)
# credits.expiring is sent once, this long before a term ends with credit unused.
EXPIRING_NOTICE = dt.timedelta(days=30)


def commitment_event(
    connection: Connection, event_type: str, commitment_id: str, currency: str, now: dt.datetime
) -> None:
    """commitment.started or commitment.ended, with the commitment as it stands now."""
    row = connection.execute(select(_COMMITMENTS).where(_COMMITMENTS.c.id == commitment_id)).one()
    emit(
        connection,
        event_type,
        customer=row.customer_id,
        data=lambda: commitment_public(row, currency).model_dump(mode="json", by_alias=True),
        now=now,
    )


def ledger_events(
    connection: Connection,
    customer_id: str,
    entries: Iterable[Entry],
    currency: str,
    now: dt.datetime,
) -> None:
    """credits.granted for entries that made credit available, credits.expired for credit
    that expired; entries of 0 (a monthly schedule's grant) say nothing."""
    for entry in entries:
        if entry.amount == 0 or entry.id is None:
            continue
        if entry.kind in _GRANTED:
            event_type = "credits.granted"
        elif entry.kind in _EXPIRED:
            event_type = "credits.expired"
        else:
            continue
        emit(
            connection,
            event_type,
            customer=customer_id,
            data=_entry_data(connection, customer_id, entry.id, currency),
            now=now,
        )


def _entry_data(connection: Connection, customer_id: str, entry_id: int, currency: str) -> Any:
    def build() -> dict[str, Any]:
        key = (_ENTRIES.c.customer_id == customer_id) & (_ENTRIES.c.id == entry_id)
        row = connection.execute(select(_ENTRIES).where(key)).one()
        return credit_entry_public(row, currency).model_dump(mode="json", by_alias=True)

    return build


def expiring_event(
    connection: Connection,
    commitment: Any,
    unused: Any,
    currency: str,
    now: dt.datetime,
) -> None:
    """credits.expiring, once per commitment ever, when its term ends within
    EXPIRING_NOTICE with credit unused (available or not released yet)."""
    if not commitment.ends_at - EXPIRING_NOTICE <= now < commitment.ends_at:
        return
    if unused.total <= 0:
        return

    def build() -> dict[str, Any]:
        return {
            "commitment": commitment_public(commitment, currency).model_dump(
                mode="json", by_alias=True
            ),
            "unused_credit": format_exact(unused.total, currency),
            "expires_at": commitment.ends_at.isoformat(),
        }

    emit(
        connection,
        "credits.expiring",
        customer=commitment.customer_id,
        data=build,
        now=now,
        key=f"credits_expiring_{commitment.id}",
    )
