"""Conservation, on SQLite and PostgreSQL: a random schedule of customers with various billing
starts, events (backdated, late, in the future, duplicated, conflicting, malformed), cap and
discount changes, commitments, voids of open usage invoices (re-issued or written off), and
the close and commitments jobs in random order, with the clock stepping forward. Afterwards
every accepted unit is on exactly one line (usage, capped) or adjustment of the period it
belongs to, among the standing invoices (not void, or void without a replacement: written
off), every other event was answered duplicate, over_limit or rejected, and no period is
billed above its cap.

The catalogue counts some events toward several products (docs/tier-files.md, "Sources"):
identified events is an add-on over product analytics' events with a `person_mode` filter,
and feature flags count a local evaluation ten times. Every accepted unit is then on exactly
one line of each product that counted it, times that product's multiplier.

The schedule's clock is an input: each step runs frozen at its time (a close never runs ahead
of the clock, so the clock must move for periods to close)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import shutil
from collections import defaultdict
from decimal import Decimal as D
from typing import Any

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.catalog.loader import load_catalog
from billing.catalog.models import LatePolicy
from billing.commitments import service as commitments
from billing.commitments.discounts import set_discount
from billing.corrections.void import void
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.customers.periods import period_for
from billing.db import table_of
from billing.errors import BillingError
from billing.invoicing.models import Invoice, InvoiceLine
from billing.metering import quota as quota_service
from billing.metering import service as metering_service
from billing.pipeline import close_due, run_commitments
from tests.conftest import TIERS

PRODUCTS = ("product_analytics", "session_replay")
# what events are sent as: (field, name) and the 100 % quantity
METERS = (
    ("product", "product_analytics"),
    ("product", "session_replay"),
    ("event", "flag_local_evaluation"),
)
QUANTITY = {"product_analytics": 700_000, "session_replay": 6_000, "flag_local_evaluation": 90_000}
CAPPED = (*PRODUCTS, "identified_events", "identified_events", "feature_flags")
IDENTIFIED = """
key = "identified_events"
name = "Identified events"
unit = "event"
currency = "USD"
model = "graduated"
sources = [{ event = "product_analytics" }]
where = { person_mode = ["full"] }

