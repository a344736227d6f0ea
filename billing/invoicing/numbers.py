"""Invoice and credit-note numbers: gapless series (INV-000001, CN-000001).

The number comes from `invoice_series` with UPDATE ... RETURNING, which holds the series
row locked until the transaction ends: two transactions issuing at once take consecutive
numbers, and a transaction that rolls back gives its number back, so a series never has a
gap (docs/invoicing.md).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

SERIES = "INV"


def display_number(series: str, number: int) -> str:
    """A number as people read it: "INV-000123"."""
    return f"{series}-{number:06d}"


def next_number(connection: Connection, series: str = SERIES) -> int:
    """Take the next number of `series` (locked until the transaction ends)."""
    taken = connection.execute(_BUMP, {"series": series}).scalar()
    if taken is None:  # the series' first invoice
        connection.execute(_FIRST, {"series": series})
        taken = connection.execute(_BUMP, {"series": series}).scalar_one()
    return int(taken)


# NOTE: statements built once: building one per invoice cost more than running it.
_BUMP = text(
    "UPDATE invoice_series SET next_number = next_number + 1 WHERE series = :series "
    "RETURNING next_number - 1"
)
_FIRST = text(
    "INSERT INTO invoice_series (series, next_number) VALUES (:series, 1) "
    "ON CONFLICT (series) DO NOTHING"
)
