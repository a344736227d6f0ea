"""Every acknowledged unit is billed once, whatever the clock or the job order, on SQLite and
PostgreSQL: billing start, late usage (reject or amend), the close never ahead of the clock,
one pipeline order for the close and commitments jobs, and caps kept at close."""

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest
from freezegun import freeze_time
from pydantic import ValidationError
from sqlalchemy import select, update

from billing.catalog.models import LatePolicy
from billing.catalog.public import catalog_public
from billing.commitments import service as commitments
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.corrections.void import void
from billing.credits import ledger
from billing.customers import service as customers_service
from billing.customers.models import Customer, CustomerCreate
from billing.db import table_of
from billing.errors import CreditExceedsInvoice, InvalidCreditNoteLine, NoPriceInForce
from billing.invoicing.models import CreditNoteOutcome, Invoice, InvoiceLine
from billing.invoicing.service import get_invoice, resolve_invoice_id
from billing.metering import quota as quota_service
from billing.metering import service as metering_service
from billing.pipeline import close_due, run_commitments
from billing.quotes import quote
from billing.settings import Settings
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, event

GRACE = dt.timedelta(hours=1)


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def starting(engine, customer, billing_start, created=None, anchor=1):
    """A customer created at `created` (default: billing start) whose billing starts there."""
    with engine.begin() as connection:
        table = table_of(Customer)
        connection.execute(
            update(table)
            .where(table.c.id == customer)
            .values(created_at=created or billing_start, billing_start=billing_start)
        )


def send(engine, catalog, events, now):
    with engine.begin() as connection:
        return metering_service.ingest(
            connection=connection, catalog=catalog, raw_events=events, now=now
        )


def lines_of(engine, customer):
    """(period month, kind, product, quantity, amount) of every line of every issued
    usage invoice, in number order."""
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    query = (
        select(invoices.c.period_start, lines.c.kind, lines.c.product, lines.c.quantity)
        .add_columns(lines.c.amount, lines.c.corrects_period)
        .join(lines, lines.c.invoice_id == invoices.c.id)
        .where(invoices.c.customer_id == customer, invoices.c.kind == "usage")
        .where(invoices.c.status != "void")
        .order_by(invoices.c.number, lines.c.position)
    )
    with engine.connect() as connection:
        return [
            (
                (r.corrects_period or r.period_start).strftime("%Y-%m"),
                r.kind,
                r.product,
                r.quantity,
                r.amount,
            )
            for r in connection.execute(query)
        ]


def test_usage_before_billing_start_is_refused_and_usage_after_it_billed(engine, session, catalog):
    """Case 1: a customer created on 30 November; October events were acknowledged and
    never billed, and 1970 ones too."""
    add_customer(session, "new")
    starting(engine, "new", at("2026-11-30 09:00"))
    customers_service.create_customer(
        connection=session.connection(),
        data=CustomerCreate(id="migrated", name="Migrated", billing_start="2026-10-01T00:00:00Z"),
        currency="USD",
        now=at("2026-11-30 09:00"),
    )
    session.commit()
    now = at("2026-11-30 10:00")
    answer = send(
        engine,
        catalog,
        [
            event("n1", 100, customer="new", at="2026-10-20T10:00:00Z"),
            event("n2", 100, customer="new", at="1970-01-01T00:00:00Z"),
            event("n3", 100, customer="new", at="2026-11-30T09:30:00Z"),
            event("m1", 1_100_000, customer="migrated", at="2026-10-20T10:00:00Z"),
        ],
        now,
    )
    assert [(r.id, r.error) for r in answer.rejected] == [
        ("n1", "before_billing_start: billing starts at 2026-11-30T09:00:00Z"),
        ("n2", "before_billing_start: billing starts at 2026-11-30T09:00:00Z"),
    ]
    assert answer.accepted == 2
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, catalog, at("2026-11-01 01:00"), GRACE)
    assert lines_of(engine, "migrated") == [
        ("2026-10", "usage", "product_analytics", D("1100000"), D("5.00"))
    ]


@pytest.fixture
def amend(catalog):
    return dataclasses.replace(catalog, late_usage=LatePolicy(True, dt.timedelta(days=10)))


