"""The portal's webhook endpoints without a browser: a customer adds an endpoint (its secret
shown once, and it signs what a real receiver on 127.0.0.1 gets), sends a test event,
reads and replays its deliveries, rotates the secret (both sign during the overlap),
disables, enables and deletes it (after confirming); bad input is refused next to its field
with the API's rules; another customer's endpoint is not found, whatever the form says."""

from __future__ import annotations

import functools
import html
import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from billing.app import create_app
from billing.notifications.delivery import deliver_due
from billing.notifications.signing import HEADER, verify
from billing.settings import Settings
from billing.webhooks_out.send import send
from tests.conftest import TIERS, bearer
from tests.servers import Receiver
from tests.web.helpers import sign_in

SEND = functools.partial(send, deadline=5, allow_private=True)
URL = "https://hooks.example.com/billing"


@pytest.fixture
def portal(engine, catalog, database_url, seeded):
    """The app allowing webhooks to 127.0.0.1 (BILLING_WEBHOOK_ALLOW_PRIVATE, as in
    development), signed in as acme; (client, CSRF token)."""
    settings = Settings(
        tiers_dir=TIERS, database_url=database_url, scheduler=False, webhook_allow_private=True
    )
    with TestClient(create_app(settings, catalog, engine)) as client:
        yield client, sign_in(client, engine, "acme")


def add(client, csrf, url, events=("*",), description=""):
    return client.post(
        "/portal/webhooks",
        data={"csrf_token": csrf, "url": url, "description": description, "events": list(events)},
    )


def act(client, csrf, endpoint_id, action, **extra):
    return client.post(
        f"/portal/webhooks/{endpoint_id}",
        data={"csrf_token": csrf, "action": action, **extra},
        follow_redirects=False,
    )


def secret_on(page: str) -> str:
    found = re.search(r'<code id="secret">(whsec_[^<]+)</code>', page)
    assert found, "no secret shown"
    return found.group(1)


def endpoint_rows(engine):
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT id, customer_id, url, events, status FROM webhook_endpoint")
            )
        )


def signed_by(headers, body, secret):
    lowered = {k.lower(): v for k, v in headers.items()}
    return verify(secret, lowered[HEADER.lower()], body, int(time.time()))


def test_a_customer_adds_an_endpoint_tests_it_and_replays_a_delivery(engine, portal, keys):
    client, csrf = portal
    receiver = Receiver()
    try:
        made = add(client, csrf, receiver.url, ["invoice.paid", "usage.alert"], "ERP sync")
        assert made.status_code == 200, made.text
        secret = secret_on(made.text)
        [row] = endpoint_rows(engine)
        assert (row.customer_id, row.url, row.events, row.status) == (
            "acme",
            receiver.url,
            "invoice.paid,usage.alert",
            "enabled",
        )
        # As the API shows it, without the secret (shown once).
        api = client.get(f"/v1/webhook-endpoints/{row.id}", headers=bearer(keys["admin"])).json()
        assert api["description"] == "ERP sync"
        assert api["secret"] is None
        listed = client.get("/portal/webhooks").text
        assert f'href="/portal/webhooks/{row.id}"' in listed
        assert "whsec_" not in listed  # never again
        assert "invoice.paid, usage.alert" in listed

        tested = act(client, csrf, row.id, "test")
        assert tested.status_code == 303
        assert "A test event" in client.get(tested.headers["location"]).text
        assert deliver_due(engine, SEND).delivered == 1
        [(headers, body)] = receiver.requests
        event = json.loads(body)
        assert event["type"] == "ping"
        assert event["data"]["endpoint"] == row.id
        assert signed_by(headers, body, secret)  # the secret the page showed signs it

        page = client.get(f"/portal/webhooks/{row.id}").text
        delivery = re.search(r'id="delivery-(\d+)"', page).group(1)
        row_html = page[page.index(f'id="delivery-{delivery}"') :].split("</tr>")[0]
        assert "delivered" in row_html
        assert event["id"] in row_html
        replayed = act(client, csrf, row.id, "replay", delivery=delivery)
        assert replayed.status_code == 303
        assert deliver_due(engine, SEND).delivered == 1
        assert [json.loads(b)["id"] for _, b in receiver.requests] == [event["id"]] * 2
    finally:
        receiver.close()


