"""Alert webhooks against a real HTTP receiver: signed, retried with backoff on 500s and
timeouts, marked failed after the last attempt; URLs checked before they are stored."""

import datetime as dt
import re
import socket
import time
from decimal import Decimal as D

import pytest

from billing.alerts import service as alerts_service
from billing.alerts.delivery import BACKOFF, MAX_ATTEMPTS, deliver_due
from billing.alerts.settings import update_settings
from billing.alerts.signing import HEADER, signature, verify
from billing.alerts.webhooks import check_url
from billing.errors import InvalidThreshold, WebhookUrlNotAllowed
from billing.metering import service as metering_service
from billing.webhooks_out.send import no_answer_reason
from tests.caps.helpers import set_cap
from tests.conftest import REPO
from tests.metering.helpers import NOW, add_customer, event


def fire_cap_50(session, catalog, receiver):
    add_customer(session)
    customer = update_settings(
        connection=session.connection(),
        customer_id="cust_1",
        changes={"webhook_url": receiver.url, "free_allowance": False},
        allow_private=True,
    )
    secret = customer.webhook_secret
    session.commit()
    set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), NOW)
    metering_service.ingest(
        connection=session.connection(),
        catalog=catalog,
        raw_events=[event("e1", 1_100_000)],  # $5.00 of a $10 cap
        now=NOW,
    )
    session.commit()
    return secret


def alerts(session, detail=True):
    """The alerts as an admin sees them (with `detail`), or as the customer does."""
    listed = alerts_service.list_alerts(session.connection(), "cust_1", detail=detail)
    session.rollback()  # end the read: SQLite's next writer must not wait for this session
    return [alert.model_dump() for alert in listed]


def test_a_fired_alert_is_delivered_once_signed(engine, session, catalog, receiver):
    secret = fire_cap_50(session, catalog, receiver)
    assert secret.startswith("whsec_")
    [alert] = alerts(session)
    assert (alert["kind"], alert["delivery"]) == ("cap_50", "pending")
    report = deliver_due(engine, now=NOW, allow_private=True)
    assert (report.delivered, report.retrying, report.failed) == (1, 0, 0)
    [(headers, body)] = receiver.requests
    assert verify(secret, headers[HEADER], body, now=int(NOW.timestamp()))
    assert not verify(secret, headers[HEADER], body + b" ", now=int(NOW.timestamp()))
    assert not verify("whsec_other", headers[HEADER], body, now=int(NOW.timestamp()))
    assert b'"kind":"cap_50"' in body
    assert headers["Billing-Alert-Id"] == str(alert["id"])
    assert deliver_due(engine, now=NOW + dt.timedelta(hours=1), allow_private=True).delivered == 0
    assert len(receiver.requests) == 1
    assert alerts(session)[0]["delivery"] == "delivered"


