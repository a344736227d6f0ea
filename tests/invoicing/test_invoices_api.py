"""Invoices over the API: the upcoming draft, list and read, void with re-issue, access."""

import datetime as dt
from decimal import Decimal as D

from freezegun import freeze_time
from sqlmodel import Session

from billing.pipeline import close_due
from tests.api.helpers import ev, send
from tests.conftest import bearer
from tests.metering.helpers import update_customers

BASE = "/v1/customers/cust_1"


def test_upcoming_close_read_void_and_reissue(mid_month, api, engine, catalog, keys, customer_keys):
    own = bearer(customer_keys["cust_1"])
    send(api, keys["ingest"], [ev("a", 1_200_000), ev("b", 10_000, "session_replay")])
    upcoming = api.get(f"{BASE}/invoices/upcoming", headers=own).json()
    assert upcoming["status"] == "draft"
    assert [(line["product"], line["amount"]) for line in upcoming["lines"]] == [
        ("product_analytics", "10.00"),
        ("session_replay", "25.00"),
    ]
    assert upcoming["amount_due"] == "35.00"
    assert upcoming["lines"][0]["tiers"][1]["quantity"] == "200000"
    # close the running period as if it had ended
    with Session(engine) as session:
        update_customers(session.connection(), created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        session.commit()
    period_end = dt.datetime.fromisoformat(upcoming["period_end"])
    with freeze_time(period_end + dt.timedelta(hours=2)):  # never ahead of the clock
        close_due(engine, catalog, period_end + dt.timedelta(hours=2), dt.timedelta(hours=1))
    listed = api.get(f"{BASE}/invoices", headers=own).json()["invoices"]
    current = next(i for i in listed if i["period_end"] == upcoming["period_end"])
    assert (current["amount_due"], current["status"]) == ("35.00", "finalized")
    full = api.get(f"/v1/invoices/{current['id']}", headers=own).json()
    assert sum(D(line["amount"]) for line in full["lines"]) == D(full["amount_due"])
    assert (
        api.get(
            f"/v1/invoices/{current['id']}", headers=bearer(customer_keys["cust_2"])
        ).status_code
        == 403
    )
    # customers cannot void; finance can, with a reason, and re-issue the period
    body = {"reason": "duplicate usage from a replay", "reissue": True}
    assert api.post(f"/v1/invoices/{current['id']}/void", json=body, headers=own).status_code == 403
    assert (
        api.post(
            f"/v1/invoices/{current['id']}/void",
            json={"reason": ""},
            headers=bearer(keys["finance"]),
        ).status_code
        == 422
    )
    voided = api.post(
        f"/v1/invoices/{current['id']}/void", json=body, headers=bearer(keys["finance"])
    )
    assert voided.status_code == 200, voided.text
    answer = voided.json()
    assert answer["voided"]["status"] == "void"
    assert answer["voided"]["void_reason"] == "duplicate usage from a replay"
    assert answer["reissued"]["replaces"] == current["id"]
    assert answer["reissued"]["amount_due"] == "35.00"
    again = api.post(f"/v1/invoices/{current['id']}/void", json=body, headers=bearer(keys["admin"]))
    assert again.status_code == 409
