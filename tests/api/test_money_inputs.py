"""One rule for every amount of money sent in JSON (docs/money.md, "Money in JSON"): a
decimal string; a JSON number, whole or not, is 422 invalid_amount naming the field
(issue 17, 5: a cap sent as the integer 10 was accepted)."""

import json

import pytest

from tests.conftest import bearer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CUSTOMER = "/v1/customers/cust_1"
START = {"credit": "30000", "years": 1}


def _inputs(invoice_id):
    """(who, method, path, body with the amount {}, field): every JSON money input."""
    return [
        ("cust_1", "PUT", f"{CUSTOMER}/spend-caps/surveys", '{{"amount": {}}}', "amount"),
        (
            "cust_2",
            "POST",
            "/v1/customers/cust_2/commitment",
            '{{"credit": {}, "years": 1}}',
            "credit",
        ),
        ("cust_1", "POST", f"{CUSTOMER}/commitment/topup", '{{"credit": {}}}', "credit"),
        (
            "finance",
            "POST",
            f"/v1/invoices/{invoice_id}/credit-notes",
            '{{"reason": "goodwill", "outcome": "reduce_due", '
            '"lines": [{{"line": 1, "amount": {}}}]}}',
            "lines.0.amount",
        ),
        (
            None,
            "POST",
            "/v1/quote",
            '{{"usage": {{}}, "spend_caps": {{"surveys": {}}}}}',
            "spend_caps.surveys",
        ),
        (
            None,
            "POST",
            "/v1/quote",
            '{{"usage": {{}}, "commitment": {{"credit": {}, "years": 1}}}}',
            "commitment.credit",
        ),
    ]


@pytest.fixture
def invoice_id(mid_month, api, customer_keys):
    """cust_1's commitment invoice (a commitment runs: top-ups are in their window)."""
    started = api.post(
        f"{CUSTOMER}/commitment", json=START, headers=bearer(customer_keys["cust_1"])
    )
    assert started.status_code == 201, started.text
    return started.json()["invoices"][0]["id"]


def _send(api, keys, customer_keys, who, method, path, body):
    key = customer_keys.get(who) or keys.get(who)
    headers = {"Content-Type": "application/json", **(bearer(key) if key else {})}
    return api.request(method, path, content=body, headers=headers)


def test_every_money_input_refuses_a_json_number_and_takes_a_string(
    api, keys, customer_keys, invoice_id
):
    for who, method, path, body, field in _inputs(invoice_id):
        for number in ("10", "3000", "10.5", "1e3", "1E+4"):
            answer = _send(api, keys, customer_keys, who, method, path, body.format(number))
            assert answer.status_code == 422, (path, number, answer.text)
            error = answer.json()
            assert (error["code"], error["field"]) == ("invalid_amount", field), (path, number)
            assert "sent as strings" in error["message"], (path, number)
        taken = _send(api, keys, customer_keys, who, method, path, body.format(json.dumps("3000")))
        assert taken.status_code < 300, (path, taken.text)


def test_every_money_input_is_at_most_a_billion_and_says_so(api, keys, customer_keys, invoice_id):
    """Issue 17, 4: a commitment of 999,999,999,999 was accepted. 1,000,000,000 (in the
    catalogue's currency) is the most any amount sent in may be."""
    for who, method, path, body, field in _inputs(invoice_id):
        for over in ("999999999999", "1000000000.01", "1000000001"):
            answer = _send(api, keys, customer_keys, who, method, path, body.format(f'"{over}"'))
            assert answer.status_code == 422, (path, over, answer.text)
            error = answer.json()
            assert (error["code"], error["field"]) == ("invalid_amount", field), (path, over)
            assert error["message"] == (
                f"{field}: an amount must be at most 1,000,000,000 (in the catalogue's "
                f"currency), got '{over}'"
            )
        at_most = _send(api, keys, customer_keys, who, method, path, body.format('"1000000000"'))
        if at_most.status_code >= 400:  # refused for another reason (more than the invoice)
            assert at_most.json()["code"] != "invalid_amount", (path, at_most.text)