def test_a_rotated_secret_is_shown_once_and_both_sign_during_the_overlap(engine, portal):
    client, csrf = portal
    receiver = Receiver()
    try:
        old = secret_on(add(client, csrf, receiver.url).text)
        [row] = endpoint_rows(engine)
        rotated = act(client, csrf, row.id, "rotate")
        assert rotated.status_code == 200
        new = secret_on(rotated.text)
        assert new != old
        assert "keeps signing beside it" in rotated.text
        assert "whsec_" not in client.get(f"/portal/webhooks/{row.id}").text
        act(client, csrf, row.id, "test")
        deliver_due(engine, SEND)
        [(headers, body)] = receiver.requests
        assert signed_by(headers, body, old)
        assert signed_by(headers, body, new)
    finally:
        receiver.close()


def test_disable_enable_and_delete_after_confirming(engine, portal):
    client, csrf = portal
    add(client, csrf, URL)
    [row] = endpoint_rows(engine)
    assert act(client, csrf, row.id, "disable").status_code == 303
    page = client.get(f"/portal/webhooks/{row.id}").text
    assert 'id="status">disabled<' in page
    assert 'value="enable"' in page
    assert act(client, csrf, row.id, "enable").status_code == 303
    assert endpoint_rows(engine)[0].status == "enabled"

    asked = act(client, csrf, row.id, "delete")
    assert asked.status_code == 200
    assert "Delete this endpoint?" in asked.text
    assert len(endpoint_rows(engine)) == 1  # nothing deleted yet
    deleted = act(client, csrf, row.id, "delete_confirmed")
    assert deleted.status_code == 303
    assert "Endpoint deleted" in client.get(deleted.headers["location"]).text
    assert endpoint_rows(engine) == []


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"url": ""}, "url", "enter the URL events are sent to"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "must be an http:// or https:// URL"),
        ({"url": "http://169.254.169.254/latest"}, "url", "169.254.169.254"),
        ({"url": "http://100.100.100.200/x"}, "url", "100.100.100.200"),
        ({"events": []}, "events", "tick at least one event type, or All events"),
        ({"events": ["invoice.exploded"]}, "events", "unknown event type 'invoice.exploded'"),
        ({"description": "x" * 201}, "description", "at most 200 characters"),
        ({"description": "a\x00b"}, "description", "NUL character"),
    ],
)
def test_bad_input_is_refused_next_to_its_field(api, engine, seeded, form, field, message):
    csrf = sign_in(api, engine, "acme")  # the default settings: no private addresses
    data = {"csrf_token": csrf, "url": URL, "description": "", "events": ["*"], **form}
    refused = api.post("/portal/webhooks", data=data)
    assert refused.status_code == 422, refused.text
    error = re.search(r'<p class="error" role="alert" id="add-error">([^<]+)</p>', refused.text)
    assert error, refused.text
    shown = html.unescape(error.group(1))
    assert message in shown
    assert not re.match(r"[\w.]+: ", shown)  # a field path is no message for a person
    if field in ("url", "description"):
        assert f'id="w-{field}"' in refused.text
        tag = refused.text[refused.text.index(f'id="w-{field}"') :].split(">")[0]
        assert 'aria-invalid="true"' in tag
    assert endpoint_rows(engine) == []


def test_another_customers_endpoint_is_not_found(api, engine, seeded, keys):
    admin = bearer(keys["admin"])
    theirs = api.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": ["*"], "customer": "globex"},
        headers=admin,
    ).json()
    everyone = api.post("/v1/webhook-endpoints", json={"url": URL, "events": ["*"]}, headers=admin)
    csrf = sign_in(api, engine, "acme")
    assert "No endpoints yet" in api.get("/portal/webhooks").text
    for endpoint_id in (theirs["id"], everyone.json()["id"], "we_unknown"):
        assert api.get(f"/portal/webhooks/{endpoint_id}").status_code == 404
        for action in ("delete_confirmed", "disable", "rotate", "test"):
            assert act(api, csrf, endpoint_id, action).status_code == 404
    assert {r.status for r in endpoint_rows(engine)} == {"enabled"}
    assert len(endpoint_rows(engine)) == 2


def test_a_form_without_the_csrf_token_changes_nothing(api, engine, seeded):
    sign_in(api, engine, "acme")
    refused = api.post("/portal/webhooks", data={"url": URL, "events": ["*"]})
    assert refused.status_code == 403
    assert endpoint_rows(engine) == []


def test_an_unknown_action_or_delivery_is_refused_by_name(engine, portal):
    client, csrf = portal
    add(client, csrf, URL)
    [row] = endpoint_rows(engine)
    unknown = act(client, csrf, row.id, "explode")
    assert unknown.status_code == 422
    assert "unknown action &#39;explode&#39;" in unknown.text
    missing = act(client, csrf, row.id, "replay", delivery="12345")
    assert missing.status_code == 404
    assert "no delivery 12345 of this endpoint" in missing.text
