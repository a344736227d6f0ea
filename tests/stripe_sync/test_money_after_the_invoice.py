"""Money after the invoice, as a property on SQLite and PostgreSQL: a random sequence of
usage, closes, Stripe syncs, payments in Stripe, Stripe's webhooks delivered in any order
(with duplicates), voids (with and without re-issue), credit notes and commitments (whose
invoices may be voided or credited, which cancels them). Afterwards, per customer:

- no period is billed twice: at most one live usage invoice of ours per period, and at most
  one invoice of ours per period open or paid in Stripe;
- what Stripe holds equals what we say: each invoice we pushed has Stripe's total equal to
  our amount due (in Stripe's units), and once its credit notes are in Stripe, Stripe's
  amount remaining equals our amount due less our notes; Stripe's paid invoices are paid
  with us, unless we voided them first, which the sync flags (`void_refused`); our void
  invoices are void in Stripe or flagged;
- the credit ledger's balance is the sum of its entries, in both pools;
- every figure of every invoice is the sum of its lines.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal as D
from typing import Any

from freezegun import freeze_time
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.commitments import service as commitments
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.corrections.void import void
from billing.credits import ledger
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.db import table_of
from billing.errors import BillingError
from billing.invoicing.models import CreditNote, CreditNoteOutcome, Invoice, InvoiceLine
from billing.metering import service as metering_service
from billing.pipeline import close_due
from billing.stripe_sync.amounts import to_stripe_amount
from billing.stripe_sync.models import CreditNoteSync, InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from billing.stripe_sync.webhook import apply_event

T0 = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
examples = itertools.count()

usage_st = st.tuples(st.just("usage"), st.integers(0, 1), st.integers(10, 100))  # share %
step_st = st.one_of(
    usage_st,
    usage_st,
    st.tuples(st.just("close")),
    st.tuples(st.just("close")),
    st.tuples(st.just("sync")),
    st.tuples(st.just("sync")),
    st.tuples(st.just("pay"), st.integers(0, 5)),
    st.tuples(st.just("fail"), st.integers(0, 5)),
    st.tuples(st.just("deliver"), st.integers(0, 2**16), st.booleans()),
    st.tuples(st.just("void"), st.integers(0, 5), st.booleans()),
    st.tuples(
        st.just("note"),
        st.integers(0, 5),
        st.sampled_from(["1.00", "5.00", "all"]),
        st.sampled_from(list(CreditNoteOutcome)),
    ),
    st.tuples(st.just("commit")),
)
PRODUCTS = (("session_replay", 60_000), ("product_analytics", 10_000_000))


class World:
    """One customer's schedule: the clock, the events Stripe has queued for its webhook."""

    def __init__(self, engine: Any, catalog: Any, stripe_api: Any, prefix: str) -> None:
        self.engine, self.catalog, self.stripe_api = engine, catalog, stripe_api
        self.client = make_client("sk_test_emulator", stripe_api.base)
        self.customer = f"{prefix}c"
        self.clock = T0
        self.events: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.ids = itertools.count()

    def ours(self) -> list[Any]:
        table = table_of(Invoice)
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(table)
                    .where(table.c.customer_id == self.customer)
                    .order_by(table.c.number)
                )
            )

    def remote(self) -> list[dict[str, Any]]:
        mine = {row.id for row in self.ours()}
        return [
            i
            for i in self.stripe_api.invoices.values()
            if i["metadata"].get("billing_invoice_id") in mine
        ]

    def change(self, action: Any) -> None:
        with freeze_time(self.clock), self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    action(connection)
            except BillingError:
                pass  # refused, with its reason: an answer too

    def queue(self, kind: str, stripe_invoice: dict[str, Any]) -> None:
        self.events.append(
            {
                "id": f"evt_{self.customer}_{next(self.ids)}",
                "type": kind,
                "created": int(self.clock.timestamp()),
                "data": {"object": dict(stripe_invoice)},
            }
        )

    def deliver(self, seed: int, duplicates: bool) -> None:
        batch = list(self.events)
        if duplicates:
            batch += batch[: len(batch) // 2 + 1] if batch else []
            batch += self.delivered[:2]
        random.Random(seed).shuffle(batch)
        for item in batch:
            with self.engine.begin() as connection:
                apply_event(connection, self.catalog, item, self.clock)
        self.delivered += self.events
        self.events = []


def run_step(world: World, step: tuple[Any, ...]) -> None:
    match step:
        case ("usage", product, share):
            key, most = PRODUCTS[product]
            stamp = world.clock - dt.timedelta(minutes=5)
            raw = {
                "id": f"{world.customer}_u{next(world.ids)}",
                "customer": world.customer,
                "product": key,
                "quantity": most * share // 100,
                "timestamp": stamp.isoformat(),
            }
            with freeze_time(world.clock), world.engine.begin() as connection:
                metering_service.ingest(
                    connection=connection,
                    catalog=world.catalog,
                    raw_events=[raw],
                    now=world.clock,
                )
        case ("close",):
            month = world.clock.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            world.clock = (month + dt.timedelta(days=32)).replace(day=1) + dt.timedelta(hours=2)
            with freeze_time(world.clock):
                close_due(world.engine, world.catalog, world.clock, GRACE)
        case ("sync",):
            world.clock += dt.timedelta(minutes=10)
            with freeze_time(world.clock):
                sync_due(world.engine, world.client, world.clock)
        case ("pay", index):
            open_ = [i for i in world.remote() if i["status"] == "open"]
            if open_:
                chosen = open_[index % len(open_)]
                world.client.v1.invoices.pay(chosen["id"])
                world.queue("invoice.paid", world.stripe_api.invoices[chosen["id"]])
        case ("fail", index):
            open_ = [i for i in world.remote() if i["status"] == "open"]
            if open_:
                world.queue("invoice.payment_failed", open_[index % len(open_)])
        case ("deliver", seed, duplicates):
            world.deliver(seed, duplicates)
        case ("void", index, reissue):
            live = [r for r in world.ours() if r.status != "void"]
            if live:
                chosen = live[index % len(live)]
                world.change(
                    lambda c: void(
                        c,
                        world.catalog,
                        chosen.id,
                        reason="test",
                        actor="test",
                        now=world.clock,
                        reissue=reissue and chosen.kind == "usage",
                    )
                )
        case ("note", index, amount, outcome):
            live = [r for r in world.ours() if r.status != "void"]
            if live:
                chosen = live[index % len(live)]
                world.change(
                    lambda c: create_credit_note(
                        c,
                        world.catalog,
                        chosen.id,
                        reason="test",
                        lines=[LineRequest(line=1, amount=None if amount == "all" else D(amount))],
                        outcome=outcome,
                        actor="test",
                        now=world.clock,
                    )
                )
        case ("commit",):
            world.change(
                lambda c: commitments.start(
                    c, world.catalog, world.customer, D(3000), 1, world.clock
                )
            )
    world.clock += dt.timedelta(minutes=1)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step_st, min_size=6, max_size=30))
