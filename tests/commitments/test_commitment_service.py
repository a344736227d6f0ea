"""Commitments and the credit ledger on SQLite and PostgreSQL, with the scenario of the
issue: 30,000 of credit for one year, monthly release, three months of usage."""

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest
from freezegun import freeze_time
from sqlalchemy import text

from billing.commitments import service as commitments
from billing.credits import ledger
from billing.credits.draw import apply_credits
from billing.customers.periods import period_for
from billing.customers.service import lock_customer
from billing.errors import (
    BelowMinimumPurchase,
    CommitmentBelowRunning,
    InvalidAmount,
    NotFound,
    TopupWindowClosed,
    UnknownTerm,
)
from billing.invoicing.calculate import BilledUsage, totals, usage_lines
from billing.pipeline import advance
from billing.pricing.charge import ChargeResult
from billing.pricing.commitments import Release
from billing.pricing.plan import Model
from tests.metering.helpers import add_customer, update_customers


def now():
    return dt.datetime.now(dt.UTC)


def check_ledger(session, customer="cust_1"):
    """The balance is the sum of the entries, after every one of them."""
    rows = ledger.entries(session.connection(), customer)
    running = D(0)
    for row in rows:
        running += row.amount
        assert row.balance_after == running, (row.kind, row.amount, row.balance_after)
    return rows


def commitment_invoices(session):
    return [i for i in invoices(session) if i.kind == "commitment"]


def invoices(session):
    return (
        session.connection()
        .execute(text("SELECT kind, series, number, total, reference FROM invoice ORDER BY number"))
        .all()
    )


def run_pipeline(session, catalog, customer="cust_1"):
    """The jobs' period pipeline for one customer, as at the frozen clock: due periods
    closed, then the commitment moved as far as they allow (billing/pipeline.py)."""
    done = advance(session.connection(), catalog, customer, now(), dt.timedelta(hours=1))
    session.commit()
    return done


def draw(session, amount):
    """A period's invoice of `amount` (rounded, no discount) drawing the customer's credit."""
    lock_customer(session.connection(), "cust_1")
    result = apply_credits(
        session.connection(),
        customer_id="cust_1",
        total=D(amount),
        period=period_for(1, now()),
        currency="USD",
        now=now(),
    )
    session.commit()
    return result


def billed(product, exact_amount):
    """A product's billed usage whose exact charge is `exact_amount`."""
    amount = D(exact_amount)
    return BilledUsage(
        product=product,
        name=product,
        unit="unit",
        quantity=D(1),
        charge=ChargeResult(Model.GRADUATED, D(1), D(1), (), amount),
    )


def test_the_issue_scenario_month_by_month(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05 09:00:00"):
        outcome = commitments.start(session.connection(), catalog, "cust_1", D(30000), 1, now())
        session.commit()
        [invoice] = invoices(session)
        assert (invoice.kind, invoice.series, invoice.number) == ("commitment", "INV", 1)
        assert D(invoice.total) == D("24000.00")
        assert invoice.reference == outcome.commitment_id
        assert ledger.balance(session.connection(), "cust_1") == D("2500.00")
        month1 = draw(session, "1375.90")
        assert (month1.credits_applied, month1.due, month1.carried_forward) == (
            D("1375.90"),
            D("0.00"),
            D("1124.10"),
        )
    with freeze_time("2027-02-01 01:30:00"):  # January closed, then released
        run_pipeline(session, catalog)
        session.commit()
        assert ledger.balance(session.connection(), "cust_1") == D("3624.10")
        month2 = draw(session, "2953.65")
        assert (month2.credits_applied, month2.due, month2.carried_forward) == (
            D("2953.65"),
            D("0.00"),
            D("670.45"),
        )
    with freeze_time("2027-03-01 01:30:00"):
        run_pipeline(session, catalog)
        session.commit()
        month3 = draw(session, "4043.65")
        assert (month3.credits_applied, month3.due, month3.carried_forward) == (
            D("3170.45"),
            D("873.20"),
            D("0.00"),
        )
    rows = check_ledger(session)
    assert {r.amount for r in rows if r.kind == "carry_forward"} == {D("0")}  # hand-overs
    kinds = [(r.kind, r.amount) for r in rows if r.kind != "carry_forward"]
    assert kinds == [
        ("grant", D("0")),
        ("release", D("2500.00")),
        ("draw", D("-1375.90")),
        ("release", D("2500.00")),  # released once January was closed
        ("draw", D("-2953.65")),
        ("release", D("2500.00")),
        ("draw", D("-3170.45")),
    ]
    assert len(commitment_invoices(session)) == 1  # one contract year, invoiced once


def test_a_term_releases_twelve_times_then_expires(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), catalog, "cust_1", D("3001"), 1, now())
        session.commit()
    with freeze_time("2028-01-01 01:00"):  # the job ran late: everything due at once
        run_pipeline(session, catalog)
        session.commit()
    rows = check_ledger(session)
    releases = [r.amount for r in rows if r.kind == "release"]
    assert len(releases) == 12
    assert sum(releases) == D("3001")  # twelfths rounded so that they add up exactly
    assert rows[-1].kind == "expiry"
    assert rows[-1].amount == -D("3001")
    assert ledger.balance(session.connection(), "cust_1") == 0
    status = session.connection().execute(text("SELECT status FROM commitment")).scalar_one()
    assert status == "ended"


