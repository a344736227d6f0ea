"""Invoice and credit-note numbers: gapless series (INV-000001, CN-000001).

The number comes from `invoice_series` with UPDATE ... RETURNING, which holds the series
row locked until the transaction ends: two transactions issuing at once take consecutive
numbers, and a transaction that rolls back gives its number back, so a series never has a
gap (docs/invoicing.md).

Each number taken is written to `document_number` (series, number) with the document it
numbers, in the same transaction: that table, not the invoice or credit note (keyed by
customer, docs/operations.md "Distribute by customer"), holds the number unique across
customers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from billing.db import insert_many, table_of
from billing.invoicing.models import DocumentNumber

SERIES = "INV"
_DOCUMENT_NUMBERS = table_of(DocumentNumber)


def display_number(series: str, number: int) -> str:
    """A number as people read it: "INV-000123"."""
    return f"{series}-{number:06d}"


def next_number(
    connection: Connection, series: str = SERIES, *, customer_id: str, document_id: str
) -> int:
    """Take the next number of `series` (locked until the transaction ends) for document
    `document_id` of `customer_id`, recorded in `document_number`. On PostgreSQL the bump
    and the record are one statement (a data-modifying WITH), so numbering a document costs
    one round trip as before; SQLite, in process, takes two."""
    values = {"series": series, "customer": customer_id, "document": document_id}
    postgres = connection.dialect.name == "postgresql"
    bump = _BUMP_AND_RECORD if postgres else _BUMP
    taken = connection.execute(bump, values).scalar()
    if taken is None:  # the series' first document
        connection.execute(_FIRST, values)
        taken = connection.execute(bump, values).scalar_one()
    if not postgres:
        connection.execute(_RECORD, {**values, "number": taken})
    return int(taken)


def take_numbers(
    connection: Connection, documents: Sequence[tuple[str, str]], series: str = SERIES
) -> list[int]:
    """Take the next len(`documents`) numbers of `series` in one step, consecutive, one per
    document (customer id, document id) in the order given, each recorded in
    `document_number`: two statements whatever the count (the period close numbers a
    chunk of invoices at once). The series stays locked until the transaction ends, as with
    `next_number`."""
    if not documents:
        return []
    values = {"series": series, "count": len(documents)}
    first = connection.execute(_BUMP_BY, values).scalar()
    if first is None:  # the series' first documents
        connection.execute(_FIRST, values)
        first = connection.execute(_BUMP_BY, values).scalar_one()
    numbers = list(range(int(first), int(first) + len(documents)))
    insert_many(
        connection,
        _DOCUMENT_NUMBERS,
        [
            {"series": series, "number": number, "customer_id": customer, "document_id": doc}
            for number, (customer, doc) in zip(numbers, documents, strict=True)
        ],
    )
    return numbers


# NOTE: statements built once: building one per invoice cost more than running it.
_BUMP = text(
    "UPDATE invoice_series SET next_number = next_number + 1 WHERE series = :series "
    "RETURNING next_number - 1"
)
_BUMP_AND_RECORD = text(
    "WITH taken AS ("
    "UPDATE invoice_series SET next_number = next_number + 1 WHERE series = :series "
    "RETURNING next_number - 1 AS number) "
    "INSERT INTO document_number (series, number, customer_id, document_id) "
    "SELECT :series, number, :customer, :document FROM taken RETURNING number"
)
_BUMP_BY = text(
    "UPDATE invoice_series SET next_number = next_number + :count WHERE series = :series "
    "RETURNING next_number - :count"
)
_RECORD = text(
    "INSERT INTO document_number (series, number, customer_id, document_id) "
    "VALUES (:series, :number, :customer, :document)"
)
_FIRST = text(
    "INSERT INTO invoice_series (series, next_number) VALUES (:series, 1) "
    "ON CONFLICT (series) DO NOTHING"
)
