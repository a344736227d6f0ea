"""Spend caps over the API: who may set them, bad input with the field named, the answer's
effect in words, over-limit ids in the ingestion answer, and the limited list's ETag."""

import pytest

from tests.api.helpers import CAP, ev, send
from tests.conftest import bearer


def test_a_customer_sets_its_own_cap_and_reads_the_effect(api, customer_keys):
    response = api.put(CAP, json={"amount": "10.00"}, headers=bearer(customer_keys["cust_1"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["cap"], body["q_max"], body["limit_quantity"]) == ("10.00", "1200000", "1200000")
    assert body["previous_cap"] is None
    assert body["effect"].startswith("Takes effect at once: up to 1,200,000 events")
    listed = api.get("/v1/customers/cust_1/spend-caps", headers=bearer(customer_keys["cust_1"]))
    caps = {c["product"]: c for c in listed.json()["spend_caps"]}
    assert caps["product_analytics"]["cap"] == "10.00"
    assert caps["session_replay"]["cap"] is None
    assert caps["product_analytics"]["status"] == "ok"


def test_over_limit_ids_come_back_in_the_ingestion_answer(mid_month, api, keys, customer_keys):
    api.put(CAP, json={"amount": "0"}, headers=bearer(keys["admin"]))
    answer = send(api, keys["ingest"], [ev("a", 999_999), ev("b", 5), ev("c"), ev("d")]).json()
    assert (answer["accepted"], answer["over_limit"]) == (2, ["c", "d"])
    quota = api.get("/v1/customers/cust_1/quota", headers=bearer(customer_keys["cust_1"])).json()
    assert quota["limited"] == ["product_analytics"]
    analytics = next(p for p in quota["products"] if p["product"] == "product_analytics")
    assert analytics["billed_quantity"] == "1000000"
    assert analytics["accrued"] == "0.00"
    assert analytics["over_limit_events"] == 2
    assert analytics["thresholds_fired"] == ["100"]


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("cust_2", CAP, 403),  # another customer's cap
        ("finance", CAP, 403),  # finance reads, does not set
        ("ingest", CAP, 403),
        ("cust_1", "/v1/customers/cust_1/spend-caps/no_such_product", 404),
        ("admin", "/v1/customers/nobody/spend-caps/product_analytics", 404),
    ],
)
def test_caps_are_set_only_by_their_customer_or_an_admin(
    api, keys, customer_keys, who, path, status
):
    key = customer_keys.get(who) or keys[who]
    response = api.put(path, json={"amount": "5"}, headers=bearer(key))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"amount": "-1"}, "amount", "non-negative"),
        ({"amount": "abc"}, "amount", "abc"),
        ({"amount": "10.001"}, "amount", "2 decimal places"),
        ({"amount": 10.5}, "amount", "strings"),
        ({}, "amount", "required"),
        ({"amount": "5", "currency": "EUR"}, "currency", "unknown"),
    ],
)
def test_bad_caps_are_refused_naming_the_field(api, customer_keys, body, field, words):
    response = api.put(CAP, json=body, headers=bearer(customer_keys["cust_1"]))
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == field
    assert words in error["message"].lower() or words in error["message"]


def test_the_limited_list_answers_304_while_unchanged(mid_month, api, keys, customer_keys):
    first = api.get("/v1/quota/limited", headers=bearer(keys["ingest"]))
    assert first.status_code == 200
    assert first.json() == {"count": 0, "limited": []}
    etag = first.headers["etag"]
    unchanged = api.get(
        "/v1/quota/limited", headers={**bearer(keys["ingest"]), "If-None-Match": etag}
    )
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    api.put(CAP, json={"amount": "0"}, headers=bearer(keys["admin"]))
    send(api, keys["ingest"], [ev("a", 1_000_000), ev("b")])
    changed = api.get(
        "/v1/quota/limited", headers={**bearer(keys["ingest"]), "If-None-Match": etag}
    )
    assert changed.status_code == 200
    [pair] = changed.json()["limited"]
    assert (pair["customer"], pair["product"], pair["limit_quantity"]) == (
        "cust_1",
        "product_analytics",
        "1000000",
    )
    assert changed.headers["etag"] != etag
    assert api.get("/v1/quota/limited", headers=bearer(customer_keys["cust_1"])).status_code == 403


def test_cap_changes_are_listed_with_who_and_what(api, keys, customer_keys):
    api.put(CAP, json={"amount": "10"}, headers=bearer(customer_keys["cust_1"]))
    api.put(CAP, json={"amount": None}, headers=bearer(keys["admin"]))
    changes = api.get(
        "/v1/customers/cust_1/spend-caps/changes", headers=bearer(keys["finance"])
    ).json()["changes"]
    assert [(c["old_amount"], c["new_amount"]) for c in changes] == [
        ("10.00", None),
        (None, "10.00"),
    ]
    assert changes[0]["changed_by"].startswith("admin key")
    assert changes[1]["changed_by"].startswith("customer key")