def test_late_usage_is_refused_or_billed_as_an_adjustment_once(engine, session, catalog, amend):
    add_customer(session)
    starting(engine, "cust_1", at("2026-10-01 00:00"))
    send(engine, catalog, [event("a", 1_100_000, at="2026-10-20T10:00:00Z")], at("2026-10-21"))
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, catalog, at("2026-11-01 01:00"), GRACE)
    late = [event("b", 100_000, at="2026-10-30T10:00:00Z")]
    refused = send(engine, catalog, late, at("2026-11-02"))  # policy reject (the default)
    assert [r.error for r in refused.rejected] == ["period_closed"]
    taken = send(engine, amend, late, at("2026-11-02"))
    assert taken.accepted == 1
    too_late = send(engine, amend, [event("c", 1, at="2026-10-30T11:00:00Z")], at("2026-11-11"))
    assert [r.error for r in too_late.rejected] == ["period_closed"]  # outside the window
    send(engine, amend, [event("d", 50, at="2026-11-15T10:00:00Z")], at("2026-11-16"))
    with freeze_time("2026-12-01 01:00"):
        close_due(engine, amend, at("2026-12-01 01:00"), GRACE)
        close_due(engine, amend, at("2026-12-01 01:00"), GRACE)  # once only
    # October: 1,100,000 billed 5.00; 100,000 late re-price it to 1,200,000 = 10.00: +5.00
    assert lines_of(engine, "cust_1") == [
        ("2026-10", "usage", "product_analytics", D("1100000"), D("5.00")),
        ("2026-11", "usage", "product_analytics", D("50"), D("0.00")),
        ("2026-10", "adjustment", "product_analytics", D("100000"), D("5.00")),
    ]


def _late_october(engine, session, catalog, amend):
    """October billed 1,100,000 events (5.00) on INV-000001; 100,000 late October events
    billed on November's INV-000002 as an adjustment (+5.00), beside November's 50."""
    test_late_usage_is_refused_or_billed_as_an_adjustment_once(engine, session, catalog, amend)


def _void(engine, catalog, number, reissue, now=at("2026-12-02 09:00")):
    with freeze_time(now), engine.begin() as connection:
        return void(
            connection,
            catalog,
            resolve_invoice_id(connection, number),
            reason="wrong address",
            actor="finance",
            now=now,
            reissue=reissue,
        )


def _by_period(engine, customer):
    """The amount every standing invoice bills of each period, summed."""
    billed: dict[str, D] = {}
    for month, kind, _, _, amount in lines_of(engine, customer):
        if kind in ("usage", "discount", "adjustment"):
            billed[month] = billed.get(month, D(0)) + amount
    return billed


def _january(engine, amend):
    with freeze_time("2027-01-01 01:00"):
        close_due(engine, amend, at("2027-01-01 01:00"), GRACE)


def test_a_reissued_period_never_bills_again_what_a_later_invoice_adjusted(
    engine, session, catalog, amend
):
    """Voiding October after its late usage was adjusted on November's invoice, and
    re-issuing it: the replacement prices October in full (1,200,000: 10.00) less what
    November already billed of it, so October is billed 10.00, not 15.00."""
    _late_october(engine, session, catalog, amend)
    _void(engine, amend, "INV-000001", reissue=True)
    _january(engine, amend)
    assert lines_of(engine, "cust_1") == [
        ("2026-11", "usage", "product_analytics", D("50"), D("0.00")),
        ("2026-10", "adjustment", "product_analytics", D("100000"), D("5.00")),
        ("2026-10", "usage", "product_analytics", D("1200000"), D("10.00")),
        ("2026-10", "adjustment", "product_analytics", D("-100000"), D("-5.00")),
    ]
    assert _by_period(engine, "cust_1")["2026-10"] == D("10.00")
    with engine.connect() as connection:
        replacement = get_invoice(
            connection, resolve_invoice_id(connection, "INV-000003"), due_days=30
        )
    described = [line.description for line in replacement.lines]
    assert "already billed as late usage on other invoices" in described[1]


