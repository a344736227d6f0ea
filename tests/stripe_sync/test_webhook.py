"""POST /v1/stripe/webhook: signature checked, paid/failed/voided recorded, replays ignored."""

import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import select, text

from billing.app import create_app
from billing.settings import Settings
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
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
