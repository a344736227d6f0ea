"""Alert settings and the alerts list over the API, with access control and bad input."""

import pytest
from sqlalchemy import update

from billing.alerts.models import Outbox
from billing.db import table_of
from tests.api.helpers import CAP, ev, send
from tests.conftest import bearer

SETTINGS = "/v1/customers/cust_1/alert-settings"


def test_a_customer_sets_a_webhook_and_sees_its_alerts(mid_month, api, keys, customer_keys):
    own = bearer(customer_keys["cust_1"])
    answer = api.put(
        SETTINGS,
        json={"webhook_url": "https://hooks.example.com/billing", "thresholds": ["75", "100"]},
        headers=own,
    )
    assert answer.status_code == 200, answer.text
    settings = answer.json()
    assert settings["thresholds"] == ["75", "100"]
    assert settings["free_allowance"] is True
    assert settings["signing_secret"].startswith("whsec_")
    assert api.get(SETTINGS, headers=own).json() == settings
    api.put(CAP, json={"amount": "10"}, headers=own)
    send(api, keys["ingest"], [ev("a", 1_160_000)])  # $8.00: 75 %, and the free allowance
    listed = api.get("/v1/customers/cust_1/alerts", headers=bearer(keys["finance"])).json()
    kinds = sorted((a["kind"], a["delivery"]) for a in listed["alerts"])
    assert kinds == [("cap_75", "pending"), ("free_allowance", "pending")]
    assert api.get("/v1/customers/cust_1/alerts?period=2026-13", headers=own).status_code == 422


def test_why_a_delivery_failed_is_told_in_detail_to_staff_only(
    mid_month, engine, api, keys, customer_keys
):
    own = bearer(customer_keys["cust_1"])
    api.put(SETTINGS, json={"webhook_url": "https://hooks.example.com/billing"}, headers=own)
    api.put(CAP, json={"amount": "10"}, headers=own)
    send(api, keys["ingest"], [ev("a", 1_160_000)])
    with engine.begin() as connection:  # as a failed attempt records it (tests/webhooks_out)
        connection.execute(
            update(table_of(Outbox)).values(
                attempts=1,
                last_error="connection refused by 10.0.0.5:443",
                public_error="could not deliver to your endpoint: no HTTP answer",
            )
        )
    url = "/v1/customers/cust_1/alerts"
    seen = {
        who: {a["last_error"] for a in api.get(url, headers=bearer(key)).json()["alerts"]}
        for who, key in (("customer", customer_keys["cust_1"]), *keys.items())
        if who != "ingest"
    }
    assert seen == {
        "customer": {"could not deliver to your endpoint: no HTTP answer"},
        "admin": {"connection refused by 10.0.0.5:443"},
        "finance": {"connection refused by 10.0.0.5:443"},
    }


@pytest.mark.parametrize(
    ("who", "body", "status", "field"),
    [
        ("cust_1", {"webhook_url": "ftp://example.com"}, 422, "webhook_url"),
        ("cust_1", {"webhook_url": "http://169.254.169.254/"}, 422, "webhook_url"),
        ("cust_1", {"thresholds": ["150"]}, 422, "thresholds.0"),
        ("cust_1", {"thresholds": ["abc"]}, 422, "thresholds.0"),
        ("cust_1", {"free_allowance": "yes"}, 422, "free_allowance"),
        ("cust_1", {"colour": "red"}, 422, "colour"),
        # found by the fuzzer: nulls used to reach the database (500)
        ("cust_1", {"free_allowance": None}, 422, "free_allowance"),
        ("cust_1", {"thresholds": None}, 422, "thresholds"),
        ("cust_2", {"free_allowance": False}, 403, "customer"),
        ("finance", {"free_allowance": False}, 403, None),
    ],
)
def test_bad_alert_settings_are_refused(api, keys, customer_keys, who, body, status, field):
    key = customer_keys.get(who) or keys[who]
    response = api.put(SETTINGS, json=body, headers=bearer(key))
    assert response.status_code == status, response.text
    if field:
        assert response.json()["field"] == field
