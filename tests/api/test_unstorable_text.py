"""Text no database can store (a NUL character, which PostgreSQL refuses in any query, or a
lone surrogate, which is not UTF-8) is a 422 `invalid_text` naming the field wherever it is
sent: a path, a query parameter, any string or key of a JSON body (issue 17, 1: before, each
of these was a 500 on PostgreSQL)."""

import json

import pytest

from tests.conftest import bearer

NUL = "x\u0000y"
SURROGATE = "x\ud800y"
CUSTOMER_PATHS = [
    "/v1/customers/{}",
    "/v1/customers/{}/usage",
    "/v1/customers/{}/spend-caps",
    "/v1/customers/{}/spend-caps/changes",
    "/v1/customers/{}/quota",
    "/v1/customers/{}/invoices",
    "/v1/customers/{}/invoices/upcoming",
    "/v1/customers/{}/commitment",
    "/v1/customers/{}/commitment/options",
    "/v1/customers/{}/credits",
    "/v1/customers/{}/alerts",
    "/v1/customers/{}/alert-settings",
    "/v1/customers/cust_1/spend-caps/{}",
    "/v1/invoices/{}",
    "/v1/invoices/{}/credit-notes",
    "/portal/{}",
]


@pytest.mark.parametrize("path", CUSTOMER_PATHS)
def test_a_nul_in_the_path_is_invalid_text(api, keys, path):
    answer = api.get(path.format("cust%00"), headers=bearer(keys["admin"]))
    assert answer.status_code == 422, answer.text
    assert (answer.json()["code"], answer.json()["field"]) == ("invalid_text", "path")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/v1/customers?after=%00", "after"),
        ("/v1/customers?after=a%00b&limit=5", "after"),
        ("/v1/customers/cust_1/usage?period=2026-11%00", "period"),
        ("/v1/reports/invoices?from=%00", "from"),
        ("/v1/customers?%00=1", "query"),
    ],
)
def test_a_nul_in_a_query_parameter_is_invalid_text_naming_it(api, keys, query, field):
    answer = api.get(query, headers=bearer(keys["admin"]))
    assert answer.status_code == 422, answer.text
    assert (answer.json()["code"], answer.json()["field"]) == ("invalid_text", field)


BODIES = [
    ("POST", "/v1/customers", lambda t: {"id": "cust_9", "name": t}, "name"),
    ("POST", "/v1/customers", lambda t: {"id": "cust_9", "name": "N", "email": t}, "email"),
    ("PUT", "/v1/customers/cust_1/discount", lambda t: {"percent": "5", "reason": t}, "reason"),
    ("POST", "/v1/invoices/inv_1/void", lambda t: {"reason": t}, "reason"),
    ("PUT", "/v1/customers/cust_1/alert-settings", lambda t: {"webhook_url": t}, "webhook_url"),
    ("POST", "/v1/quote", lambda t: {"usage": {t: 1}}, "usage"),
    (
        "POST",
        "/v1/quote",
        lambda t: {"usage": {}, "spend_caps": {"surveys": t}},
        "spend_caps.surveys",
    ),
    (
        "POST",
        "/v1/invoices/inv_1/credit-notes",
        lambda t: {
            "reason": "r",
            "lines": [{"line": 1}, {"line": 2, "x": [t]}],
            "outcome": "refund",
        },
        "lines.1.x.0",
    ),
    ("POST", "/v1/quote", lambda t: {t: 1}, "body"),
]


@pytest.mark.parametrize("text", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(("method", "path", "body", "field"), BODIES)
def test_unstorable_text_in_a_json_body_is_invalid_text_naming_the_field(
    api, keys, customer_keys, method, path, body, field, text
):
    answer = api.request(
        method,
        path,
        content=json.dumps(body(text)),
        headers={**bearer(keys["admin"]), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["code"], error["field"]) == ("invalid_text", field)
    assert "NUL character or a lone surrogate" in error["message"]


def test_a_body_nested_as_deep_as_the_parser_allows_is_read_without_recursion(api):
    deep = "[" * 900 + json.dumps(NUL) + "]" * 900
    answer = api.post(
        "/v1/quote",
        content=f'{{"usage": {{}}, "x": {deep}}}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_text"