def test_a_reissued_invoice_keeps_the_late_usage_it_adjusted(engine, session, catalog, amend):
    """Voiding November, which carried October's late usage, and re-issuing it: the
    replacement carries the same adjustment (nothing lost), and no later close bills it
    again; voiding and re-issuing October next still bills October once."""
    _late_october(engine, session, catalog, amend)
    _void(engine, amend, "INV-000002", reissue=True)
    assert lines_of(engine, "cust_1") == [
        ("2026-10", "usage", "product_analytics", D("1100000"), D("5.00")),
        ("2026-11", "usage", "product_analytics", D("50"), D("0.00")),
        ("2026-10", "adjustment", "product_analytics", D("100000"), D("5.00")),
    ]
    _january(engine, amend)
    assert _by_period(engine, "cust_1") == {
        "2026-10": D("10.00"),
        "2026-11": D("0.00"),
    }
    _void(engine, amend, "INV-000001", reissue=True, now=at("2027-01-02 09:00"))
    _january(engine, amend)
    assert _by_period(engine, "cust_1")["2026-10"] == D("10.00")
    late = [line for line in lines_of(engine, "cust_1") if line[:2] == ("2026-10", "adjustment")]
    assert [line[3:] for line in late] == [(D("100000"), D("5.00")), (D("-100000"), D("-5.00"))]


def test_a_void_without_reissue_writes_off_what_it_billed_late_usage_included(
    engine, session, catalog, amend
):
    """A void without a replacement bills nothing of what the voided invoice billed, and no
    later close bills it again: November's 50 and October's late 100,000 stay written off."""
    _late_october(engine, session, catalog, amend)
    _void(engine, amend, "INV-000002", reissue=False)
    _january(engine, amend)
    assert lines_of(engine, "cust_1") == [
        ("2026-10", "usage", "product_analytics", D("1100000"), D("5.00")),
    ]


def test_a_reissue_before_the_next_close_takes_the_pending_late_usage(
    engine, session, catalog, amend
):
    """October re-issued while its late usage still waits for the next close: the
    replacement bills it, and the next close does not."""
    add_customer(session)
    starting(engine, "cust_1", at("2026-10-01 00:00"))
    send(engine, catalog, [event("a", 1_100_000, at="2026-10-20T10:00:00Z")], at("2026-10-21"))
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, catalog, at("2026-11-01 01:00"), GRACE)
    send(engine, amend, [event("b", 100_000, at="2026-10-30T10:00:00Z")], at("2026-11-02"))
    _void(engine, amend, "INV-000001", reissue=True, now=at("2026-11-03 09:00"))
    with freeze_time("2026-12-01 01:00"):
        close_due(engine, amend, at("2026-12-01 01:00"), GRACE)
    assert lines_of(engine, "cust_1") == [
        ("2026-10", "usage", "product_analytics", D("1200000"), D("10.00")),
    ]


def test_a_close_never_runs_ahead_of_the_clock(engine, session, catalog):
    """Case 2: a close as of a later time closed the current month early."""
    add_customer(session)
    starting(engine, "cust_1", at("2026-10-01 00:00"))
    with freeze_time("2026-10-20 12:00"):
        report = close_due(engine, catalog, at("2026-12-01 02:00"), GRACE)
        assert report.invoices == 0
        answer = send(
            engine, catalog, [event("a", 5, at="2026-10-20T11:00:00Z")], at("2026-10-20 12:00")
        )
        assert answer.accepted == 1


def test_the_close_grace_is_never_negative():
    """A negative grace would close a period before it ends, while its events still arrive."""
    with pytest.raises(ValidationError, match="close_grace"):
        Settings(tiers_dir=TIERS, database_url="sqlite://", close_grace=-dt.timedelta(minutes=10))
    settings = Settings(tiers_dir=TIERS, database_url="sqlite://", close_grace=dt.timedelta(0))
    assert settings.close_grace == dt.timedelta(0)


