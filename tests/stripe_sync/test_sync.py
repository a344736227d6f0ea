"""Stripe sync over real HTTP through the official SDK, against the emulator: once only,
found again after a crash, retried when Stripe is down, loud on a mismatch, voids synced."""

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import select, text

from billing.corrections.void import void
from billing.jobs import registry, runner
from billing.jobs.context import JobContext
from billing.jobs.runner import job_lock_key
from billing.pipeline import close_due
from billing.settings import Settings
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from tests.invoicing.test_close import GRACE, at_oct, created, ingest, with_october_usage
from tests.servers import wait_for
from tests.stripe_sync.conftest import AFTER, kill_sync_while


def sync_state(engine):
    with engine.connect() as connection:
        return connection.execute(select(InvoiceSync.__table__)).one()


def test_an_invoice_reaches_stripe_once_with_its_total_checked(engine, stripe_api, closed):
    client = make_client("sk_test_emulator", stripe_api.base)
    report = sync_due(engine, client, AFTER)
    assert (report.synced, report.failed, report.mismatched) == (1, 0, 0)
    [remote] = stripe_api.invoices_of(closed.id)
    assert remote["status"] == "open"
    assert remote["total"] == 3500  # our amount due, in cents
    assert sorted(line["amount"] for line in remote["lines"]) == [1000, 2500]
    state = sync_state(engine)
    assert (state.status, state.stripe_invoice_id) == ("synced", remote["id"])
    again = sync_due(engine, client, AFTER + dt.timedelta(hours=1))
    assert again.synced == 0
    assert len(stripe_api.invoices) == 1
    assert len(stripe_api.customers) == 1


def test_a_crash_after_stripe_created_the_invoice_makes_no_second_one(engine, stripe_api, closed):
    client = make_client("sk_test_emulator", stripe_api.base)
    # The crashed run got as far as creating the customer and the draft invoice, and
    # recorded neither.
    customer = client.v1.customers.create(
        params={"name": "cust_1", "metadata": {"billing_customer_id": "cust_1"}}
    )
    client.v1.invoices.create(
        params={
            "customer": customer.id,
            "currency": "usd",
            "metadata": {"billing_invoice_id": closed.id},
        }
    )
    assert sync_due(engine, client, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["status"], remote["total"]) == ("open", 3500)
    assert len(stripe_api.invoices) == 1
    assert len(stripe_api.customers) == 1  # found by its metadata, not made again


def test_stripe_down_mid_run_means_retry_later_and_nothing_duplicated(engine, stripe_api, closed):
    client = make_client("sk_test_emulator", stripe_api.base)
    stripe_api.faults = ["500", "drop"]  # the customer create fails, then the retry run...
    report = sync_due(engine, client, AFTER)
    assert report.retrying == 1
    state = sync_state(engine)
    assert (state.status, state.attempts) == ("pending", 1)
    assert "APIError" in state.last_error
    # the row names the call Stripe failed, for finance and for Stripe's request logs
    assert state.last_error.endswith("(GET /v1/customers/search)"), state.last_error
    assert state.next_attempt_at >= AFTER + dt.timedelta(seconds=30)
    assert sync_due(engine, client, AFTER + dt.timedelta(seconds=10)).synced == 0  # not due
    later = sync_due(engine, client, AFTER + dt.timedelta(minutes=5))
    assert later.retrying == 1  # the dropped connection
    final = sync_due(engine, client, AFTER + dt.timedelta(minutes=30))
    assert final.synced == 1
    assert len(stripe_api.invoices) == 1
    assert len(stripe_api.customers) == 1


def test_a_permanent_error_is_marked_failed_with_stripes_message(engine, stripe_api, closed):
    client = make_client("sk_test_emulator", stripe_api.base)
    stripe_api.faults = ["400"]
    assert sync_due(engine, client, AFTER).failed == 1
    state = sync_state(engine)
    assert state.status == "sync_failed"
    assert "injected 400" in state.last_error


def test_a_total_that_differs_is_a_mismatch_never_accepted(engine, stripe_api, closed):
    client = make_client("sk_test_emulator", stripe_api.base)
    stripe_api.total_skew = 1
    assert sync_due(engine, client, AFTER).mismatched == 1
    state = sync_state(engine)
    assert state.status == "mismatch"
    assert "totals 3501, our amount due is 3500" in state.last_error


def test_a_voided_invoice_is_voided_in_stripe(engine, stripe_api, closed, catalog):
    client = make_client("sk_test_emulator", stripe_api.base)
    sync_due(engine, client, AFTER)
    with engine.begin() as connection:
        void(connection, catalog, closed.id, reason="test", actor="test", now=AFTER, reissue=False)
    assert sync_due(engine, client, AFTER + dt.timedelta(minutes=1)).voided == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert remote["status"] == "void"
    assert sync_state(engine).status == "voided"


