"""POST /v1/quote and GET /v1/products through the app (docs/pricing-api.md)."""

from decimal import Decimal as D

import pytest


def quote(client, **body):
    response = client.post("/v1/quote", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_three_million_events_cost_84_30_with_the_tier_breakdown(client):
    data = quote(client, usage={"product_analytics": 3_000_000}, at="2026-11-01")
    (line,) = data["lines"]
    assert line["product"] == "product_analytics"
    assert line["quantity"] == line["billable_quantity"] == "3000000"
    assert [
        (t["from"], t["up_to"], t["quantity"], t["unit_price"], t["amount"]) for t in line["tiers"]
    ] == [
        ("0", "1000000", "1000000", "0", "0.00"),
        ("1000000", "2000000", "1000000", "0.00005", "50.00"),
        ("2000000", "15000000", "1000000", "0.0000343", "34.30"),
    ]
    assert (line["subtotal"], line["discount"], line["total"], line["capped"]) == (
        "84.30",
        "0.00",
        "84.30",
        False,
    )
    assert (data["subtotal"], data["discount"], data["total"], data["currency"]) == (
        "84.30",
        "0.00",
        "84.30",
        "USD",
    )
    assert data["commitment"] is None


def test_discount_caps_and_commitment_together(client):
    data = quote(
        client,
        usage={"product_analytics": 3_000_000, "session_replay": 40_000},
        discount_percent="20",
        spend_caps={"session_replay": "100.00"},
        commitment={"credit": "30000", "years": 1},
        at="2026-11-01",
    )
    analytics, replay = data["lines"]
    assert (analytics["subtotal"], analytics["discount"], analytics["total"]) == (
        "84.30",
        "16.86",
        "67.44",
    )
    # A 100.00 cap with 20 % off buys 125.00 of list usage: 10,000 at 0.005 + 18,750 at 0.004.
    assert replay["capped"] is True
    assert replay["billable_quantity"] == replay["max_quantity"] == "33750"
    assert (replay["subtotal"], replay["discount"], replay["total"]) == (
        "125.00",
        "25.00",
        "100.00",
    )
    assert data["total"] == "167.44"
    commitment = data["commitment"]
    assert commitment["discount_percent"] == "20"
    assert commitment["price_per_year"] == "24000.00"
    assert commitment["monthly_credit"] == "2500.00"
    assert commitment["monthly_overage"] == "0.00"
    assert commitment["annual_cost_without_commitment"] == "2009.28"  # 12 x 167.44
    assert commitment["annual_cost_with_commitment"] == "24000.00"
    assert commitment["saving"] == "-21990.72"


def test_every_total_is_the_sum_of_its_lines(client):
    data = quote(
        client,
        usage={
            "product_analytics": 12_345_678,
            "session_replay": 77_777,
            "feature_flags": 3_333_333,
            "surveys": 2_501,
            "data_warehouse": 123_456_789,
            "error_tracking": 1_234_567,
        },
        discount_percent="12.5",
    )
    for key in ("subtotal", "discount", "total"):
        assert D(data[key]) == sum(D(line[key]) for line in data["lines"])
    for line in data["lines"]:
        assert D(line["amount"]) == sum(D(t["amount"]) for t in line["tiers"])
        assert D(line["subtotal"]) == D(line["amount"]).quantize(D("0.01"))


def test_commitment_options_recommend_the_largest_saver(client):
    data = quote(
        client,
        usage={"product_analytics": 150_000_000, "session_replay": 400_000},
        include_commitment_options=True,
    )
    options = data["commitment_options"]
    assert len(options) == 12
    recommended = [o for o in options if o["recommended"]]
    assert len(recommended) == 1
    assert D(recommended[0]["saving"]) == max(D(o["saving"]) for o in options)


def test_versions_are_chosen_by_the_at_date(client):
    usage = {"session_replay": 40_000}
    old = quote(client, usage=usage, at="2025-12-31")["lines"][0]
    new = quote(client, usage=usage, at="2026-01-01")["lines"][0]
    assert (old["total"], new["total"]) == ("162.50", "150.00")


def test_fractional_json_numbers_are_exact(client):
    data = quote(client, usage={"product_analytics": 1_000_000.1}, at="2026-11-01")
    assert data["lines"][0]["quantity"] == "1000000.1"
    assert data["lines"][0]["amount"] == "0.000005"


def test_products_lists_the_catalogue_in_force_with_brackets(client):
    response = client.get("/v1/products", params={"at": "2025-06-01"})
    assert response.status_code == 200
    data = response.json()
    products = {p["key"]: p for p in data["products"]}
    assert len(products) == 9
    llm = products["llm_tokens_premium"]
    assert (llm["sources"], llm["dimensions"], llm["aggregation"]) == (
        [{"event": "llm_generation", "multiplier": "1"}],
        ["model"],
        "sum",
    )
    assert llm["where"] == {"model": ["claude-opus", "claude-sonnet", "gpt-4o", "o1"]}
    replay = products["session_replay"]
    assert replay["effective_from"] == "2024-01-01"
    assert replay["next_version_from"] == "2026-01-01"
    assert replay["free_allowance"] == "5000"
    assert replay["tiers"][0] == {
        "from": "0",
        "up_to": "5000",
        "unit_price": "0",
        "flat_fee": "0.00",
    }
    assert replay["tiers"][-1]["up_to"] == "inf"
    assert (replay["sources"], replay["where"]) == (
        [{"event": "session_replay", "multiplier": "1"}],
        {},
    )
    assert products["feature_flags"]["sources"] == [
        {"event": "feature_flags", "multiplier": "1"},
        {"event": "flag_decide", "multiplier": "1"},
        {"event": "flag_local_evaluation", "multiplier": "10"},
    ]
    brackets = data["commitments"]["brackets"]
    assert {"years": 1, "min_credit": "20000.00", "discount_percent": "20"} in brackets
    assert data["commitments"]["min_purchase"] == "3000.00"


def test_health_and_openapi_docs_are_public(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/quote", "/v1/products", "/healthz"} <= set(paths)


BAD_QUOTES = [
    ({"usage": {"nope": 1}}, "unknown_product", "usage.nope"),
    ({"usage": {"product_analytics": -3}}, "invalid_quantity", "usage.product_analytics"),
    ({"usage": {"product_analytics": "abc"}}, "invalid_quantity", "usage.product_analytics"),
    ({"usage": {"product_analytics": True}}, "invalid_quantity", "usage.product_analytics"),
    ({"usage": {"product_analytics": None}}, "invalid_quantity", "usage.product_analytics"),
    ({"usage": {"product_analytics": {}}}, "invalid_quantity", "usage.product_analytics"),
    ({"usage": {"product_analytics": 10**15 + 1}}, "invalid_quantity", "usage.product_analytics"),
    (
        {"usage": {"product_analytics": "1.0000000000001"}},
        "invalid_quantity",
        "usage.product_analytics",
    ),
    ({"usage": []}, "invalid_type", "usage"),
    ({}, "missing_field", "usage"),
    ({"usage": {}, "colour": "blue"}, "unknown_field", "colour"),
    (
        {"usage": {}, "commitment": {"credit": "3000", "years": 1, "x": 1}},
        "unknown_field",
        "commitment.x",
    ),
    ({"usage": {}, "at": "2026-13-01"}, "invalid_date", "at"),
    ({"usage": {}, "at": 20261101}, "invalid_date", "at"),
    ({"usage": {"product_analytics": 1}, "at": "2020-01-01"}, "no_price_in_force", "at"),
    ({"usage": {}, "discount_percent": "101"}, "invalid_percent", "discount_percent"),
    ({"usage": {}, "discount_percent": "-1"}, "invalid_percent", "discount_percent"),
    ({"usage": {}, "spend_caps": {"nope": "1"}}, "unknown_product", "spend_caps.nope"),
    ({"usage": {}, "spend_caps": {"surveys": "1.005"}}, "invalid_amount", "spend_caps.surveys"),
    (
        {"usage": {}, "commitment": {"credit": "2999.99", "years": 1}},
        "below_min_purchase",
        "commitment.credit",
    ),
    (
        {"usage": {}, "commitment": {"credit": "3000", "years": 4}},
        "unknown_term",
        "commitment.years",
    ),
    (
        {"usage": {}, "commitment": {"credit": "3000", "years": 1.5}},
        "invalid_years",
        "commitment.years",
    ),
    ({"usage": {}, "include_commitment_options": "yes"}, "invalid", "include_commitment_options"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_QUOTES)
def test_bad_input_is_a_422_naming_the_field(client, body, code, field):
    response = client.post("/v1/quote", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ('{"usage": {"product_analytics": NaN}}', "invalid_quantity", "usage.product_analytics"),
        (
            '{"usage": {"product_analytics": Infinity}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        (
            '{"usage": {"product_analytics": -Infinity}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        ('{"usage": {"product_analytics": 1e400}}', "invalid_quantity", "usage.product_analytics"),
        (
            '{"usage": {"product_analytics": 1.00000000000001}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        (
            '{"usage": {"product_analytics": ' + "9" * 5000 + "}}",
            "invalid_quantity",
            "usage.product_analytics",
        ),
        ('{"usage": {}, "spend_caps": {"surveys": 10.5}}', "invalid_amount", "spend_caps.surveys"),
        (
            '{"usage": {"product_analytics": "1E-9999999"}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        (
            '{"usage": {"product_analytics": "1.' + "1" * 100 + '"}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        (
            '{"usage": {"product_analytics": "\u0661\u0662"}}',
            "invalid_quantity",
            "usage.product_analytics",
        ),
        (
            '{"usage": {}, "discount_percent": "1E-99999999999"}',
            "invalid_percent",
            "discount_percent",
        ),
        (
            '{"usage": {}, "commitment": {"credit": "1.' + "0" * 100 + '1", "years": 1}}',
            "invalid_amount",
            "commitment.credit",
        ),
        ('{"usage": {"surveys": 1, "surveys": 2}}', "invalid_json", "body"),
        ('{"usage": {"product_analytics": 1}', "invalid_json", "body"),
        ("[1, 2]", "invalid_type", "body"),
        ("", "missing_field", "body"),
    ],
)
def test_raw_bodies_that_json_cannot_carry_exactly_are_422(client, raw, code, field):
    response = client.post("/v1/quote", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["code"], error["field"]) == (code, field), error


def test_a_bad_date_on_products_is_422(client):
    response = client.get("/v1/products", params={"at": "2026-02-30"})
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("invalid_date", "at")


def test_long_values_are_not_echoed_back_in_full(client):
    response = client.post("/v1/quote", json={"usage": {"surveys": "9" * 5000}})
    assert response.status_code == 422
    assert len(response.json()["message"]) < 300


def test_the_pricing_page_answers_a_bad_quantity_in_words(client):
    response = client.get("/pricing", params={"product_analytics": "1E-9999999"})
    assert response.status_code == 200
    assert "Enter a number of events with at most 12 decimal places" in response.text


def test_unknown_routes_answer_in_the_error_shape(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not Found", "field": None}


def test_products_defined_by_sources_are_quoted_on_their_own_quantity(client):
    """The quantity given is the product's, after sources and multipliers: 2,000,000
    feature-flag requests are priced the same whether they came as decide calls or as
    200,000 local evaluations; an add-on is priced on its own tiers."""
    data = quote(
        client, usage={"feature_flags": 2_000_000, "identified_events": 2_000_000}, at="2026-11-01"
    )
    lines = {line["product"]: line for line in data["lines"]}
    assert lines["feature_flags"]["amount"] == "100.00"  # 1,000,000 free, then 0.0001
    assert lines["identified_events"]["amount"] == "248.00"  # 1,000,000 free, then 0.000248