def test_the_bill_is_the_same_whichever_job_runs_first(engine, session, catalog):
    """Case 3: the commitments job expired the term's credit before its last month closed."""
    bills = []
    for first, second in ((run_commitments, close_due), (close_due, run_commitments)):
        customer = f"c_{first.__name__}"
        add_customer(session, customer)
        starting(engine, customer, at("2026-12-01 00:00"), created=at("2026-12-05"))
        with freeze_time("2026-12-05"), engine.begin() as connection:
            commitments.start(connection, catalog, customer, D(3001), 1, at("2026-12-05"))
        # The term runs December 2026 to November 2027: usage in its last month that the
        # credit should cover
        with freeze_time("2027-11-20"):
            for job in (first, second):
                job(engine, catalog, at("2027-11-20"), GRACE)
        answer = send(
            engine,
            catalog,
            [event(f"x_{customer}", 20_000, "session_replay", customer, "2027-11-20T10:00:00Z")],
            at("2027-11-20 11:00"),
        )
        assert answer.accepted == 1
        with freeze_time("2027-12-01 02:00"):
            for job in (first, second):
                job(engine, catalog, at("2027-12-01 02:00"), GRACE)
        with engine.connect() as connection:
            november = connection.execute(
                select(table_of(Invoice).c.credits_applied, table_of(Invoice).c.amount_due)
                .where(table_of(Invoice).c.customer_id == customer)
                .where(table_of(Invoice).c.period_start == at("2027-11-01 00:00"))
            ).one()
            expired = [e.amount for e in ledger.entries(connection, customer) if e.kind == "expiry"]
        bills.append((november.credits_applied, november.amount_due, expired))
    # 5,000 free, 10,000 x 0.005 + 5,000 x 0.004 = 70.00, all from credit, before expiry
    assert bills[0] == bills[1]
    assert bills[0] == (D("70.00"), D("0.00"), [D("-2931.00")])


def test_a_removed_discount_never_bills_a_line_above_its_cap(engine, session, catalog):
    """Case 4: with 20 % off, a 10.00 cap buys 12.50 of list usage; removing the discount
    before the close left the line far above the cap. At close the line is held to what
    the cap buys at the price then in force; the units above it are shown, not billed."""
    add_customer(session)
    starting(engine, "cust_1", at("2026-10-01 00:00"))
    with engine.begin() as connection:
        connection.execute(update(table_of(Customer)).values(discount_percent=D(20)))
        quota_service.set_cap(
            connection=connection,
            catalog=catalog,
            customer_id="cust_1",
            product="product_analytics",
            amount=D(10),
            actor="test",
            now=at("2026-09-30"),
        )
    answer = send(
        engine, catalog, [event("a", 1_250_000, at="2026-10-20T10:00:00Z")], at("2026-10-21")
    )
    assert answer.accepted == 1  # 1,250,000: 12.50 at list, 10.00 after 20 % off
    with engine.begin() as connection:
        connection.execute(update(table_of(Customer)).values(discount_percent=None))
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, catalog, at("2026-11-01 01:00"), GRACE)
    assert lines_of(engine, "cust_1") == [
        ("2026-10", "usage", "product_analytics", D("1200000"), D("10.00")),
        ("2026-10", "capped", "product_analytics", D("50000"), D("0.00")),
    ]


def test_a_product_without_a_price_in_force_is_listed_upcoming_and_refused_until_it_starts(
    engine, session, catalog
):
    """Case 6: a product whose only price version starts in the future was missing from
    /v1/products and refused by quotes, yet its events were accepted and billed."""
    surveys = catalog.products["surveys"]
    later = dataclasses.replace(
        surveys,
        versions=(dataclasses.replace(surveys.versions[-1], effective_from=dt.date(2027, 1, 1)),),
    )
    launching = dataclasses.replace(catalog, products={**catalog.products, "surveys": later})
    listed = catalog_public(launching, dt.date(2026, 11, 30))
    assert "surveys" not in [p.key for p in listed.products]
    assert [(u.key, u.effective_from) for u in listed.upcoming] == [("surveys", "2027-01-01")]
    with pytest.raises(NoPriceInForce) as refused:
        quote(catalog=launching, usage={"surveys": D(2000)}, at=dt.date(2026, 11, 30))
    assert refused.value.field == "at"
    assert "its first version starts 2027-01-01" in refused.value.message
    add_customer(session)
    starting(engine, "cust_1", at("2026-11-01 00:00"))
    answer = send(
        engine,
        launching,
        [
            event("s1", 10, "surveys", at="2026-12-31T23:59:59Z"),
            event("s2", 10, "surveys", at="2027-01-01T00:00:00Z"),
            event("p1", 10, "product_analytics", at="2026-12-31T23:59:59Z"),
        ],
        at("2027-01-01 00:01"),
    )
    assert [(r.id, r.error) for r in answer.rejected] == [
        ("s1", "no_price_in_force: surveys is priced from 2027-01-01")
    ]
    assert answer.accepted == 2