def test_the_same_idempotency_key_with_other_parameters_is_refused(stripe_api):
    import stripe

    client = make_client("sk_test_emulator", stripe_api.base)
    options = {"idempotency_key": "k1"}
    first = client.v1.customers.create(params={"name": "a"}, options=options)
    assert client.v1.customers.create(params={"name": "a"}, options=options).id == first.id
    with pytest.raises(stripe.IdempotencyError) as refused:
        client.v1.customers.create(params={"name": "b"}, options=options)
    assert "same parameters" in str(refused.value)


def test_a_sync_killed_between_create_and_record_is_finished_by_the_next_run(
    engine, stripe_api, closed, database_url
):
    """SIGKILL `billing stripe sync` while Stripe finalizes: nothing of ours recorded it."""
    kill_sync_while(stripe_api, database_url, "/finalize", AFTER)
    assert sync_state(engine).status == "pending"  # we never learned the Stripe id
    client = make_client("sk_test_emulator", stripe_api.base)
    assert sync_due(engine, client, AFTER + dt.timedelta(minutes=1)).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert remote["total"] == 3500
    assert len(stripe_api.invoices) == 1
    assert sync_state(engine).stripe_invoice_id == remote["id"]


def test_stripe_going_away_mid_run_leaves_the_rest_for_later(engine, session, catalog, stripe_api):
    with_october_usage(session, catalog, 1_100_000)
    session.close()
    close_due(engine, catalog, AFTER, GRACE)
    client = make_client("sk_test_emulator", stripe_api.base)
    stripe_api.down_after = 9  # about one invoice's worth of calls
    first = sync_due(engine, client, AFTER)
    assert first.synced >= 1
    assert first.retrying >= 1
    assert first.synced + first.retrying == 3
    stripe_api.down_after = None
    second = sync_due(engine, client, AFTER + dt.timedelta(hours=3))
    assert second.synced == first.retrying
    assert len(stripe_api.invoices) == 3  # one each, nothing duplicated
    assert sorted(i["total"] for i in stripe_api.invoices.values()) == [500, 500, 500]


def test_an_invoice_voided_before_it_reached_stripe_is_never_sent(
    engine, stripe_api, closed, catalog
):
    client = make_client("sk_test_emulator", stripe_api.base)
    stripe_api.faults = ["500"]
    assert sync_due(engine, client, AFTER).retrying == 1  # queued, not in Stripe yet
    with engine.begin() as connection:
        void(
            connection,
            catalog,
            closed.id,
            reason="wrong period",
            actor="test",
            now=AFTER,
            reissue=False,
        )
    assert sync_due(engine, client, AFTER + dt.timedelta(hours=1)).voided == 1
    assert stripe_api.invoices == {}
    assert sync_state(engine).status == "voided"


def waiting_for_the_job_lock(engine, job):
    """Whether a PostgreSQL session waits for the job's advisory lock (bigint key: its high
    and low 32 bits are classid and objid in pg_locks)."""
    if engine.dialect.name != "postgresql":
        return False
    key = job_lock_key(engine, job) & 0xFFFFFFFFFFFFFFFF
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF},
            ).scalar_one()
        )


def test_two_syncs_at_once_make_one_stripe_invoice_each(engine, session, catalog, stripe_api):
    """The scheduler's run and `billing stripe sync` at once, the first held at Stripe until
    the second is in too (on SQLite both talk to Stripe at once; on PostgreSQL the second
    waits for the job's lock): each of our invoices becomes exactly one Stripe invoice."""
    for customer in ("cust_1", "cust_2"):
        created(session, customer)
    ingest(
        session,
        catalog,
        [
            at_oct("a", 1_200_000),
            at_oct("b", 10_000, "session_replay"),
            {**at_oct("c", 1_400_000), "customer": "cust_2"},
        ],
    )
    session.close()
    close_due(engine, catalog, AFTER, GRACE)
    with engine.connect() as connection:
        ours = dict(connection.execute(text("SELECT id, amount_due FROM invoice")).all())
    assert len(ours) == 2
    stripe_api.hang_on = "/v1/invoices"  # a run stops at its first invoice request
    reports, errors = [], []

    def sync(wait):
        context = JobContext(
            engine=engine,
            settings=Settings(stripe_api_key="sk_test_emulator", stripe_api_base=stripe_api.base),
            catalog=catalog,
        )
        job = registry.SYNC_STRIPE
        try:
            report = (runner.run_waiting if wait else runner.run_if_free)(job, context, AFTER)
            reports.append(report)
        except Exception as error:  # the test reports it below
            errors.append(error)

    scheduler = threading.Thread(target=sync, args=(False,))
    scheduler.start()
    twin = threading.Thread(target=sync, args=(True,))
    try:
        assert wait_for(lambda: stripe_api.held == 1), errors
        twin.start()
        assert wait_for(
            lambda: stripe_api.held == 2 or waiting_for_the_job_lock(engine, "sync_stripe")
        ), errors
    finally:
        stripe_api.release.set()
    for thread in (scheduler, twin):
        thread.join(timeout=60)
    assert errors == []
    assert len(reports) == 2  # the twin waited, it did not skip
    assert all((r.failed, r.retrying, r.mismatched) == (0, 0, 0) for r in reports)
    assert len(stripe_api.invoices) == 2
    assert len(stripe_api.customers) == 2
    for invoice_id, amount_due in ours.items():
        [remote] = stripe_api.invoices_of(invoice_id)
        assert (remote["status"], remote["total"]) == ("open", int(D(amount_due) * 100))
    with engine.connect() as connection:
        states = connection.execute(select(InvoiceSync.__table__)).all()
    assert sorted((s.status, s.stripe_invoice_id) for s in states) == sorted(
        ("synced", stripe_api.invoices_of(i)[0]["id"]) for i in ours
    )