def test_each_contract_year_is_invoiced_at_its_start(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), catalog, "cust_1", D(20000), 2, now())
        session.commit()
    with freeze_time("2027-12-31"):
        run_pipeline(session, catalog)
        session.commit()
        assert len(commitment_invoices(session)) == 1
    with freeze_time("2028-01-01 00:10"):
        run_pipeline(session, catalog)
        run_pipeline(session, catalog)  # twice: no second invoice
        session.commit()
    totals = [D(i.total) for i in commitment_invoices(session)]
    assert totals == [D("15000.00"), D("15000.00")]  # 20,000 at 25 % off, each year
    numbers = [i.number for i in invoices(session)]
    assert numbers == list(range(1, len(numbers) + 1))  # one series, no gaps


def test_a_top_up_keeps_the_bracket_inside_its_window(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), catalog, "cust_1", D(20000), 1, now())
        session.commit()
    with freeze_time("2027-03-10"):
        outcome = commitments.topup(session.connection(), catalog, "cust_1", D(5000), now())
        session.commit()
        assert outcome.invoices[0].amount_due == D("4000.00")  # 20 % off, the running bracket
    with freeze_time("2027-04-02"), pytest.raises(TopupWindowClosed) as late:
        commitments.topup(session.connection(), catalog, "cust_1", D(5000), now())
    assert "closed on 2027-04-01" in late.value.message
    session.rollback()
    check_ledger(session)


def test_a_second_commitment_is_refused_with_the_date_it_can_change(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), catalog, "cust_1", D(30000), 1, now())
        session.commit()
        with pytest.raises(CommitmentBelowRunning) as smaller:
            commitments.start(session.connection(), catalog, "cust_1", D(10000), 1, now())
    assert "until 2028-01-01" in smaller.value.message
    assert smaller.value.field == "credit"


@pytest.mark.parametrize(
    ("credit", "years", "error", "field"),
    [
        (D(30000), 4, UnknownTerm, "years"),
        (D(2999), 1, BelowMinimumPurchase, "credit"),
        (D("3000.001"), 1, InvalidAmount, "credit"),
        (D(0), 1, InvalidAmount, "credit"),
    ],
)
def test_bad_commitments_name_the_field_and_create_nothing(
    session, catalog, credit, years, error, field
):
    add_customer(session)
    with pytest.raises(error) as refused:
        commitments.start(session.connection(), catalog, "cust_1", credit, years, now())
    assert refused.value.field == field
    session.rollback()
    counts = (
        session.connection()
        .execute(text("SELECT (SELECT COUNT(*) FROM commitment), (SELECT COUNT(*) FROM invoice)"))
        .one()
    )
    assert tuple(counts) == (0, 0)


def test_an_unknown_customer_is_404(session, catalog):
    with pytest.raises(NotFound):
        commitments.start(session.connection(), catalog, "nobody", D(30000), 1, now())


