"""The close reads a chunk's cap history ahead (caps/service.py `read_cap_history_ahead`):
`cap_bound` must answer from it exactly as from its own reads, and never from a history a
cap change in the same transaction made stale."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import event as sa_event

from billing.caps.service import cap_bound, read_cap_history_ahead
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
PRODUCTS = ("product_analytics", "session_replay", "surveys")


def _histories(session, catalog) -> None:
    """c1: capped before October, raised in it, lowered after it; c2: uncapped for part of
    October; c3: capped only after October; c4: never capped."""
    for customer in ("c1", "c2", "c3", "c4"):
        add_customer(session, customer, billing_start=OCT)
    connection = session.connection()
    steps = [
        ("c1", "product_analytics", "50", dt.datetime(2026, 9, 20, tzinfo=dt.UTC)),
        ("c1", "product_analytics", "80", dt.datetime(2026, 10, 10, tzinfo=dt.UTC)),
        ("c1", "product_analytics", "20", dt.datetime(2026, 11, 5, tzinfo=dt.UTC)),
        ("c1", "session_replay", "30", dt.datetime(2026, 10, 3, tzinfo=dt.UTC)),
        ("c2", "product_analytics", "40", dt.datetime(2026, 9, 1, tzinfo=dt.UTC)),
        ("c2", "product_analytics", None, dt.datetime(2026, 10, 12, tzinfo=dt.UTC)),
        ("c2", "product_analytics", "60", dt.datetime(2026, 10, 20, tzinfo=dt.UTC)),
        ("c3", "surveys", "10", dt.datetime(2026, 11, 3, tzinfo=dt.UTC)),
    ]
    for customer, product, amount, at in steps:
        set_cap(
            connection, catalog, customer, product, None if amount is None else Decimal(amount), at
        )
    session.commit()


def _bounds(connection) -> dict[tuple[str, str], Decimal | None]:
    return {
        (customer, product): cap_bound(connection, customer, product, OCT, NOV)
        for customer in ("c1", "c2", "c3", "c4")
        for product in PRODUCTS
    }


def test_the_cap_bound_read_ahead_is_the_bound_read_alone(engine, session, catalog):
    _histories(session, catalog)
    with engine.begin() as connection:
        alone = _bounds(connection)
    with engine.begin() as connection:
        read_cap_history_ahead(connection, ["c1", "c2", "c3", "c4"])
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        sa_event.listen(connection, "before_cursor_execute", count)
        ahead = _bounds(connection)
        sa_event.remove(connection, "before_cursor_execute", count)
    assert ahead == alone
    assert statements == []  # answered from what was read ahead
    assert alone[("c1", "product_analytics")] == Decimal("80")  # the highest within October
    assert alone[("c1", "session_replay")] is None  # uncapped at the start of October
    assert alone[("c2", "product_analytics")] is None  # uncapped from the 12th to the 20th
    assert alone[("c3", "surveys")] is None  # capped only after October
    assert alone[("c4", "surveys")] is None


def test_a_cap_changed_after_the_read_ahead_is_read_again(engine, session, catalog):
    _histories(session, catalog)
    with engine.begin() as connection:
        read_cap_history_ahead(connection, ["c1", "c2"])
        set_cap(connection, catalog, "c1", "session_replay", Decimal("90"), OCT)
        bound = cap_bound(connection, "c1", "session_replay", OCT, NOV)
        other = cap_bound(connection, "c2", "product_analytics", OCT, NOV)
    # the change dated the 1st of October, read back: capped at 90 from the start, at 30
    # from the 3rd (the earlier change): the highest is 90
    assert bound == Decimal("90")
    assert other is None
