"""Bad input never costs good input, against a served process on SQLite and PostgreSQL:
every malformed event is rejected alone with its reason beside a good one that is stored; a
body that is not JSON, too deep, or not the expected shape is a 4xx; nothing is a 5xx
(issue 15, case 5, and a hypothesis fuzz of every event field)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TIERS, _postgres_schema
from tests.servers import Server, billing_ok, cli_database

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request, tmp_path_factory):
    """One served process per engine for the whole module (starting one costs seconds)."""
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path_factory.mktemp('bad') / 'b.db'}")
    else:
        for url in _postgres_schema(request.getfixturevalue("postgres_url")):
            yield from _serve(url)


def _serve(database_url):
    env = cli_database(database_url)
    key = billing_ok("keys", "create", "--role", "ingest", env=env)
    server = Server(TIERS, database_url)
    server.env.update({"BILLING_SCHEDULER": "0"})
    server.start()
    yield server.base, key
    server.stop()


def post(base: str, key: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{base}/v1/events",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


IDS = count()


def good() -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    return {
        "id": f"good-{next(IDS)}",
        "customer": "acme",
        "product": "product_analytics",
        "quantity": 1,
        "timestamp": now.isoformat(),
    }


def event_text(**fields: str) -> str:
    """A bad event as raw JSON text (fields given as JSON fragments), beside valid ones."""
    base = {k: json.dumps(v) for k, v in good().items()}
    base.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}"


CASES = {
    "offset before year 1": {"timestamp": '"0001-01-01T00:00:00+14:00"'},
    "offset after year 9999": {"timestamp": '"9999-12-31T23:00:00-05:00"'},
    "enormous exponent": {"quantity": "1e999999999"},
    "enormous negative exponent": {"quantity": "1e-999999999"},
    "lone surrogate in the id": {"id": '"evt-\\ud800"'},
    "NUL in the id": {"id": '"evt-\\u0000"'},
    "NUL in the customer": {"customer": '"ac\\u0000me"'},
    "surrogate in the product": {"product": '"\\udfff"'},
}


@pytest.mark.parametrize("fields", list(CASES.values()), ids=list(CASES))
def test_a_bad_event_is_rejected_alone_and_the_good_one_beside_it_is_stored(served, fields):
    base, key = served
    kept = good()
    body = '{"events": [' + json.dumps(kept) + ", " + event_text(**fields) + "]}"
    status, answer = post(base, key, body.encode())
    assert status == 200, answer
    assert answer["accepted"] == 1
    [rejected] = answer["rejected"]
    assert rejected["index"] == 1
    assert rejected["error"].startswith(("invalid: ", "unknown_customer", "unknown_product"))
    again = post(base, key, json.dumps({"events": [kept]}).encode())[1]
    assert (again["accepted"], again["duplicates"]) == (0, 1)  # it was stored


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"events": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", None),
        (b'{"events": [{"id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}]}", None),
        (b"\xff\xfe", "invalid_json"),
        (b'{"events": [] , }', "invalid_json"),
    ],
    ids=["deep array", "deep events", "deep field", "not utf-8", "trailing comma"],
)
def test_a_body_that_is_not_the_expected_shape_is_a_4xx(served, body, code):
    base, key = served
    status, answer = post(base, key, body)
    assert 400 <= status < 500, (status, answer)
    assert {"code", "message", "field"} <= answer.keys()
    if code is not None:
        assert answer["code"] == code


TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
TIMESTAMPS = st.one_of(
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.timezones(),
    ).map(lambda d: d.isoformat()),
    st.builds(
        "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from(["T", " ", "t"]),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["", ".5", ".123456", ".1234567"]),
        st.sampled_from(["Z", "z", "+14:00", "-14:00", "+23:59", "-24:00", "+0530", "", "+05"]),
    ),
    TEXT,
)
NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1e308", "1e309", "-0", "0.0000000000001", "1E+15", "1e15", "NaN", "1e-400"]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: json.dumps(str(d))),
    TEXT.map(json.dumps),
    st.just("null"),
    st.just("true"),
)


def test_fuzzed_event_fields_never_cost_the_good_event_or_give_a_5xx(served):
    base, key = served

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        event_id=TEXT.map(json.dumps),
        customer=st.one_of(st.just('"acme"'), TEXT.map(json.dumps)),
        quantity=NUMBERS,
        timestamp=st.one_of(TIMESTAMPS.map(json.dumps), NUMBERS),
    )
    def fuzz(event_id, customer, quantity, timestamp):
        kept = good()
        bad = event_text(id=event_id, customer=customer, quantity=quantity, timestamp=timestamp)
        body = '{"events": [' + json.dumps(kept) + ", " + bad + "]}"
        status, answer = post(base, key, body.encode("utf-8", "surrogatepass"))
        assert status < 500, (status, answer, bad)
        if status == 200:
            rejected = {r["index"] for r in answer["rejected"]}
            assert 0 not in rejected, (answer, bad)
            assert answer["accepted"] + answer["duplicates"] >= 1, (answer, bad)

    fuzz()
