"""Raw events (kept for audit and re-aggregation) and the running usage totals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Index, Text, text
from sqlmodel import Field, SQLModel

from billing.db import ExactDecimal, UTCDateTime


class Event(SQLModel, table=True):
    """A raw event, kept for audit and re-aggregation. `product` is what it was sent as
    metering: a product's key, or an event name.

    Keyed by customer, then the start of the billing period it counts in, then its id: the
    customer first so the table can be distributed by customer, the period so that on
    PostgreSQL the table is partitioned by the month its period starts in (declarative
    range partitioning, one partition a month and a default one: metering/partitions.py;
    docs/operations.md, "Partitions"). That an id is stored once across customers and
    months is `EventKey`'s job.
    """

    # WITHOUT ROWID on SQLite: the rows live in the key's b-tree, one b-tree per insert
    __table_args__ = {
        "postgresql_partition_by": "RANGE (period_start)",
        "sqlite_with_rowid": False,
    }

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    id: str = Field(primary_key=True, max_length=200)
    product: str = Field(max_length=64)
    quantity: Decimal = Field(sa_type=ExactDecimal)
    timestamp: dt.datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="accepted", max_length=16)  # accepted | over_limit
    received_at: dt.datetime = Field(sa_type=UTCDateTime)
    # its properties, as compact JSON with sorted keys (docs/metering.md, "Properties")
    properties: str | None = Field(default=None, sa_type=Text)
    # over_limit: the products whose cap refused it, comma-separated (an event may count
    # toward several products: docs/tier-files.md, "Sources")
    over_limit_products: str | None = Field(default=None, max_length=1400)


class EventKey(SQLModel, table=True):
    """The ids of the stored raw events, unique across customers and months: an id seen
    before with the same content is a duplicate, with other content a conflict, whatever
    customer or month it names (docs/metering.md). Written in the same statement as the
    event; deleted with it when it is archived (a re-sent archived event is refused
    `period_closed` by then). A global table: on a cluster distributed by customer it is
    distributed by its own id (docs/operations.md, "Distribute by customer")."""

    __tablename__ = "event_key"
    __table_args__ = {"sqlite_with_rowid": False}

    id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(max_length=64)
    period_start: dt.datetime = Field(sa_type=UTCDateTime)


class Usage(SQLModel, table=True):
    """Running totals per customer, product and period, updated in the ingesting transaction.

    The row also carries the period's quota state (docs/spend-caps.md): the cap and discount its
    `limit_quantity` was computed from, the over-limit tallies, and the alerts fired.
    """

    # NOTE: pages half full on PostgreSQL: every batch rewrites the rows it touches, and a
    # new version that fits on its page skips the indexes (a HOT update; migration 0022)
    __table_args__ = (
        Index(
            "ix_usage_limited",
            "period_end",
            sqlite_where=text("limited"),
            postgresql_where=text("limited"),
        ),
        {"postgresql_with": {"fillfactor": 50}},
    )

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
    period_end: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    cap_amount: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    cap_discount: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    limit_quantity: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    limited: bool = False  # limit_quantity is set and accepted quantity reached it
    over_limit_events: int = 0
    over_limit_quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    alerts_fired: str = Field(default="", max_length=200)  # kinds, comma-separated
    # what invoices (usage lines and adjustments) have billed of this period so far: the next
    # close bills the difference when late usage moved the billed quantity (docs/invoicing.md)
    # what invoices had billed and shown capped of the row when late usage of it was last
    # adjusted or its period re-issued (0 until then): a record, never an input; what a
    # period has been billed is summed from the standing invoices' lines
    # (invoicing/carried.py)
    invoiced_quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    capped_quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)  # shown, not billed
    amended: bool = False  # moved since an invoice billed it (late usage): the next adjusts


class UsageBreakdown(SQLModel, table=True):
    """The part of a running total that one breakdown holds: a product's accepted quantity
    per value of its dimensions (docs/tier-files.md, "Dimensions"), written with the running
    total, under its lock. `dimensions` is the compact JSON of the values, e.g.
    {"project":"web"}; values beyond the product's max_dimension_values fold into "(other)"."""

    __tablename__ = "usage_breakdown"
    # NOTE: room on each page for the parts a batch rewrites (HOT updates; migration 0022)
    __table_args__ = {"postgresql_with": {"fillfactor": 70}}

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    dimensions: str = Field(primary_key=True, max_length=1000)
    quantity: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    events: int = 0


class UsageUnique(SQLModel, table=True):
    """A value seen this period by a product aggregated by unique_count (its quantity is the
    number of these rows; docs/tier-files.md, "Aggregations"): one row per distinct value
    of its `unique_property`, written with the running total, under its lock."""

    __tablename__ = "usage_unique"

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    value: str = Field(primary_key=True, max_length=200)


class UsageLatest(SQLModel, table=True):
    """When the reading that stands was taken, for a product aggregated by latest (its
    quantity is that reading): later readings replace it, earlier ones arriving late do not."""

    __tablename__ = "usage_latest"

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(primary_key=True, max_length=64)
    period_start: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    taken_at: dt.datetime = Field(sa_type=UTCDateTime)