def test_the_run_rate_is_the_average_of_whole_periods_in_the_last_90_days(session, catalog):
    from billing.commitments.projection import project
    from billing.metering import service as metering_service

    add_customer(session)
    update_customers(session.connection(), created_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    session.commit()
    for month, quantity in ((7, 5_000_000), (8, 1_100_000), (9, 1_200_000), (10, 1_300_000)):
        at = dt.datetime(2026, month, 15, 12, tzinfo=dt.UTC)
        event = {
            "id": f"m{month}",
            "customer": "cust_1",
            "product": "product_analytics",
            "quantity": quantity,
            "timestamp": at.isoformat(),
        }
        metering_service.ingest(
            connection=session.connection(), catalog=catalog, raw_events=[event], now=at
        )
    session.commit()
    created = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    at = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
    projection = project(session.connection(), catalog, "cust_1", 1, at, created)
    # August $5.00, September $10.00, October $15.00 (July is outside the 90 days)
    assert projection == commitments_projection(
        "last_90_days", "10.00", ("2026-08", "2026-09", "2026-10")
    )
    joined_late = project(
        session.connection(), catalog, "cust_1", 1, at, dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
    )
    assert joined_late.basis == "no_usage"  # no whole period yet, nothing this period


def commitments_projection(basis, monthly, periods):
    from billing.commitments.projection import RunRate

    return RunRate(D(monthly), basis, periods)


@pytest.mark.parametrize(("renewal", "rolled"), [("3001", D("500.50")), ("3000", None)])
def test_a_renewal_of_equal_or_larger_credit_receives_the_rollover(
    session, catalog, renewal, rolled
):
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), catalog, "cust_1", D(3001), 1, now())
        session.commit()
    with freeze_time("2027-12-20"):
        run_pipeline(session, catalog)
        session.commit()
        assert draw(session, "2000").carried_forward == D("1001.00")
    with freeze_time("2028-01-03"):  # the term ended on 2028-01-01; renew in the next period
        run_pipeline(session, catalog)  # the jobs closed December, so the term has ended
        outcome = commitments.start(session.connection(), catalog, "cust_1", D(renewal), 1, now())
        session.commit()
    rows = check_ledger(session)
    expiry = next(r for r in rows if r.kind == "expiry")
    assert expiry.amount == -D("1001.00")
    rollovers = [r for r in rows if r.kind == "rollover"]
    if rolled is None:  # a smaller renewal gets nothing; the unused credit is gone
        assert rollovers == []
        assert ledger.balance(session.connection(), "cust_1") == D("250.00")
        return
    [rollover] = rollovers
    assert rollover.amount == rolled  # 50 % of the unused 1,001.00
    assert rollover.commitment_id == outcome.commitment_id
    assert ledger.balance(session.connection(), "cust_1") == D("250.08") + rolled


def test_the_invoice_discounts_each_line_then_credit_covers_the_total(session, catalog):
    add_customer(session)
    with freeze_time("2027-01-05"):
        lock_customer(session.connection(), "cust_1")
        ledger.append(session.connection(), "cust_1", "grant", D("100.00"), now(), note="test")
        lines = usage_lines(
            [billed("product_analytics", "100.005"), billed("session_replay", "50.004")],
            discount_percent=D(15),
            currency="USD",
        )
        figures = totals(lines, "USD")
        result = apply_credits(
            session.connection(),
            customer_id="cust_1",
            total=figures.total,
            period=period_for(1, now()),
            currency="USD",
            now=now(),
        )
        session.commit()
    # 100.005 -> 100.01, 15 % = 15.0015 -> 15.00, total 85.01; 50.004 -> 50.00, 7.50, 42.50
    usage, discounts = lines[0::2], lines[1::2]
    assert [
        (u.amount, -d.amount, u.amount + d.amount) for u, d in zip(usage, discounts, strict=True)
    ] == [
        (D("100.01"), D("15.00"), D("85.01")),
        (D("50.00"), D("7.50"), D("42.50")),
    ]
    assert (figures.subtotal, figures.discount_total, figures.total) == (
        D("150.01"),
        D("22.50"),
        D("127.51"),
    )
    assert (result.credits_applied, result.due, result.carried_forward) == (
        D("100.00"),
        D("27.51"),
        D("0.00"),
    )
    check_ledger(session)


def test_upfront_release_grants_each_contract_year_at_its_start(session, catalog):
    upfront = dataclasses.replace(
        catalog, schedule=dataclasses.replace(catalog.schedule, release=Release.UPFRONT)
    )
    add_customer(session)
    with freeze_time("2027-01-05"):
        commitments.start(session.connection(), upfront, "cust_1", D(20000), 2, now())
        session.commit()
        assert ledger.balance(session.connection(), "cust_1") == D(20000)
        draw(session, "15000")
    with freeze_time("2028-01-01 00:05"):
        run_pipeline(session, upfront)
        session.commit()
    rows = check_ledger(session)
    assert [(r.kind, r.amount) for r in rows if r.kind != "carry_forward"] == [
        ("grant", D(20000)),
        ("draw", D(-15000)),
        ("grant", D(20000)),
    ]
    assert ledger.balance(session.connection(), "cust_1") == D(25000)  # unused carries on
