"""Money after the invoice, on SQLite and PostgreSQL: voids only for unpaid invoices, credit
notes (by amount, by quantity re-priced, whole lines; never more than the invoice; gapless
CN- numbers; immutable), where the credited money goes, and commitments cancelled by a void
or a note."""

import datetime as dt
from decimal import Decimal as D

import pytest
from freezegun import freeze_time
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing.commitments import service as commitments
from billing.commitments.models import Commitment
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.corrections.void import void
from billing.credits import ledger
from billing.customers.models import Customer
from billing.db import table_of
from billing.errors import (
    CommitmentBelowRunning,
    CommitmentCreditUsed,
    CreditExceedsInvoice,
    InvalidCreditNoteLine,
    InvoicePaid,
    OutcomeNotAllowed,
)
from billing.invoicing import payments
from billing.invoicing.models import CreditNoteLine, CreditNoteOutcome, Invoice, InvoiceLine
from billing.invoicing.payments import PaymentEvent
from billing.invoicing.service import get_invoice, resolve_invoice_id
from billing.pipeline import advance, close_due
from tests.invoicing.test_close import GRACE, NOV_1, at_oct, created, ingest

AFTER = NOV_1 + dt.timedelta(hours=2)
REDUCE, REFUND, BALANCE = (
    CreditNoteOutcome.REDUCE_DUE,
    CreditNoteOutcome.REFUND,
    CreditNoteOutcome.CREDIT_BALANCE,
)


@pytest.fixture
def october(engine, session, catalog):
    """cust_1's October invoice: 1,200,000 events (10.00) and 10,000 recordings (25.00)."""
    created(session)
    ingest(session, catalog, [at_oct("a", 1_200_000), at_oct("b", 10_000, "session_replay")])
    close_due(engine, catalog, AFTER, GRACE)
    with engine.connect() as connection:
        return resolve_invoice_id(connection, "INV-000001")


def paid(engine, invoice_id, at=AFTER):
    with engine.begin() as connection:
        decision = payments.apply_event(
            connection, invoice_id=invoice_id, event=PaymentEvent.PAID, at=at
        )
    assert decision.applied


def note(engine, catalog, invoice_id, lines, outcome=REDUCE, now=AFTER):
    with engine.begin() as connection:
        return create_credit_note(
            connection,
            catalog,
            invoice_id,
            reason="duplicate events",
            lines=[LineRequest(**line) for line in lines],
            outcome=outcome,
            actor="finance key 2",
            now=now,
        )


def shown(engine, invoice_id):
    with engine.connect() as connection:
        return get_invoice(connection, invoice_id, due_days=30)


def test_a_paid_invoice_is_not_voided_nor_billed_again(engine, catalog, october):
    paid(engine, october)
    with engine.begin() as connection, pytest.raises(InvoicePaid) as refused:
        void(
            connection,
            catalog,
            october,
            reason="wrong prices",
            actor="finance key 2",
            now=AFTER,
            reissue=True,
        )
    assert "credit note" in refused.value.message
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM invoice")).scalar_one() == 1
    assert shown(engine, october).status == "paid"


def test_a_note_credits_an_amount_a_quantity_and_a_whole_line_exactly(engine, catalog, october):
    first = note(engine, catalog, october, [{"line": 1, "amount": D("2.50")}])
    # 1,200,000 events cost 10.00; 200,000 fewer re-priced: 1,000,000 are free, so 10.00
    second = note(engine, catalog, october, [{"line": 2, "quantity": D("2000")}])
    assert (first.number, first.total) == ("CN-000001", D("2.50"))
    # 10,000 recordings: 5,000 free + 5,000 x 0.005 = 25.00; 8,000: 15.00, so 10.00 off
    assert (second.number, second.total, second.lines[0].quantity) == (
        "CN-000002",
        D("10.00"),
        D("2000"),
    )
    third = note(engine, catalog, october, [{"line": 1}])  # what is left of line 1
    assert third.total == D("7.50")
    invoice = shown(engine, october)
    assert (invoice.total, invoice.credited_total, invoice.net_total) == ("35.00", "20.00", "15.00")
    assert invoice.amount_remaining == "15.00"
    assert [n.number for n in invoice.credit_notes] == ["CN-000001", "CN-000002", "CN-000003"]


def test_a_note_never_credits_more_than_is_left(engine, catalog, october):
    note(engine, catalog, october, [{"line": 1, "amount": D("9.00")}])
    with pytest.raises(CreditExceedsInvoice) as refused:
        note(engine, catalog, october, [{"line": 1, "amount": D("1.01")}])
    assert refused.value.field == "lines.0.amount"
    with pytest.raises(CreditExceedsInvoice):
        note(engine, catalog, october, [{"line": 2, "quantity": D("10001")}])
    with pytest.raises(InvalidCreditNoteLine):
        note(engine, catalog, october, [{"line": 9}])
    with pytest.raises(InvalidCreditNoteLine):
        note(engine, catalog, october, [{"line": 2, "amount": D("1"), "quantity": D("1")}])
    assert shown(engine, october).credited_total == "9.00"  # the refused ones wrote nothing