def _discount(engine, customer, percent):
    table = table_of(Customer)
    with engine.begin() as connection:
        connection.execute(
            update(table).where(table.c.id == customer).values(discount_percent=D(percent))
        )


def _invoice(engine, number):
    invoices, lines = table_of(Invoice), table_of(InvoiceLine)
    with engine.connect() as connection:
        found = resolve_invoice_id(connection, number)
        row = connection.execute(select(invoices).where(invoices.c.id == found)).one()
        shown = connection.execute(
            select(lines.c.kind, lines.c.quantity, lines.c.amount)
            .where(lines.c.invoice_id == found)
            .order_by(lines.c.position)
        ).all()
    return row, [tuple(line) for line in shown]


def test_a_replacement_never_gives_back_what_another_invoice_billed(
    engine, session, catalog, amend
):
    """October billed 5.00, and its late usage 5.00 on November's invoice; a 60 % discount
    since makes all of October cost 4.00: its replacement bills 10.00 - 6.00 and takes
    back 4.00 of what November billed, not 5.00 (a net below zero, with a made-up credits
    line, was the result): a refund is a credit note on November's invoice."""
    _late_october(engine, session, catalog, amend)
    _discount(engine, "cust_1", "60")
    _void(engine, amend, "INV-000001", reissue=True)
    row, lines = _invoice(engine, "INV-000003")
    assert lines == [
        ("usage", D("1200000"), D("10.00")),
        ("discount", D("1"), D("-6.00")),
        ("adjustment", D("-100000"), D("-4.00")),
    ]
    assert (row.total, row.credits_applied, row.amount_due) == (D("0.00"), D("0.00"), D("0.00"))


def test_a_written_off_period_keeps_its_discount_for_late_usage(engine, session, catalog, amend):
    """October billed 2.50 at 50 % off, voided without re-issue (written off); the discount
    removed; 100,000 late October events: the adjustment prices them at the discount the
    written-off invoice billed (2.50), not today's (7.50 billed written-off units again)."""
    add_customer(session)
    starting(engine, "cust_1", at("2026-10-01 00:00"))
    _discount(engine, "cust_1", "50")
    send(engine, catalog, [event("a", 1_100_000, at="2026-10-20T10:00:00Z")], at("2026-10-21"))
    with freeze_time("2026-11-01 01:00"):
        close_due(engine, catalog, at("2026-11-01 01:00"), GRACE)
    _void(engine, amend, "INV-000001", reissue=False, now=at("2026-11-01 09:00"))
    _discount(engine, "cust_1", "0")
    send(engine, amend, [event("b", 100_000, at="2026-10-30T10:00:00Z")], at("2026-11-02"))
    with freeze_time("2026-12-01 01:00"):
        close_due(engine, amend, at("2026-12-01 01:00"), GRACE)
    late = [line for line in lines_of(engine, "cust_1") if line[1] == "adjustment"]
    assert late == [("2026-10", "adjustment", "product_analytics", D("100000"), D("2.50"))]


def test_a_replacement_is_credited_no_more_than_it_charged(engine, session, catalog, amend):
    """The replacement above nets 0.00 for October's analytics (10.00 - 6.00 - 4.00 billed
    on November's invoice): a credit note finds nothing left on its usage line, and a
    quantity is refused (its units are partly billed elsewhere)."""
    test_a_replacement_never_gives_back_what_another_invoice_billed(engine, session, catalog, amend)
    with engine.begin() as connection:
        replacement = resolve_invoice_id(connection, "INV-000003")
        for request, error in (
            (LineRequest(line=1, amount=D("1.00")), CreditExceedsInvoice),
            (LineRequest(line=1, quantity=D(1000)), InvalidCreditNoteLine),
        ):
            with pytest.raises(error):
                create_credit_note(
                    connection,
                    amend,
                    replacement,
                    reason="goodwill",
                    lines=[request],
                    outcome=CreditNoteOutcome.REDUCE_DUE,
                    actor="finance",
                    now=at("2026-12-03 09:00"),
                )