[[versions]]
effective_from = 2024-01-01
tiers = [{ up_to = 100_000, unit_price = "0" }, { up_to = "inf", unit_price = "0.0001" }]
"""
T0 = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
examples = itertools.count()

customer_st = st.fixed_dictionaries(
    {
        "anchor": st.sampled_from([1, 1, 15, 28]),
        "start_days_back": st.integers(0, 60),
    }
)
event_st = st.fixed_dictionaries(
    {
        "customer": st.integers(0, 2),
        "meter": st.sampled_from(METERS),
        "person_mode": st.sampled_from([None, "full", "full", "anonymous"]),
        "share": st.one_of(st.integers(1, 100), st.just(0)),  # percent of QUANTITY
        # minutes before the clock: negative is in the future (beyond 5 minutes: refused)
        "minutes_back": st.one_of(
            st.integers(-30, 60), st.integers(0, 60 * 24 * 30), st.integers(0, 60 * 24 * 90)
        ),
        "kind": st.sampled_from(["new"] * 6 + ["resend", "conflict", "malformed"]),
    }
)
events_st = st.tuples(st.just("events"), st.lists(event_st, min_size=1, max_size=6))
tick_st = st.tuples(st.just("tick"), st.integers(1, 24 * 25))
close_st = st.tuples(st.just("close"))
step_st = st.one_of(
    events_st,
    events_st,
    events_st,
    tick_st,
    tick_st,
    close_st,
    st.tuples(st.just("commitments")),
    st.tuples(
        st.just("cap"),
        st.integers(0, 2),
        st.sampled_from(CAPPED),
        st.sampled_from([None, D("0.50"), D("2.00"), D("10.00"), D("40.00")]),
    ),
    st.tuples(st.just("discount"), st.integers(0, 2), st.sampled_from([None, D(10), D(20), D(50)])),
    st.tuples(st.just("commit"), st.integers(0, 2)),
    # void the customer's n-th open usage invoice, re-issued or not
    st.tuples(st.just("void"), st.integers(0, 2), st.integers(0, 5), st.booleans()),
)
schedule_st = st.fixed_dictionaries(
    {
        "customers": st.lists(customer_st, min_size=1, max_size=3),
        "late": st.one_of(st.none(), st.integers(0, 20)),  # None: reject; days: amend window
        "steps": st.lists(step_st, min_size=4, max_size=30),
    }
)


@dataclasses.dataclass(frozen=True)
class Sent:
    id: str
    customer: str
    meter: tuple[str, str]  # ("product" or "event", its name)
    quantity: D
    at: dt.datetime
    person_mode: str | None = None

    def raw(self) -> dict[str, Any]:
        made: dict[str, Any] = {
            "id": self.id,
            "customer": self.customer,
            self.meter[0]: self.meter[1],
            "quantity": str(self.quantity),
            "timestamp": self.at.isoformat(),
        }
        if self.person_mode is not None:
            made["properties"] = {"person_mode": self.person_mode}
        return made


class Run:
    """The schedule's world as the test sees it: what was sent, what each answer said, the
    caps in force over time."""

    def __init__(self, engine: Any, catalog: Any, prefix: str) -> None:
        self.engine, self.catalog, self.prefix = engine, catalog, prefix
        self.clock = T0
        self.customers: list[tuple[str, int]] = []  # (id, anchor)
        self.sent: list[Sent] = []
        self.accepted: dict[str, Sent] = {}
        # accepted id -> (product, quantity) of each product that counted it
        self.counted: dict[str, list[tuple[str, D]]] = {}
        self.answered = 0
        self.batches = 0
        self.ids = itertools.count()
        self.caps: dict[tuple[str, str], list[tuple[dt.datetime, D | None]]] = defaultdict(list)

    def at(self, index: int) -> tuple[str, int]:
        return self.customers[index % len(self.customers)]

    def send(self, specs: list[dict[str, Any]]) -> None:
        batch: list[Any] = []
        for spec in specs:
            customer, _ = self.at(spec["customer"])
            quantity = D(QUANTITY[spec["meter"][1]] * spec["share"]) / 100
            stamp = self.clock - spec["minutes_back"] * MINUTE
            if spec["kind"] == "resend" and self.sent:
                batch.append(self.sent[len(self.sent) // 2].raw())
                continue
            event_id = f"{self.prefix}e{next(self.ids)}"
            if spec["kind"] == "conflict" and self.sent:
                event_id = self.sent[-1].id  # the same id with (likely) other content
            mode = spec["person_mode"]
            sent = Sent(event_id, customer, spec["meter"], quantity, stamp, mode)
            raw = sent.raw()
            if spec["kind"] == "malformed":
                raw["quantity"] = "-1"
            else:
                self.sent.append(sent)
            batch.append(raw)
        with freeze_time(self.clock), self.engine.begin() as connection:
            result = metering_service.ingest(
                connection=connection, catalog=self.catalog, raw_events=batch, now=self.clock
            )
        self.batches += 1
        # every event is answered exactly once
        answered = set(result.outcomes) | set(result.over_limit_ids)
        answered |= {r.index for r in result.rejected}
        assert answered == set(range(len(batch)))
        refused_by_all = set(result.over_limit_ids) - set(result.outcomes)
        assert result.accepted + result.duplicates + len(refused_by_all) + len(
            result.rejected
        ) == len(batch)
        for index in range(len(batch)):
            raw = batch[index]
            if index not in result.over_limit_ids and result.outcomes.get(index) != "accepted":
                assert index in {r.index for r in result.rejected} or (
                    result.outcomes.get(index) == "duplicate"
                )
                continue
            assert raw["id"] not in self.accepted, "an event accepted twice"
            name = raw.get("product") or raw["event"]
            properties = {k: str(v) for k, v in raw.get("properties", {}).items()}
            selected = self.catalog.counted_by(name, properties)
            refused = result.over_limit_products.get(index, [])
            # accepted: counted by a product at least; over_limit: refused by one at least
            assert (result.outcomes.get(index) == "accepted") == (len(refused) < len(selected))
            if len(selected) > 1:
                event("an event counted by two products")
            if refused:
                event(f"over_limit for {'+'.join(sorted(refused))} of {len(selected)}")
            if 0 < len(refused) < len(selected):
                event("an event refused by one of its products' caps, billed by the other")
            quantity = D(raw["quantity"])
            self.accepted[raw["id"]] = Sent(
                raw["id"],
                raw["customer"],
                ("product", name),
                quantity,
                dt.datetime.fromisoformat(raw["timestamp"]),
            )
            self.counted[raw["id"]] = [
                (product, quantity * multiplier)
                for product, multiplier in selected
                if product not in refused
            ]

    def job(self, job: Any) -> None:
        with freeze_time(self.clock):
            job(self.engine, self.catalog, self.clock, GRACE)

    def change(self, action: Any) -> None:
        """A change made by an admin; a refusal (say, a second commitment) is an answer too."""
        with freeze_time(self.clock), self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    action(connection)
            except BillingError as error:
                event(f"refused: {type(error).__name__}")


def bound(history: list[tuple[dt.datetime, D | None]], start: dt.datetime, end: dt.datetime):
    """The highest cap during [start, end); None when uncapped at some time in it."""
    at_start = None
    for changed_at, amount in history:
        if changed_at <= start:
            at_start = amount
    caps = [at_start, *(amount for changed_at, amount in history if start < changed_at < end)]
    return None if any(c is None for c in caps) else max(caps)


def _late_then_void(which: int, reissue: bool = True, discount: D | None = None) -> dict[str, Any]:
    """A schedule that found a double bill and a lost adjustment: January closed, late
    January usage adjusted on February's invoice, then (after a new `discount`, which
    once made a replacement's total negative) one of them voided."""
    sent = {"customer": 0, "person_mode": None, "share": 100, "kind": "new"}
    analytics = {**sent, "meter": ("product", "product_analytics")}
    return {
        "customers": [{"anchor": 1, "start_days_back": 0}],
        "late": 20,
        "steps": [
            ("events", [{**analytics, "minutes_back": 0}]),
            ("tick", 24 * 25),
            ("close",),
            ("events", [{**analytics, "minutes_back": 60 * 24 * 10}]),  # 25 January
            ("tick", 24 * 25),
            ("tick", 24),
            ("close",),
            *([("discount", 0, discount)] if discount is not None else []),
            ("void", 0, which, reissue),
        ],
    }