def test_the_outcome_follows_the_invoice_state(engine, catalog, october):
    with pytest.raises(OutcomeNotAllowed):
        note(engine, catalog, october, [{"line": 1}], outcome=REFUND)
    with pytest.raises(OutcomeNotAllowed):
        note(engine, catalog, october, [{"line": 1}], outcome=BALANCE)
    paid(engine, october)
    with pytest.raises(OutcomeNotAllowed):
        note(engine, catalog, october, [{"line": 1}], outcome=REDUCE)
    refund = note(engine, catalog, october, [{"line": 1, "amount": D("4.00")}], outcome=REFUND)
    credit = note(engine, catalog, october, [{"line": 2, "amount": D("5.00")}], outcome=BALANCE)
    assert (refund.outcome, credit.outcome) == ("refund", "credit_balance")
    invoice = shown(engine, october)
    figures = (invoice.status, invoice.net_total, invoice.amount_remaining)
    assert figures == ("paid", "26.00", "0.00")
    with engine.connect() as connection:
        assert ledger.balances(connection, "cust_1") == ledger.Balance(D("5.00"), D("5.00"))


def test_credit_from_a_note_is_drawn_after_commitment_credit_and_never_expires(
    engine, session, catalog, october
):
    paid(engine, october)
    note(engine, catalog, october, [{"line": 2, "amount": D("20.00")}], outcome=BALANCE)
    with engine.begin() as connection:
        ledger.append(connection, "cust_1", "grant", D("8.00"), AFTER, note="commitment credit")
        # November's usage draws 12.00: the 8.00 of commitment credit first, then 4.00
        ledger.append(connection, "cust_1", "draw", D("-12.00"), AFTER, reference="inv_x")
        assert ledger.balances(connection, "cust_1") == ledger.Balance(D("16.00"), D("16.00"))
        drawn = ledger.drawn_by(connection, "cust_1", "inv_x")
    assert drawn == ledger.Balance(D("12.00"), D("4.00"))


def test_a_quantity_credit_re_prices_at_the_invoice_discount(engine, session, catalog):
    created(session)
    session.connection().execute(update(table_of(Customer)).values(discount_percent=D(15)))
    session.commit()
    ingest(session, catalog, [at_oct("a", 1_200_000)])
    close_due(engine, catalog, AFTER, GRACE)
    with engine.connect() as connection:
        invoice_id = resolve_invoice_id(connection, "INV-000001")
    # 10.00 less 15 % = 8.50; 100,000 fewer: 5.00 less 0.75 = 4.25; credited 4.25
    made = note(engine, catalog, invoice_id, [{"line": 1, "quantity": D("100000")}])
    assert made.total == D("4.25")
    assert shown(engine, invoice_id).net_total == "4.25"


def test_credit_note_numbers_have_no_gaps_and_notes_are_immutable(engine, catalog, october):
    note(engine, catalog, october, [{"line": 1, "amount": D("1.00")}])
    with pytest.raises(CreditExceedsInvoice):  # rolled back: gives its number back
        note(engine, catalog, october, [{"line": 1, "amount": D("50.00")}])
    made = note(engine, catalog, october, [{"line": 1, "amount": D("1.00")}])
    assert made.number == "CN-000002"
    with engine.connect() as connection:
        for statement in (
            text("UPDATE credit_note SET reason = 'edited'"),
            text("DELETE FROM credit_note_line"),
            text("UPDATE credit_note_line SET amount = 0"),
        ):
            with pytest.raises((DBAPIError, IntegrityError)):
                connection.execute(statement)
            connection.rollback()
        with pytest.raises((DBAPIError, IntegrityError)):
            connection.execute(
                insert(table_of(CreditNoteLine)).values(
                    customer_id=made.customer_id,
                    credit_note_id=made.id,
                    position=2,
                    invoice_line=2,
                    description="slipped in",
                    amount=D("100.00"),
                )
            )
        connection.rollback()


def test_an_issued_invoice_cannot_grow_change_or_lose_a_line(engine, october):
    """Case 7 of the issue: a line inserted into a finalized invoice was accepted."""
    lines, invoices = table_of(InvoiceLine), table_of(Invoice)
    with engine.connect() as connection:
        customer = connection.execute(
            select(invoices.c.customer_id).where(invoices.c.id == october)
        ).scalar_one()
        connection.rollback()
        for position in (3, 1):
            with pytest.raises((DBAPIError, IntegrityError)):
                connection.execute(
                    insert(lines).values(
                        customer_id=customer,
                        invoice_id=october,
                        position=position,
                        kind="usage",
                        product="product_analytics",
                        description="slipped in",
                        quantity=D(1),
                        unit_amount=D("1000.00"),
                        amount=D("1000.00"),
                        detail="",
                    )
                )
            connection.rollback()
        for statement in (
            update(lines).values(amount=D("0.01")),
            text("DELETE FROM invoice_line"),
            update(table_of(Invoice)).values(amount_due=D("0.01")),
            update(table_of(Invoice)).values(line_count=9),
        ):
            with pytest.raises((DBAPIError, IntegrityError)):
                connection.execute(statement)
            connection.rollback()
        assert connection.execute(select(lines.c.amount)).scalars().all() == [
            D("10.00"),
            D("25.00"),
        ]


