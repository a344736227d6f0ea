"""Billing events end to end, against real receivers over HTTP on 127.0.0.1: every change of
money or access in a customer's life writes its event in the transaction of the change;
each is delivered once per endpoint (across retries and runs), signed so the receiver's
check in docs/webhooks.md passes; one endpoint held by a slow receiver delays only itself;
a rotated secret keeps signing beside the new one during its overlap."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from billing.commitments import service as commitments
from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.corrections.void import void
from billing.invoicing.models import CreditNoteOutcome
from billing.invoicing.payments import PaymentEvent, apply_event
from billing.metering import service as metering_service
from billing.notifications import endpoints
from billing.notifications.delivery import deliver_due
from billing.notifications.signing import HEADER, verify
from billing.pipeline import close_due
from billing.webhooks_out.send import send
from tests.caps.helpers import set_cap
from tests.metering.helpers import add_customer, event
from tests.servers import Receiver

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=1)
SEND = functools.partial(send, deadline=5, allow_private=True)


def make_endpoint(engine, url, events=("*",), customer="cust_1", at=START):
    with engine.begin() as connection:
        row, secret = endpoints.create(
            connection,
            url=url,
            events=list(events),
            customer=customer,
            description="test",
            actor="test",
            now=at,
        )
    return row.id, secret


def received(receiver):
    """(event id, type) of every request the receiver got, in order."""
    return [(json.loads(b)["id"], json.loads(b)["type"]) for _, b in receiver.requests]


def test_a_customers_life_reaches_its_endpoint_once_each_signed(engine, session, catalog):
    receiver = Receiver()
    try:
        add_customer(session, billing_start=START)
        endpoint_id, secret = make_endpoint(engine, receiver.url)
        connection = session.connection()
        # a cap, and usage past it: spend_cap.changed, usage.alert, spend_cap.reached
        set_cap(connection, catalog, "cust_1", "product_analytics", D(10), START)
        metering_service.ingest(
            connection=connection,
            catalog=catalog,
            raw_events=[event("e1", 3_000_000, at="2026-10-05T10:00:00Z")],
            now=dt.datetime(2026, 10, 5, 11, tzinfo=dt.UTC),
        )
        session.commit()
        # October closes: invoice.finalized; then it is paid: invoice.paid
        assert close_due(engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), GRACE)
        with engine.begin() as connection:
            october = connection.execute(text("SELECT id FROM invoice")).scalar_one()
            apply_event(
                connection,
                invoice_id=october,
                event=PaymentEvent.PAID,
                at=dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
            )
        # a commitment: commitment.started, its invoice, credits.granted (the first release)
        at = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)
        with engine.begin() as connection:
            started = commitments.start(connection, catalog, "cust_1", D(3000), 1, at)
        # a credit note to the balance: credit_note.created, credits.granted
        with engine.begin() as connection:
            create_credit_note(
                connection,
                catalog,
                october,
                reason="goodwill",
                lines=[LineRequest(line=1, amount=D("1.00"))],
                outcome=CreditNoteOutcome.CREDIT_BALANCE,
                actor="test",
                now=at,
            )
        # the commitment's invoice voided: invoice.voided, commitment.ended (cancelled)
        with engine.begin() as connection:
            void(
                connection,
                catalog,
                started.invoices[0].id,
                reason="changed their mind",
                actor="test",
                now=at,
                reissue=False,
            )

        with engine.connect() as connection:
            written = connection.execute(  # in the order they were written
                text(
                    "SELECT e.id, e.type FROM notification_event e JOIN webhook_delivery d "
                    "ON d.event_id = e.id ORDER BY d.event_created_at, d.id"
                )
            ).all()
        types = {t for _, t in written}
        for expected in (
            "spend_cap.changed",
            "usage.alert",
            "spend_cap.reached",
            "invoice.finalized",
            "invoice.paid",
            "commitment.started",
            "credits.granted",
            "credit_note.created",
            "invoice.voided",
            "commitment.ended",
        ):
            assert expected in types, expected

        receiver.status = 500  # the first run fails: nothing is lost, the order holds
        first = deliver_due(engine, SEND, now=at)
        assert (first.delivered, first.retrying) == (0, 1)  # the oldest failed; the rest wait
        receiver.status = 200
        later = at + dt.timedelta(minutes=1)
        report = deliver_due(engine, SEND, now=later)
        assert report.delivered == len(written)
        assert deliver_due(engine, SEND, now=later + dt.timedelta(hours=1)).delivered == 0

        got = received(receiver)
        assert got[0] == got[1]  # the failed attempt, then the same event again
        assert got[1:] == [(i, t) for i, t in written]  # each once, in the order written
        for headers, body in receiver.requests:
            stamp = int(headers[HEADER].split(",")[0].removeprefix("t="))
            assert verify(secret, headers[HEADER], body, stamp)
            assert headers["Billing-Event-Id"] == json.loads(body)["id"]
        invoice = next(json.loads(b) for _, b in receiver.requests if b"invoice.paid" in b)
        assert invoice["data"]["status"] == "paid"  # the object as the API answers it
        assert invoice["data"]["number"].startswith("INV-")
        assert invoice["customer"] == "cust_1"
        assert endpoint_id
    finally:
        receiver.close()


def test_a_trickling_endpoint_delays_only_itself(engine, session, catalog):
    slow, fast = Receiver(), Receiver()
    release = threading.Event()
    held = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def trickle(handler):  # one byte of its answer every 0.2 s until released, then the rest
        body = handler.rfile.read(int(handler.headers["Content-Length"]))
        slow.requests.append((dict(handler.headers), body))
        held.set()
        sent = 0
        while not release.is_set() and sent < len(answer) - 1:
            handler.wfile.write(answer[sent : sent + 1])
            handler.wfile.flush()
            sent += 1
            release.wait(0.2)
        handler.wfile.write(answer[sent:])
        handler.wfile.flush()
        handler.close_connection = True

    slow.server.RequestHandlerClass.do_POST = trickle
    try:
        add_customer(session, billing_start=START)
        slow_id, _ = make_endpoint(engine, slow.url)
        fast_id, _ = make_endpoint(engine, fast.url)
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), START)
        session.commit()

        def statuses(endpoint_id):
            with engine.connect() as connection:
                query = text("SELECT status FROM webhook_delivery WHERE endpoint_id = :e")
                return list(connection.execute(query, {"e": endpoint_id}).scalars())

        runner = threading.Thread(
            target=deliver_due,
            args=(engine, functools.partial(send, deadline=30, allow_private=True)),
            kwargs={"now": START},
        )
        runner.start()
        assert held.wait(20)
        for _ in range(200):  # the other endpoint's delivery completes meanwhile
            if statuses(fast_id) == ["delivered"]:
                break
            threading.Event().wait(0.05)
        assert statuses(fast_id) == ["delivered"]
        assert len(fast.requests) == 1
        assert runner.is_alive()  # the slow one is still trickling its answer
        assert statuses(slow_id) == ["pending"]
        release.set()
        runner.join(30)
        assert len(slow.requests) == 1
        assert statuses(slow_id) == ["delivered"]
    finally:
        release.set()
        slow.close()
        fast.close()


def test_a_rotated_secret_signs_beside_the_new_one_during_its_overlap(engine, session, catalog):
    receiver = Receiver()
    try:
        add_customer(session, billing_start=START)
        endpoint_id, old = make_endpoint(engine, receiver.url)
        with engine.begin() as connection:
            _, new = endpoints.rotate(connection, endpoint_id, dt.timedelta(hours=24), START)
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), START)
        session.commit()
        deliver_due(engine, SEND, now=START + dt.timedelta(hours=1))
        [(headers, body)] = receiver.requests
        stamp = int(headers[HEADER].split(",")[0].removeprefix("t="))
        assert headers[HEADER].count("v1=") == 2
        assert verify(old, headers[HEADER], body, stamp)
        assert verify(new, headers[HEADER], body, stamp)
        # after the overlap, the old secret no longer signs
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(20), START)
        session.commit()
        later = START + dt.timedelta(hours=25)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE notification_event SET created_at = :at"), {"at": later}
            )
        deliver_due(engine, SEND, now=later)
        headers, body = receiver.requests[-1]
        stamp = int(headers[HEADER].split(",")[0].removeprefix("t="))
        assert headers[HEADER].count("v1=") == 1
        assert verify(new, headers[HEADER], body, stamp)
        assert not verify(old, headers[HEADER], body, stamp)
    finally:
        receiver.close()


@pytest.mark.parametrize("event_type", ["invoice.paid", "spend_cap.changed"])
def test_an_endpoint_receives_only_the_types_it_chose(engine, session, catalog, event_type):
    receiver = Receiver()
    try:
        add_customer(session, billing_start=START)
        make_endpoint(engine, receiver.url, events=[event_type])
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), START)
        session.commit()
        deliver_due(engine, SEND, now=START)
        assert [t for _, t in received(receiver)] == (
            ["spend_cap.changed"] if event_type == "spend_cap.changed" else []
        )
    finally:
        receiver.close()


def test_an_invoice_events_data_is_the_invoice_the_api_answers(engine, session, catalog):
    """A re-issue's invoice.finalized carries `replaces` as GET /v1/invoices/{id} does."""
    from billing.invoicing.service import get_invoice
    from billing.settings import get_settings

    add_customer(session, billing_start=START)
    make_endpoint(engine, "https://hooks.example.com/billing")
    metering_service.ingest(
        connection=session.connection(),
        catalog=catalog,
        raw_events=[event("e1", 3_000_000, at="2026-10-05T10:00:00Z")],
        now=dt.datetime(2026, 10, 5, 11, tzinfo=dt.UTC),
    )
    session.commit()
    assert close_due(engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), GRACE)
    with engine.begin() as connection:
        october = connection.execute(text("SELECT id FROM invoice")).scalar_one()
        void(
            connection,
            catalog,
            october,
            reason="wrong address",
            actor="test",
            now=dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
            reissue=True,
        )
    with engine.connect() as connection:
        payloads = [
            json.loads(p)
            for p in connection.execute(
                text("SELECT payload FROM notification_event WHERE type = 'invoice.finalized'")
            ).scalars()
        ]
        due_days = get_settings().invoice_due_days
        [reissued] = [p["data"] for p in payloads if p["data"]["id"] != october]
        answered = get_invoice(connection, reissued["id"], due_days=due_days)
    assert reissued["replaces"] == october
    assert reissued["replaces_number"] == answered.replaces_number
    assert reissued == answered.model_dump(mode="json", by_alias=True)