@pytest.fixture(scope="module")
def sourced_catalog(tmp_path_factory):
    """The shipped catalogue (feature flags count a local evaluation ten times) with
    identified events as an add-on over analytics events of identified persons."""
    directory = tmp_path_factory.mktemp("tiers") / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "identified_events.toml").write_text(IDENTIFIED)
    return load_catalog(directory)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=schedule_st)
@example(schedule=_late_then_void(0))  # re-issue January after February adjusted it
@example(schedule=_late_then_void(1))  # re-issue February, which adjusted January
@example(schedule=_late_then_void(1, reissue=False))  # write February off
@example(schedule=_late_then_void(0, discount=D(50)))  # re-issue January at 50 % off
def test_every_accepted_unit_ends_on_exactly_one_line_whatever_the_schedule(
    engine, sourced_catalog, schedule
):
    catalog = sourced_catalog
    prefix = f"x{next(examples)}_"
    note(f"schedule: {schedule!r}")
    late = schedule["late"]
    policy = LatePolicy(False) if late is None else LatePolicy(True, dt.timedelta(days=late))
    run = Run(engine, dataclasses.replace(catalog, late_usage=policy), prefix)
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    with freeze_time(T0), engine.begin() as connection:
        for number, spec in enumerate(schedule["customers"]):
            customer = f"{prefix}c{number}"
            customers_service.create_customer(
                connection=connection,
                data=CustomerCreate(
                    id=customer,
                    name=customer,
                    billing_anchor_day=spec["anchor"],
                    billing_start=T0 - dt.timedelta(days=spec["start_days_back"]),
                ),
                currency="USD",
                now=T0,
            )
            run.customers.append((customer, spec["anchor"]))
    for step in schedule["steps"]:
        match step:
            case ("events", specs):
                run.send(specs)
            case ("tick", hours):
                run.clock += dt.timedelta(hours=hours)
            case ("close",):
                run.job(close_due)
            case ("commitments",):
                run.job(run_commitments)
            case ("cap", index, product, amount):
                customer, _ = run.at(index)

                def cap(connection, customer=customer, product=product, amount=amount):
                    quota_service.set_cap(
                        connection=connection,
                        catalog=run.catalog,
                        customer_id=customer,
                        product=product,
                        amount=amount,
                        actor="test",
                        now=run.clock,
                    )

                run.change(cap)
                run.caps[customer, product].append((run.clock, amount))
            case ("discount", index, percent):
                customer, _ = run.at(index)
                run.change(
                    lambda connection, customer=customer, percent=percent: set_discount(
                        connection=connection,
                        catalog=run.catalog,
                        customer_id=customer,
                        percent=percent,
                        reason="test",
                        until=None,
                        now=run.clock,
                    )
                )
            case ("void", index, which, reissue):
                customer, _ = run.at(index)

                def cancel(connection, customer=customer, which=which, reissue=reissue):
                    open_ = list(
                        connection.execute(
                            select(invoices.c.id)
                            .where(invoices.c.customer_id == customer)
                            .where(invoices.c.kind == "usage")
                            .where(invoices.c.status.in_(["finalized", "payment_failed"]))
                            .order_by(invoices.c.number)
                        ).scalars()
                    )
                    if open_:
                        event(f"a void, {'re-issued' if reissue else 'written off'}")
                        void(
                            connection,
                            run.catalog,
                            open_[which % len(open_)],
                            reason="test",
                            actor="test",
                            now=run.clock,
                            reissue=reissue,
                        )

                run.change(cancel)
            case ("commit", index):
                customer, _ = run.at(index)
                run.change(
                    lambda connection, customer=customer: commitments.start(
                        connection, run.catalog, customer, D(3000), 1, run.clock
                    )
                )
        run.clock += MINUTE
    # Let every period with usage end, and close: everything accepted is now invoiced.
    last = max([run.clock, *(s.at for s in run.accepted.values())])
    run.clock = period_for(1, last + dt.timedelta(days=32)).start + dt.timedelta(days=29)
    run.job(close_due)
    run.job(run_commitments)
    run.job(close_due)

    query = (
        select(
            invoices.c.id,
            invoices.c.status,
            invoices.c.customer_id,
            invoices.c.period_start,
            lines.c.kind,
            lines.c.product,
            lines.c.quantity,
            lines.c.amount,
            lines.c.corrects_period,
        )
        .join(lines, lines.c.invoice_id == invoices.c.id)
        .where(invoices.c.customer_id.like(f"{prefix}%"), invoices.c.kind == "usage")
    )
    with engine.connect() as connection:
        replaced = set(
            connection.execute(select(invoices.c.replaces).where(invoices.c.replaces.is_not(None)))
            .scalars()
            .all()
        )
        # standing invoices: not void, or void without a replacement (written off: what
        # they billed is never billed again, so their lines still hold their units)
        found = [
            row
            for row in connection.execute(query)
            if row.status != "void" or row.id not in replaced
        ]
    note(f"lines: {[tuple(r) for r in found]!r}")
    sent = sorted((s.at, s.customer, s.meter, s.quantity) for s in run.accepted.values())
    note(f"accepted: {sent!r}")
    event(f"invoice lines: {min(len(found), 10)}+")
    event(f"accepted: {min(len(run.accepted), 5)}+")
    event("an adjustment" if any(r.kind == "adjustment" for r in found) else "no adjustment")
    event("a capped line" if any(r.kind == "capped" for r in found) else "no capped line")
    billed: dict[tuple[str, str, dt.datetime], D] = defaultdict(D)
    amounts: dict[tuple[str, str, dt.datetime], D] = defaultdict(D)
    for row in found:
        period = row.corrects_period or row.period_start
        if row.kind in ("usage", "adjustment", "capped"):
            billed[row.customer_id, row.product, period] += row.quantity
        if row.kind in ("usage", "adjustment", "discount") and row.product:
            amounts[row.customer_id, row.product, period] += row.amount
    anchors = dict(run.customers)
    expected: dict[tuple[str, str, dt.datetime], D] = defaultdict(D)
    for sent in run.accepted.values():
        period = period_for(anchors[sent.customer], sent.at).start
        for product, quantity in run.counted[sent.id]:
            expected[sent.customer, product, period] += quantity
    # no invoice goes below zero, and credit is only ever drawn (never made up)
    assert all(row.amount <= 0 for row in found if row.kind == "credits"), found
    with engine.connect() as connection:
        below = connection.execute(
            select(invoices.c.id, invoices.c.total)
            .where(invoices.c.customer_id.like(f"{prefix}%"))
            .where(invoices.c.total < D(0))
        ).all()
    assert below == []
    # every accepted unit on exactly one line of its period: no more, no less
    assert {k: v for k, v in billed.items() if v} == {k: v for k, v in expected.items() if v}
    # no period billed above its cap (after its discount, with its adjustments)
    for (customer, product, start), amount in amounts.items():
        end = period_for(anchors[customer], start).end
        cap = bound(run.caps.get((customer, product), []), start, end)
        if cap is not None:
            assert amount <= cap, (customer, product, start, amount, cap)