def test_a_replacement_is_sent_only_once_stripe_voided_the_invoice_it_replaces(
    engine, stripe_api, closed, catalog
):
    """Voiding a synced invoice with re-issue: Stripe voids the first before the replacement
    reaches it, so the customer is never asked to pay both."""
    client = make_client("sk_test_emulator", stripe_api.base)
    sync_due(engine, client, AFTER)
    with engine.begin() as connection:
        _, replacement = void(
            connection, catalog, closed.id, reason="typo", actor="test", now=AFTER, reissue=True
        )
    stripe_api.faults = ["500"]  # Stripe fails the void: the replacement waits
    waiting = sync_due(engine, client, AFTER + dt.timedelta(minutes=1))
    assert (waiting.voided, waiting.synced) == (0, 0)
    assert stripe_api.invoices_of(replacement.id) == []
    [first] = stripe_api.invoices_of(closed.id)
    assert first["status"] == "open"
    done = sync_due(engine, client, AFTER + dt.timedelta(minutes=2))
    assert (done.voided, done.synced) == (1, 1)
    assert first["status"] == "void"
    [second] = stripe_api.invoices_of(replacement.id)
    assert second["status"] == "open"
    open_ = [i for i in stripe_api.invoices.values() if i["status"] == "open"]
    assert open_ == [second]  # one invoice to pay, never two


def test_the_replacement_of_an_invoice_paid_in_stripe_is_held_never_sent(
    engine, stripe_api, closed, catalog
):
    """Paid in Stripe before our void with re-issue reached it: Stripe refuses the void, and
    the replacement is held, never sent, so the customer is not asked to pay the period
    twice (found by tests/stripe_sync/test_money_after_the_invoice.py)."""
    client = make_client("sk_test_emulator", stripe_api.base)
    sync_due(engine, client, AFTER)
    [remote] = stripe_api.invoices_of(closed.id)
    with engine.begin() as connection:
        _, replacement = void(
            connection, catalog, closed.id, reason="typo", actor="test", now=AFTER, reissue=True
        )
    client.v1.invoices.pay(remote["id"])  # paid before our void reached Stripe
    for minutes in (1, 2, 60):
        sync_due(engine, client, AFTER + dt.timedelta(minutes=minutes))
        assert stripe_api.invoices_of(replacement.id) == []
    with engine.connect() as connection:
        states = {row.invoice_id: row for row in connection.execute(select(InvoiceSync.__table__))}
    assert states[closed.id].status == "void_refused"
    assert states[replacement.id].status == "held"
    assert "paid it there" in states[replacement.id].last_error
    collecting = [i for i in stripe_api.invoices.values() if i["status"] in ("open", "paid")]
    assert collecting == [remote]  # the period is collected once


def test_a_void_stripe_refuses_is_shown_once_and_never_retried(engine, stripe_api, closed, catalog):
    """Paid in Stripe after we voided it: Stripe refuses the void; the row says so, and later
    runs do not try again."""
    client = make_client("sk_test_emulator", stripe_api.base)
    sync_due(engine, client, AFTER)
    [remote] = stripe_api.invoices_of(closed.id)
    with engine.begin() as connection:
        void(connection, catalog, closed.id, reason="typo", actor="test", now=AFTER, reissue=False)
    client.v1.invoices.pay(remote["id"])  # the customer paid before our void reached Stripe
    refused = sync_due(engine, client, AFTER + dt.timedelta(minutes=1))
    assert (refused.voided, refused.failed) == (0, 1)
    state = sync_state(engine)
    assert state.status == "void_refused"
    assert "void" in state.last_error
    calls = len(stripe_api.requests)
    again = sync_due(engine, client, AFTER + dt.timedelta(hours=1))
    assert (again.voided, again.failed) == (0, 0)
    assert not any(path.endswith("/void") for _, path in stripe_api.requests[calls:])
    assert remote["status"] == "paid"
