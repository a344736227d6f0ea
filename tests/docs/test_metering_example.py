"""The Python sending example of docs/metering.md, run against a real server."""

import re

import pytest
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from tests.conftest import REPO
from tests.metering.helpers import add_customer, recent
from tests.servers import Server

pytestmark = pytest.mark.slow


def doc_example(name):
    text = (REPO / "docs" / "metering.md").read_text()
    match = re.search(r"```python\n(# docs-example: " + name + r"\n.*?)```", text, re.DOTALL)
    assert match, f"docs/metering.md has no example {name!r}"
    namespace = {}
    exec(compile(match.group(1), "docs/metering.md", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_documented_sender_delivers_and_retries_safely(engine, database_url):
    send_events = doc_example("send_events")["send_events"]
    with Session(engine, expire_on_commit=False) as session:
        add_customer(session, "acme")
        key, _ = create_key(connection=session.connection(), role=Role.INGEST)
        session.commit()
    at = recent().isoformat()
    events = [
        {"id": f"doc-{i}", "customer": "acme", "product": "surveys", "timestamp": at}
        for i in range(12_345)
    ]
    server = Server(database_url=database_url)
    server.start()
    try:
        answers = send_events(server.base, key, events)
        assert [a["accepted"] for a in answers] == [10_000, 2_345]
        again = send_events(server.base, key, events)
        assert [a["duplicates"] for a in again] == [10_000, 2_345]
    finally:
        server.stop()
