"""Every answer has a declared shape: each JSON route's 2xx response in /openapi.json has a
schema with named properties (lists: items with named properties), and money is one type."""

from __future__ import annotations

from typing import Any

import pytest

from billing.api.routes.health import ReadinessPublic, ReadinessStatusPublic
from billing.caps.public import LimitedListPublic
from billing.metering.public import IngestPublic
from billing.public import DECIMAL_TEXT
from tests.api.helpers import ev, make_customer, send
from tests.conftest import bearer


@pytest.fixture(scope="module")
def openapi(client) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def _named(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    schema = _resolve(schema, document)
    if "anyOf" in schema:  # one of several shapes (/readyz: with or without its details)
        return all(_named(choice, document) for choice in schema["anyOf"])
    if schema.get("type") == "array":
        return _named(schema.get("items", {}), document)
    return bool(schema.get("properties"))


def _json_answers(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if status.startswith("2") and content is not None:
                    found.append((f"{method.upper()} {path} {status}", content.get("schema", {})))
    return found


def test_every_json_answer_has_named_properties(openapi):
    answers = _json_answers(openapi)
    assert len(answers) >= 30
    unnamed = [where for where, schema in answers if not _named(schema, openapi)]
    assert unnamed == []


# Operations that answer a file instead of JSON, and its media type.
FILE_ANSWERS = {"GET /v1/invoices/{invoice_id}/pdf": "application/pdf"}
BINARY = {"type": "string", "format": "binary"}


def _file_answers(document: dict[str, Any]) -> set[str]:
    """Operations whose 2xx answer is declared as a binary file of the media type listed for
    them in FILE_ANSWERS."""
    found = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get(FILE_ANSWERS.get(where, ""), {})
                if status.startswith("2") and content.get("schema") == BINARY:
                    found.add(where)
    return found


def test_every_operation_declares_a_json_answer(openapi):
    """... or, for the few listed in FILE_ANSWERS, a binary file of its media type."""
    declared = {where.rsplit(" ", 1)[0] for where, _ in _json_answers(openapi)}
    assert _file_answers(openapi) == set(FILE_ANSWERS)
    declared |= _file_answers(openapi)
    operations = {
        f"{method.upper()} {path}"
        for path, operations in openapi["paths"].items()
        for method in operations
    }
    assert operations - declared == set()


def test_named_properties_are_checked_through_refs_and_lists():
    document = {
        "components": {
            "schemas": {
                "Named": {"type": "object", "properties": {"id": {"type": "string"}}},
                "Loose": {"type": "object", "additionalProperties": True},
            }
        }
    }
    assert _named({"$ref": "#/components/schemas/Named"}, document)
    assert _named({"type": "array", "items": {"$ref": "#/components/schemas/Named"}}, document)
    assert not _named({"$ref": "#/components/schemas/Loose"}, document)
    assert not _named({"type": "array", "items": {"type": "object"}}, document)
    assert not _named({}, document)
    named, loose = {"$ref": "#/components/schemas/Named"}, {"$ref": "#/components/schemas/Loose"}
    assert _named({"anyOf": [named, named]}, document)
    assert not _named({"anyOf": [named, loose]}, document)


def test_money_fields_share_one_string_type(openapi):
    schemas = openapi["components"]["schemas"]
    money = {
        (name, field): spec
        for name, schema in schemas.items()
        if name.endswith("Public")
        for field, spec in schema.get("properties", {}).items()
        if field in ("amount", "total", "subtotal", "amount_due", "credits_applied", "balance")
        and "$ref" not in spec  # e.g. a report's `total`: the figures of every group
    }
    assert len(money) >= 10
    for where, spec in money.items():
        assert spec.get("type") == "string", where
        assert spec.get("pattern") == DECIMAL_TEXT, where


def test_answers_rendered_by_hand_match_their_declared_models(api, keys):
    """/v1/events, /v1/quota/limited and /readyz build their JSON by hand (for speed, or to
    answer 503): each body must be exactly what its declared model would send."""
    make_customer(api, keys, "cust_1")
    cap = "/v1/customers/cust_1/spend-caps/product_analytics"
    api.put(cap, json={"amount": "0"}, headers=bearer(keys["admin"]))
    ingested = send(api, keys["ingest"], [ev("a", 2_000_000), ev("b"), {"id": "c"}])
    limited = api.get("/v1/quota/limited", headers=bearer(keys["ingest"]))
    ready = api.get("/readyz", headers=bearer(keys["admin"]))
    for response, model in (
        (ingested, IngestPublic),
        (limited, LimitedListPublic),
        (ready, ReadinessPublic),
        (api.get("/readyz"), ReadinessStatusPublic),
    ):
        assert response.status_code == 200, response.text
        body = response.json()
        shown = model.model_validate(body).model_dump(by_alias=True, exclude_unset=True)
        assert shown == body
    assert ingested.json()["over_limit"] == ["b"]
    assert ingested.json()["rejected"][0]["index"] == 2
    assert limited.json()["count"] == 1
