"""POST /v1/stripe/webhook: signature checked, paid/failed/voided recorded, replays ignored."""

import hashlib
import hmac
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from billing.app import create_app
from billing.settings import Settings
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from billing.stripe_sync.webhook import EVENTS
from tests.conftest import TIERS
from tests.stripe_sync.conftest import AFTER

SECRET = "whsec_test_secret"


@pytest.fixture
def hook(engine, catalog, database_url):
    from starlette.testclient import TestClient

    settings = Settings(
        tiers_dir=TIERS, database_url=database_url, scheduler=False, stripe_webhook_secret=SECRET
    )
    with TestClient(create_app(settings, catalog, engine)) as client:
        yield client


def signed(event, secret=SECRET, at=None):
    payload = json.dumps(event)
    stamp = int(at or time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return payload, {
        "Stripe-Signature": f"t={stamp},v1={digest}",
        "Content-Type": "application/json",
    }


def event(event_id, kind, invoice_id):
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "data": {"object": {"id": invoice_id, "object": "invoice"}},
    }


def status(engine):
    with engine.connect() as connection:
        return connection.execute(select(InvoiceSync.__table__.c.status)).scalar_one()


def test_paid_is_recorded_once_and_bad_signatures_are_refused(engine, hook, stripe_api, closed):
    sync_due(engine, make_client("sk_test_emulator", stripe_api.base), AFTER)
    with engine.connect() as connection:
        remote = connection.execute(text("SELECT stripe_invoice_id FROM invoice_sync")).scalar_one()
    body, headers = signed(event("evt_1", "invoice.payment_failed", remote))
    answer = hook.post("/v1/stripe/webhook", content=body, headers=headers)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "recorded")
    assert status(engine) == "payment_failed"
    body, headers = signed(event("evt_2", "invoice.paid", remote))
    assert (
        hook.post("/v1/stripe/webhook", content=body, headers=headers).json()["outcome"]
        == "recorded"
    )
    assert status(engine) == "paid"
    body, headers = signed(event("evt_1", "invoice.payment_failed", remote))  # a replay
    assert (
        hook.post("/v1/stripe/webhook", content=body, headers=headers).json()["outcome"]
        == "replayed"
    )
    assert status(engine) == "paid"
    body, headers = signed(event("evt_3", "customer.created", remote))
    assert (
        hook.post("/v1/stripe/webhook", content=body, headers=headers).json()["outcome"]
        == "ignored"
    )
    body, headers = signed(event("evt_4", "invoice.voided", remote), secret="whsec_wrong")
    refused = hook.post("/v1/stripe/webhook", content=body, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (400, "Stripe-Signature")
    body, headers = signed(event("evt_5", "invoice.voided", remote), at=time.time() - 3600)
    assert hook.post("/v1/stripe/webhook", content=body, headers=headers).status_code == 400
    assert status(engine) == "paid"


def post_signed(hook, payload: bytes):
    """POST `payload` exactly as given, signed with the test secret."""
    stamp = int(time.time())
    signed_text = f"{stamp}.".encode() + payload
    digest = hmac.new(SECRET.encode(), signed_text, hashlib.sha256).hexdigest()
    headers = {"Stripe-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}
    return hook.post("/v1/stripe/webhook", content=payload, headers=headers)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"[1, 2]", "the body is an array, not a JSON object"),
        (b'"evt_1"', "the body is a string, not a JSON object"),
        (b"42", "the body is a number, not a JSON object"),
        (b"null", "the body is null, not a JSON object"),
        (b"true", "the body is a boolean, not a JSON object"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # deeper than any parser recurses
        (b'{"object": "event", "id": "\xff"}', "can't decode"),
        (b'{"id": "evt_1", "id": "evt_2"}', "duplicate key"),
        (b'{"object": "v2.core.event", "id": "evt_1"}', "thin event"),
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_a_400(hook, payload, words):
    answer = post_signed(hook, payload)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["code"], body["field"]) == ("bad_request", "body")
    assert body["message"].startswith("not a Stripe event")
    assert words in body["message"]


PAID = {"id": "evt_odd", "object": "event", "type": "invoice.paid"}


@pytest.mark.parametrize(
    ("event", "outcome", "reason"),
    [
        ({"object": "event"}, "ignored", "not an event this service uses"),
        ({**PAID, "type": ["invoice.paid"]}, "ignored", "not an event this service uses"),
        ({**PAID, "type": "invoice.created"}, "ignored", "not an event this service uses"),
        ({**PAID, "data": [1]}, "ignored", "not the shape of a Stripe invoice event"),
        (
            {**PAID, "data": {"object": "in_1"}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        (
            {**PAID, "data": {"object": {"id": 7}}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        ({**PAID, "data": {"object": {}}}, "ignored", "not the shape of a Stripe invoice event"),
        (
            {**PAID, "id": 12, "data": {"object": {"id": "in_1"}}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        (  # longer than any Stripe id (and than its column)
            {**PAID, "id": "evt_" + "x" * 300, "data": {"object": {"id": "in_1"}}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        (  # NUL: PostgreSQL cannot store it, and no Stripe id has it
            {**PAID, "id": "evt_\u0000", "data": {"object": {"id": "in_1"}}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        (
            {**PAID, "data": {"object": {"id": "in_\u0000"}}},
            "ignored",
            "not the shape of a Stripe invoice event",
        ),
        (  # our id in its metadata names no invoice of ours: not a 404 Stripe would retry
            {**PAID, "data": {"object": {"id": "in_1", "metadata": {"billing_invoice_id": "x"}}}},
            "unknown_invoice",
            "no invoice of ours is Stripe's in_1",
        ),
        (
            {**PAID, "data": {"object": {"id": "in_1", "metadata": {"billing_invoice_id": [1]}}}},
            "unknown_invoice",
            "no invoice of ours is Stripe's in_1",
        ),
        (
            {**PAID, "data": {"object": {"id": "in_1", "metadata": "inv_1"}}},
            "unknown_invoice",
            "no invoice of ours is Stripe's in_1",
        ),
        (
            {**PAID, "created": "yesterday", "data": {"object": {"id": "in_1"}}},
            "unknown_invoice",
            "no invoice of ours is Stripe's in_1",
        ),
        (
            {**PAID, "created": 10**40, "data": {"object": {"id": "in_1"}}},
            "unknown_invoice",
            "no invoice of ours is Stripe's in_1",
        ),
    ],
)
def test_a_signed_event_of_an_unexpected_shape_is_acknowledged(hook, event, outcome, reason):
    answer = post_signed(hook, json.dumps(event).encode())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["received"] is True
    assert (body["outcome"], body["reason"]) == (outcome, reason)
    assert body["event"] == (event["id"] if isinstance(event.get("id"), str) else "")


# Any JSON value: text with NUL, lone surrogates and every plane, floats with NaN and
# infinities (json.dumps writes them as NaN/Infinity, which JSON parsers may accept).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
IDS = st.one_of(st.sampled_from(["evt_1", "in_1", "inv_1", ""]), st.text(), JSON)


@st.composite
def events(draw):
    """Something shaped like a Stripe invoice event, any part of it replaced by any JSON."""
    invoice = {
        "id": draw(IDS),
        "object": "invoice",
        "metadata": draw(st.one_of(JSON, st.builds(lambda i: {"billing_invoice_id": i}, IDS))),
    }
    event = {
        "id": draw(IDS),
        "object": "event",
        "type": draw(st.one_of(st.sampled_from([*EVENTS, "customer.created"]), JSON)),
        "created": draw(st.one_of(st.integers(), JSON)),
        "data": {"object": draw(st.one_of(st.just(invoice), JSON))},
    }
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        event[key] = draw(JSON)
    return event


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=st.one_of(JSON, events()))
def test_no_signed_body_of_any_shape_answers_500(hook, document):
    """Whatever Stripe could sign: 200 with the receipt for a JSON object (ignored when it is
    no event of ours), 400 bad_request for anything else; never a 5xx."""
    answer = post_signed(hook, json.dumps(document).encode())
    body = answer.json()
    if isinstance(document, dict) and document.get("object") != "v2.core.event":
        assert answer.status_code == 200, answer.text
        assert set(body) == {"received", "event", "outcome", "reason"}
        assert body["outcome"] in {
            "recorded",
            "not_applied",
            "replayed",
            "ignored",
            "unknown_invoice",
        }
    else:
        assert answer.status_code == 400, answer.text
        assert (body["code"], body["field"]) == ("bad_request", "body")