def test_a_terminal_invoice_never_moves_in_the_database_either(engine, october):
    paid(engine, october)
    with engine.connect() as connection:
        for status in ("finalized", "void", "payment_failed"):
            with pytest.raises((DBAPIError, IntegrityError)):
                connection.execute(update(table_of(Invoice)).values(status=status))
            connection.rollback()


YEAR = dt.datetime(2027, 1, 5, 9, tzinfo=dt.UTC)


def _committed(engine, session, catalog, credit=D(12000)):
    """cust_1 with a monthly-release commitment started in January 2027; its invoice id."""
    created(session, at=dt.datetime(2026, 12, 20, tzinfo=dt.UTC))
    with engine.begin() as connection:
        outcome = commitments.start(connection, catalog, "cust_1", credit, 1, YEAR)
    return outcome.invoices[0].id, outcome.commitment_id


def _status(engine, commitment_id):
    table = table_of(Commitment)
    with engine.connect() as connection:
        return connection.execute(
            select(table.c.status).where(table.c.id == commitment_id)
        ).scalar_one()


def test_voiding_an_unpaid_commitment_invoice_cancels_the_commitment(engine, session, catalog):
    """Case 2 of the issue: the commitment stayed active and a new one was refused."""
    invoice_id, commitment_id = _committed(engine, session, catalog)
    with engine.begin() as connection:
        assert ledger.balance(connection, "cust_1") == D("1000.00")  # January's release
        void(
            connection,
            catalog,
            invoice_id,
            reason="bought by mistake",
            actor="admin key 1",
            now=YEAR,
            reissue=False,
        )
        assert ledger.balance(connection, "cust_1") == D("0.00")
    assert _status(engine, commitment_id) == "cancelled"
    with engine.begin() as connection:  # nothing more is released in February
        assert commitments.run_due(connection, catalog, YEAR + dt.timedelta(days=40)) == []
        assert ledger.balance(connection, "cust_1") == D("0.00")
        replacement = commitments.start(connection, catalog, "cust_1", D(6000), 1, YEAR)
    assert replacement.commitment_id != commitment_id


def test_a_commitment_whose_credit_was_used_is_not_voided(engine, session, catalog):
    invoice_id, commitment_id = _committed(engine, session, catalog)
    with engine.begin() as connection:
        ledger.append(connection, "cust_1", "draw", D("-300.00"), YEAR, reference="inv_usage")
    with engine.begin() as connection, pytest.raises(CommitmentCreditUsed) as refused:
        void(
            connection,
            catalog,
            invoice_id,
            reason="changed our mind",
            actor="admin key 1",
            now=YEAR,
            reissue=False,
        )
    assert "300.00" in refused.value.message
    assert _status(engine, commitment_id) == "active"
    with engine.begin() as connection, pytest.raises(CommitmentBelowRunning):
        commitments.start(connection, catalog, "cust_1", D(6000), 1, YEAR)


def test_a_paid_commitment_is_cancelled_by_a_note_for_its_unused_credit(engine, session, catalog):
    """12,000 a year, monthly release, 10 % bracket: 10,800.00 paid. After three releases
    (3,000) of which 1,200 used: unused = 1,800 available + 9,000 unreleased = 10,800,
    worth 10,800 x 10,800 / 12,000 = 9,720.00 at the rate paid (docs/discounts.md)."""
    invoice_id, commitment_id = _committed(engine, session, catalog)
    march = dt.datetime(2027, 3, 10, tzinfo=dt.UTC)
    with freeze_time(march), engine.begin() as connection:
        advance(connection, catalog, "cust_1", march, GRACE)  # closes, then releases
        ledger.append(connection, "cust_1", "draw", D("-1200.00"), march, reference="inv_use")
        assert ledger.balance(connection, "cust_1") == D("1800.00")
    paid(engine, invoice_id, at=YEAR + dt.timedelta(days=1))
    with engine.begin() as connection:
        assert get_invoice(connection, invoice_id, due_days=30).total == "10800.00"
    with pytest.raises(CreditExceedsInvoice):
        note(engine, catalog, invoice_id, [{"line": 1, "amount": D("9720.01")}], REFUND, march)
    refund = note(engine, catalog, invoice_id, [{"line": 1}], outcome=REFUND, now=march)
    assert refund.total == D("9720.00")
    assert _status(engine, commitment_id) == "cancelled"
    with engine.begin() as connection:
        assert ledger.balance(connection, "cust_1") == D("0.00")  # the 1,800 withdrawn
        assert commitments.run_due(connection, catalog, march + dt.timedelta(days=40)) == []