def test_our_figures_are_stripes_and_nothing_is_billed_twice(engine, catalog, stripe_api, steps):
    world = World(engine, catalog, stripe_api, f"m{next(examples)}_")
    note(f"steps: {steps!r}")
    with freeze_time(T0), engine.begin() as connection:
        customers_service.create_customer(
            connection=connection,
            data=CustomerCreate(id=world.customer, name="Money", email="ap@money.test"),
            currency=catalog.currency,
            now=T0,
        )
    for step in steps:
        run_step(world, step)
    # Let Stripe and the webhooks catch up: sync, deliver everything, sync again.
    for step in (("sync",), ("deliver", 7, True), ("sync",), ("deliver", 8, False)):
        run_step(world, step)

    ours = {row.id: row for row in world.ours()}
    remote = {i["metadata"]["billing_invoice_id"]: i for i in world.remote()}
    with engine.connect() as connection:
        sync = {
            row.invoice_id: row
            for row in connection.execute(
                select(table_of(InvoiceSync)).where(
                    table_of(InvoiceSync).c.invoice_id.in_(list(ours))
                )
            )
        }
        lines = list(
            connection.execute(
                select(table_of(InvoiceLine)).where(
                    table_of(InvoiceLine).c.invoice_id.in_(list(ours))
                )
            )
        )
        notes = list(
            connection.execute(
                select(
                    table_of(CreditNote).c.invoice_id,
                    table_of(CreditNote).c.total,
                    table_of(CreditNoteSync).c.status,
                )
                .join(
                    table_of(CreditNoteSync),
                    table_of(CreditNoteSync).c.credit_note_id == table_of(CreditNote).c.id,
                    isouter=True,
                )
                .where(table_of(CreditNote).c.invoice_id.in_(list(ours)))
            )
        )
        entries = ledger.entries(connection, world.customer)
        balances = ledger.balances(connection, world.customer)
    note(f"ours: {[(r.number, r.kind, r.status, r.amount_due) for r in ours.values()]}")
    note(f"stripe: {[(k, i['status'], i['total']) for k, i in remote.items()]}")

    event(f"invoices in Stripe: {min(len(remote), 4)}+")
    event("a paid invoice" if any(i["status"] == "paid" for i in remote.values()) else "none paid")
    event("a voided invoice" if any(r.status == "void" for r in ours.values()) else "none voided")
    # no period billed twice, with us and in Stripe
    live = [r for r in ours.values() if r.kind == "usage" and r.status != "void"]
    starts = [r.period_start for r in live]
    assert len(starts) == len(set(starts))
    collecting = [
        ours[k].period_start
        for k, i in remote.items()
        if i["status"] in ("open", "paid") and ours[k].kind == "usage"
    ]
    assert len(collecting) == len(set(collecting))
    # what Stripe holds is what we say
    for invoice_id, row in ours.items():
        stripe_invoice = remote.get(invoice_id)
        state = sync.get(invoice_id)
        if stripe_invoice is None:
            continue
        if stripe_invoice["status"] != "draft":
            assert stripe_invoice["total"] == to_stripe_amount(row.amount_due, row.currency)
        if stripe_invoice["status"] == "paid":
            assert row.status == "paid" or (row.status == "void" and state.status == "void_refused")
        if row.status == "void":
            assert stripe_invoice["status"] in ("void", "draft") or state.status == "void_refused"
        if row.status == "paid":
            assert stripe_invoice["status"] == "paid"
        own_notes = [n for n in notes if n.invoice_id == invoice_id]
        if stripe_invoice["status"] == "open" and all(n.status == "synced" for n in own_notes):
            # what is still owed: our amount due less our notes, to the minor unit
            credited = sum((n.total for n in own_notes), D(0))
            owed = to_stripe_amount(row.amount_due - credited, row.currency)
            assert stripe_invoice["amount_remaining"] == owed, (invoice_id, own_notes)
    # every figure is the sum of its parts
    for row in ours.values():
        own = [line.amount for line in lines if line.invoice_id == row.id]
        assert sum(own, D(0)) == row.amount_due
    assert sum((e.amount for e in entries), D(0)) == balances.total
    note_pool = [e.amount for e in entries if e.kind == "credit_note"]
    assert sum(note_pool, D(0)) >= balances.from_credit_notes >= 0