def test_errors_are_retried_with_backoff_then_marked_failed(engine, session, catalog, receiver):
    fire_cap_50(session, catalog, receiver)
    receiver.status = 500
    at = NOW
    assert deliver_due(engine, now=at, allow_private=True).retrying == 1
    [alert] = alerts(session)
    assert (alert["delivery"], alert["attempts"], alert["last_error"]) == ("pending", 1, "HTTP 500")
    assert alerts(session, detail=False)[0]["last_error"] == "your endpoint answered HTTP 500"
    early = at + BACKOFF[0] - dt.timedelta(seconds=1)
    assert deliver_due(engine, now=early, allow_private=True).retrying == 0  # not yet due
    for attempt in range(1, MAX_ATTEMPTS):
        at += BACKOFF[attempt - 1]
        report = deliver_due(engine, now=at, allow_private=True)
        assert report.retrying + report.failed == 1
    assert report.failed == 1
    assert len(receiver.requests) == MAX_ATTEMPTS
    [alert] = alerts(session)
    assert (alert["delivery"], alert["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert deliver_due(engine, now=at + dt.timedelta(days=1), allow_private=True).failed == 0


def test_a_timeout_is_retried_and_a_later_success_delivers(engine, session, catalog, receiver):
    fire_cap_50(session, catalog, receiver)
    receiver.delay = 1.0
    report = deliver_due(engine, now=NOW, timeout=0.2, allow_private=True)
    assert report.retrying == 1
    assert "timed out after 0.2 s" in alerts(session)[0]["last_error"]
    assert alerts(session, detail=False)[0]["last_error"] == no_answer_reason(0.2)
    receiver.delay = 0
    later = NOW + BACKOFF[0]
    assert deliver_due(engine, now=later, timeout=2, allow_private=True).delivered == 1
    assert alerts(session)[0]["delivery"] == "delivered"


def test_private_addresses_are_refused_at_delivery_unless_allowed(
    engine, session, catalog, receiver
):
    fire_cap_50(session, catalog, receiver)
    report = deliver_due(engine, now=NOW, allow_private=False)
    assert report.retrying == 1
    assert receiver.requests == []
    assert alerts(session)[0]["last_error"] == "refused: 127.0.0.1 is a loopback address"
    assert alerts(session, detail=False)[0]["last_error"] == no_answer_reason(5)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://100.100.100.200/", "100.100.100.200 is a cloud metadata address"),
        ("http://192.0.0.192/", "192.0.0.192 is an IETF protocol address"),
        ("http://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("http://0.0.0.0:8080/", "0.0.0.0 is a 'this network' address"),
        ("http://[ff02::1]/", "ff02::1 is a multicast address"),
        ("http://[::ffff:127.0.0.1]/", "the IPv4 address 127.0.0.1, a loopback address"),
        ("http://[2002:a9fe:a9fe::]/", "a 6to4 form of 169.254.169.254"),
        ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://localhost/hook", "loopback name"),
        ("https://user:secret@hooks.example.com/x", "credentials"),
        ("https://hooks.example.com:99999/x", "port"),
    ],
)
def test_webhook_urls_that_cannot_be_used_are_refused(url, why):
    with pytest.raises(WebhookUrlNotAllowed) as refused:
        check_url(url, allow_private=False)
    assert refused.value.field == "webhook_url"
    assert why in refused.value.message


def test_a_public_https_url_is_accepted():
    assert check_url("https://hooks.example.com/billing?x=1", allow_private=False)


def test_a_name_is_saved_without_being_resolved(monkeypatch):
    def no_dns(*args):
        raise AssertionError("saving a webhook URL must not depend on DNS")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert check_url("https://hooks.invalid/billing", allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://[2002:7f00:1::]/"]
)
def test_development_still_refuses_metadata_and_tunnels(url):
    with pytest.raises(WebhookUrlNotAllowed):
        check_url(url, allow_private=True)


def test_settings_keep_what_is_not_sent_and_rotate_the_secret(session):
    add_customer(session)
    first = update_settings(
        connection=session.connection(),
        customer_id="cust_1",
        changes={"webhook_url": "https://hooks.example.com/a", "thresholds": [D(90), D(25)]},
        allow_private=False,
    )
    secret = first.webhook_secret
    assert first.alert_thresholds == "25,90"
    second = update_settings(
        connection=session.connection(),
        customer_id="cust_1",
        changes={"rotate_secret": True},
        allow_private=False,
    )
    assert second.alert_webhook_url == "https://hooks.example.com/a"
    assert second.webhook_secret != secret
    with pytest.raises(InvalidThreshold) as refused:
        update_settings(
            connection=session.connection(),
            customer_id="cust_1",
            changes={"thresholds": [D(0)]},
            allow_private=False,
        )
    assert refused.value.field == "thresholds.0"


def doc_verify():
    """The `verify` function of docs/spend-caps.md, exactly as a receiver would paste it."""
    doc = (REPO / "docs" / "spend-caps.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    namespace: dict = {}
    exec(compile(snippet, "spend-caps.md", "exec"), namespace)  # our own doc, on purpose
    return namespace["verify"]


def test_the_documented_check_accepts_a_real_delivery_and_nothing_else(
    engine, session, catalog, receiver
):
    secret = fire_cap_50(session, catalog, receiver)
    assert deliver_due(engine, allow_private=True).delivered == 1  # signed with the clock
    [(headers, body)] = receiver.requests
    verify_like_a_receiver = doc_verify()
    assert verify_like_a_receiver(secret, headers[HEADER], body)
    assert not verify_like_a_receiver(secret, headers[HEADER], body.replace(b"50", b"80"))
    assert not verify_like_a_receiver("whsec_wrong", headers[HEADER], body)
    stale = signature(secret, int(time.time()) - 3600, body)
    assert not verify_like_a_receiver(secret, stale, body)
