"""An endpoint that keeps failing is disabled after 50 attempts in a row, and its owner and
the operators are told: the log, a `webhook_endpoint.disabled` event to admin endpoints,
and an email to the customer's billing email and to BILLING_ADMIN_EMAIL, through a real SMTP
server. The customer reads a reason that says nothing of internal addresses; its events wait,
in order, and go out once it is enabled again."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging

from sqlalchemy import select, update
from sqlmodel import Session

from billing.db import table_of
from billing.notices.sending import send_due
from billing.notifications import endpoints
from billing.notifications.delivery import DISABLE_AFTER, MAX_ATTEMPTS, deliver_due
from billing.notifications.models import WebhookDelivery, WebhookEndpoint
from billing.webhooks_out.send import send
from tests.conftest import free_port
from tests.email.conftest import add_customer, outbox_rows, text_of
from tests.servers import Receiver

START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
SEND = functools.partial(send, deadline=5, allow_private=True)
PORTAL = "https://billing.acme.example"


def make_endpoint(engine, url, customer):
    with engine.begin() as connection:
        row, _ = endpoints.create(
            connection,
            url=url,
            events=["*"],
            customer=customer,
            description="",
            actor="test",
            now=START,
        )
    return row.id


def pings(engine, endpoint_id, count):
    with engine.begin() as connection:
        return [endpoints.test_event(connection, endpoint_id, START) for _ in range(count)]


def run_until_disabled(engine, endpoint_id):
    """Delivery runs, the clock moved past each backoff, until the endpoint is disabled;
    the attempts made and the moment of the last run."""
    at = START
    for _ in range(DISABLE_AFTER + 5):
        deliver_due(engine, SEND, now=at)
        with engine.connect() as connection:
            if endpoints.get(connection, endpoint_id).status == "disabled":
                return at
        at += dt.timedelta(hours=7)  # past the longest backoff (6 hours)
    raise AssertionError("never disabled")


def attempts_of(engine, endpoint_id):
    table = table_of(WebhookDelivery)
    with engine.connect() as connection:
        query = select(table.c.event_id, table.c.status, table.c.attempts).where(
            table.c.endpoint_id == endpoint_id
        )
        return list(connection.execute(query.order_by(table.c.event_created_at, table.c.id)))


def test_fifty_failures_disable_an_endpoint_and_its_owner_and_the_operators_are_told(
    engine, catalog, mailbox, caplog
):
    with Session(engine) as session:
        add_customer(session)  # acme, billing email ops@acme.example
    admin = Receiver()
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens: connection refused
    try:
        admin_endpoint = make_endpoint(engine, admin.url, None)
        endpoint_id = make_endpoint(engine, dead, "acme")
        # 5 events: 12 + 12 + 12 + 12 failed attempts, then the 5th event's second fails
        events = pings(engine, endpoint_id, 5)
        with caplog.at_level(logging.ERROR, logger="billing.notifications.delivery"):
            disabled_at = run_until_disabled(engine, endpoint_id)

        rows = attempts_of(engine, endpoint_id)
        assert [r.event_id for r in rows] == events
        assert [r.attempts for r in rows] == [MAX_ATTEMPTS] * 4 + [2]
        assert sum(r.attempts for r in rows) == DISABLE_AFTER == 50
        assert [r.status for r in rows] == ["failed"] * 4 + ["pending"]

        with engine.connect() as connection:
            endpoint = endpoints.get(connection, endpoint_id)
        # The owner's reason: no address, no port (the detail is for the operators).
        assert endpoint.disabled_reason.startswith("50 attempts failed in a row; the last: ")
        assert "127.0.0.1" not in endpoint.disabled_reason
        [logged] = [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()]
        assert endpoint_id in logged
        assert "127.0.0.1" in logged  # the log has the detail

        # Admin endpoints hear of it, with the detail.
        deliver_due(engine, SEND, now=disabled_at)
        [notice] = [json.loads(b) for _, b in admin.requests if b"disabled" in b]
        assert notice["type"] == "webhook_endpoint.disabled"
        assert notice["data"]["id"] == endpoint_id
        assert notice["data"]["customer"] == "acme"
        assert "127.0.0.1" in notice["data"]["disabled_reason"]

        # And by email: the billing contact and the operators, once each.
        settings = mailbox.settings(admin_email="ops-team@billing.example", public_url=PORTAL)
        assert send_due(engine, settings, disabled_at).sent == 2
        assert send_due(engine, settings, disabled_at + dt.timedelta(hours=1)).sent == 0
        to_customer, to_operators = sorted(
            mailbox.received, key=lambda m: m["To"] != "ops@acme.example"
        )
        assert to_customer["To"] == "ops@acme.example"
        assert to_customer["Subject"] == f"[Acme Analytics] Webhook endpoint disabled: {dead}"
        body = text_of(to_customer)
        when = disabled_at.strftime("%Y-%m-%d %H:%M UTC")
        assert f"Your webhook endpoint {endpoint_id} at {dead} was disabled on {when}" in body
        assert endpoint.disabled_reason in body
        assert "wait, in order" in body
        assert f"{PORTAL}/portal/webhooks/{endpoint_id}" in body
        assert "connection refused" not in body.lower()
        assert to_operators["To"] == "ops-team@billing.example"
        assert to_operators["Subject"] == f"Webhook endpoint disabled: {dead}"
        operators = text_of(to_operators)
        assert f"The webhook endpoint {endpoint_id} of customer acme" in operators
        assert f"GET /v1/webhook-endpoints/{endpoint_id}/deliveries" in operators

        # Disabled, nothing is attempted; its events wait.
        pings(engine, endpoint_id, 1)
        later = disabled_at + dt.timedelta(days=1)
        deliver_due(engine, SEND, now=later)
        assert sum(r.attempts for r in attempts_of(engine, endpoint_id)) == 50

        # Enabled again (the receiver now up), what it is owed goes out in order.
        receiver = Receiver()
        try:
            with engine.begin() as connection:
                table = table_of(WebhookEndpoint)
                connection.execute(
                    update(table).where(table.c.id == endpoint_id).values(url=receiver.url)
                )
                endpoints.set_status(connection, endpoint_id, True)
            deliver_due(engine, SEND, now=later)
            sent = [json.loads(b)["id"] for _, b in receiver.requests]
            assert sent == [r.event_id for r in attempts_of(engine, endpoint_id)][4:]
        finally:
            receiver.close()
        assert admin_endpoint
    finally:
        admin.close()


def test_no_notice_once_enabled_again_nor_to_operators_without_an_address(engine, catalog, mailbox):
    with Session(engine) as session:
        add_customer(session)
    endpoint_id = make_endpoint(engine, f"http://127.0.0.1:{free_port()}/hooks", "acme")
    pings(engine, endpoint_id, 5)
    disabled_at = run_until_disabled(engine, endpoint_id)
    # No BILLING_ADMIN_EMAIL: the operators' notice is skipped, saying why.
    settings = mailbox.settings()
    with engine.begin() as connection:
        endpoints.set_status(connection, endpoint_id, True)  # enabled before the notice
    assert send_due(engine, settings, disabled_at).skipped == 2
    assert mailbox.received == []
    reasons = {r.reference.startswith("admin:"): r.last_error for r in outbox_rows(engine)}
    assert reasons == {
        True: "the endpoint was enabled again before its notice was sent",
        False: "the endpoint was enabled again before its notice was sent",
    }


def test_an_operators_notice_without_the_address_is_skipped_saying_why(engine, catalog, mailbox):
    endpoint_id = make_endpoint(engine, f"http://127.0.0.1:{free_port()}/hooks", None)
    pings(engine, endpoint_id, 5)
    disabled_at = run_until_disabled(engine, endpoint_id)
    assert send_due(engine, mailbox.settings(), disabled_at).skipped == 1
    [row] = outbox_rows(engine)
    assert (row.customer_id, row.status, row.last_error) == (
        None,
        "skipped",
        "no BILLING_ADMIN_EMAIL",
    )
    with_address = mailbox.settings(admin_email="ops-team@billing.example")
    assert send_due(engine, with_address, disabled_at).sent == 0  # skipped for good
