"""One rule for who commits: a request's session dependency commits once, before the answer
is sent (so a 2xx is never sent for a change that then failed to commit), and a change
that moves a limit rebuilds the limited list after that commit, not before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session

from billing.app import create_app
from billing.auth.models import Role
from billing.auth.service import create_key
from billing.metering import limited
from billing.settings import Settings
from tests.conftest import TIERS, bearer

C1 = "/v1/customers/cust_1"


class Recorded:
    def __init__(self, client: TestClient, steps: list[tuple[str, int]]) -> None:
        self.client = client
        self.steps = steps

    def call(self, method: str, path: str, key: str, body: object = None) -> list[str]:
        """The request's steps: ("commit", generation) and ("answer", generation) in order."""
        self.steps.clear()
        response = self.client.request(method, path, json=body, headers=bearer(key))
        assert 200 <= response.status_code < 300, response.text
        return [f"{what}@{generation}" for what, generation in self.steps]


@pytest.fixture
def recorded(engine, catalog, database_url) -> Iterator[Recorded]:
    steps: list[tuple[str, int]] = []

    def on_commit(_connection: object) -> None:
        steps.append(("commit", limited._generation))

    settings = Settings(tiers_dir=TIERS, database_url=database_url, scheduler=False)
    app = create_app(settings, catalog, engine)

    async def recording(scope, receive, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                steps.append(("answer", limited._generation))
            await send(message)

        await app(scope, receive, sending)

    event.listen(engine, "commit", on_commit)
    try:
        with TestClient(recording) as client:
            yield Recorded(client, steps)
    finally:
        event.remove(engine, "commit", on_commit)


@pytest.fixture
def admin_key(engine, recorded) -> str:
    with Session(engine) as session:
        key, _ = create_key(connection=session.connection(), role=Role.ADMIN)
        session.commit()
    recorded.call("POST", "/v1/customers", key, {"id": "cust_1", "name": "One"})
    return key


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/customers", {"id": "cust_2", "name": "Two"}),
        ("PUT", f"{C1}/alert-settings", {"thresholds": ["75"]}),
        ("POST", f"{C1}/commitment", {"credit": "30000", "years": 1}),
        ("GET", f"{C1}/quota", None),
    ],
)
def test_a_request_commits_once_before_its_answer(recorded, admin_key, method, path, body):
    before = limited._generation
    assert recorded.call(method, path, admin_key, body) == [f"commit@{before}", f"answer@{before}"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{C1}/spend-caps/product_analytics", {"amount": "10.00"}),
        (f"{C1}/discount", {"percent": "10", "reason": "non-profit"}),
    ],
)
def test_a_limit_change_rebuilds_the_limited_list_after_its_commit(recorded, admin_key, path, body):
    before = limited._generation
    steps = recorded.call("PUT", path, admin_key, body)
    assert steps == [f"commit@{before}", f"answer@{before + 1}"]


def test_a_void_commits_before_its_answer(recorded, admin_key):
    started = recorded.client.post(
        f"{C1}/commitment", json={"credit": "30000", "years": 1}, headers=bearer(admin_key)
    )
    invoice = started.json()["invoices"][0]["id"]
    before = limited._generation
    steps = recorded.call("POST", f"/v1/invoices/{invoice}/void", admin_key, {"reason": "test"})
    assert steps == [f"commit@{before}", f"answer@{before}"]
