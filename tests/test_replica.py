"""The read replica (BILLING_REPLICA_URL, docs/operations.md "Read replica"), against a second
PostgreSQL database standing in for the standby: migrated like the primary, holding data the
primary lacks, so where an answer came from shows in the answer.

The reports and the read-only pages show the replica's data; ingestion and the close read
and write the primary only; a replica over the lag limit, or unreachable, sends the reads
back to the primary. The routes that may read there are GETs: tests/api/test_replica_routes.py.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, make_url, text
from sqlmodel import Session

from billing.app import create_app
from billing.auth.models import Role
from billing.auth.service import create_key
from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.db import make_engine, upgrade
from billing.http import replica as replica_module
from billing.http.deps import get_read_session
from billing.invoicing.numbers import display_number
from billing.metering import service as metering_service
from billing.settings import Settings
from tests.conftest import TIERS, _postgres_schema, bearer, free_port
from tests.metering.helpers import add_customer, event, recent
from tests.servers import BILLING
from tests.web.helpers import sign_in

pytestmark = pytest.mark.postgres
OCTOBER = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
OCT_20 = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)


# --- two databases ----------------------------------------------------------------------


@pytest.fixture
def primary_url(postgres_url: str) -> Iterator[str]:
    """The primary: a schema of its own on the test database, migrated."""
    yield from _postgres_schema(postgres_url)


@pytest.fixture
def replica_url(postgres_url: str) -> Iterator[str]:
    """The stand-in replica: a database of its own (not a schema beside the primary's),
    migrated with the same migrations."""
    name = f"replica_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def primary(primary_url: str) -> Iterator[Engine]:
    engine = make_engine(primary_url)
    yield engine
    engine.dispose()


@pytest.fixture
def replica(replica_url: str) -> Iterator[Engine]:
    engine = make_engine(replica_url)
    yield engine
    engine.dispose()


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(text(sql)).scalar_one()
        return found


def _invoice_numbers(engine: Engine) -> list[str]:
    """The invoices' numbers as people read them (INV-000001)."""
    with engine.connect() as connection:
        found = connection.execute(text("SELECT number FROM invoice ORDER BY number")).scalars()
        return [display_number("INV", number) for number in found]


@pytest.fixture
def seeded(primary: Engine, replica: Engine, catalog: Catalog) -> dict[str, object]:
    """acme in both databases (as replication copied it); October usage in the primary
    only; in the replica only, a commitment invoice of acme's and the customer
    replica_only, with October usage of its own."""
    for engine in (primary, replica):
        with Session(engine) as session:
            add_customer(session, "acme", billing_start=OCTOBER)
    with Session(primary) as session:
        batch = [event("p-1", 250_000, customer="acme", at=OCT_20.isoformat())]
        metering_service.ingest(
            connection=session.connection(), catalog=catalog, raw_events=batch, now=OCT_20
        )
        session.commit()
    with Session(replica) as session:
        add_customer(session, "replica_only", billing_start=OCTOBER)
        batch = [event("r-1", 250_000, customer="replica_only", at=OCT_20.isoformat())]
        metering_service.ingest(
            connection=session.connection(), catalog=catalog, raw_events=batch, now=OCT_20
        )
        commitments.start(
            session.connection(), catalog, "acme", D(3000), 1, dt.datetime.now(dt.UTC)
        )
        session.commit()
    numbers = _invoice_numbers(replica)
    assert len(numbers) == 1
    assert _invoice_numbers(primary) == []
    return {"invoice": numbers[0]}


@pytest.fixture
def staff_keys(primary: Engine) -> dict[str, str]:
    """Keys live in the primary: authentication never reads the replica."""
    made = {}
    with Session(primary) as session:
        for role in (Role.ADMIN, Role.FINANCE, Role.INGEST):
            made[role.value], _ = create_key(connection=session.connection(), role=role)
        session.commit()
    return made


def _app(
    primary: Engine, catalog: Catalog, primary_url: str, replica_url: str | None, **settings: object
) -> TestClient:
    configured = Settings(
        tiers_dir=TIERS,
        database_url=primary_url,
        replica_url=replica_url,
        scheduler=False,
        **settings,  # type: ignore[arg-type]
    )
    return TestClient(create_app(configured, catalog, primary))


@pytest.fixture
def api(primary, catalog, primary_url, replica_url) -> Iterator[TestClient]:
    """The app on the primary, with the stand-in as its read replica."""
    with _app(primary, catalog, primary_url, replica_url) as client:
        yield client


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("billing_replica_fallbacks_total", {"reason": reason}) or 0


def _reads_from(api: TestClient, keys: dict[str, str], invoice: str) -> dict[str, bool]:
    """Whether each report and page shows the replica-only invoice."""
    finance = bearer(keys["finance"])
    shown = {}
    report = api.get("/v1/reports/invoices", headers=finance)
    assert report.status_code == 200, report.text
    shown["report"] = invoice in [row["number"] for row in report.json()["invoices"]]
    csv = api.get("/v1/reports/invoices", params={"format": "csv"}, headers=finance)
    shown["csv"] = invoice in csv.text
    revenue = api.get("/v1/reports/revenue", params={"group_by": "customer"}, headers=finance)
    assert revenue.status_code == 200, revenue.text
    shown["revenue"] = "acme" in revenue.text
    return shown


# --- where reads and writes go ------------------------------------------------------------


def test_reports_and_read_only_pages_read_the_replica(api, primary, seeded, staff_keys):
    invoice = str(seeded["invoice"])
    assert _reads_from(api, staff_keys, invoice) == {"report": True, "csv": True, "revenue": True}

    sign_in(api, primary, None)  # the finance sign-in is the primary's
    page = api.get("/finance/invoices")
    assert page.status_code == 200, page.text
    assert invoice in page.text
    assert invoice in api.get("/finance/invoices.csv").text
    revenue = api.get("/finance/revenue", params={"from": "2026-01"})
    assert "2,700.00" in revenue.text  # the commitment invoice's amount due, in the replica
    assert api.get("/finance/caps").status_code == 200

    portal = TestClient(api.app)
    sign_in(portal, primary, "acme")  # the session lives in the primary only
    overview = portal.get("/portal")
    assert overview.status_code == 200, overview.text
    assert invoice in overview.text  # acme's recent invoices, as the replica has them
    # the invoice page stays on the primary (a fresh link must not be "not found")
    assert portal.get(f"/portal/invoices/{invoice}").status_code == 404

    # nothing was written to the replica by those reads (its transactions are read-only)
    assert _count(api.app.state.reads.replica, "SELECT count(*) FROM web_session") == 0


def test_without_a_replica_everything_reads_the_primary(
    primary, catalog, primary_url, seeded, staff_keys
):
    with _app(primary, catalog, primary_url, None) as api:
        shown = _reads_from(api, staff_keys, str(seeded["invoice"]))
        assert shown == {"report": False, "csv": False, "revenue": False}
        assert api.app.state.reads.replica is None
        details = api.get("/readyz", headers=bearer(staff_keys["admin"])).json()
        assert details["replica"] == "off: BILLING_REPLICA_URL is not set"


def test_events_are_written_to_the_primary_only(api, primary, replica, seeded, staff_keys):
    before = _count(replica, "SELECT count(*) FROM event")
    sent = api.post(
        "/v1/events",
        json={"events": [event("fresh-1", 10, customer="acme", at=recent().isoformat())]},
        headers=bearer(staff_keys["ingest"]),
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1
    assert _count(primary, "SELECT count(*) FROM event WHERE id = 'fresh-1'") == 1
    assert _count(replica, "SELECT count(*) FROM event WHERE id = 'fresh-1'") == 0
    assert _count(replica, "SELECT count(*) FROM event") == before
    # a customer that exists only in the replica is unknown to ingestion
    refused = api.post(
        "/v1/events",
        json={"events": [event("fresh-2", 1, customer="replica_only", at=recent().isoformat())]},
        headers=bearer(staff_keys["ingest"]),
    )
    assert refused.json()["rejected"][0]["error"] == "unknown_customer"


@pytest.mark.slow
def test_the_close_reads_and_writes_the_primary_only(
    primary_url, replica_url, primary, replica, seeded
):
    """`billing invoices close` in a process configured with the replica: acme's October
    (primary usage) is invoiced in the primary; replica_only's October (replica usage) is
    invoiced nowhere; the replica is untouched."""
    replica_invoices = _invoice_numbers(replica)
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": primary_url,
        "BILLING_REPLICA_URL": replica_url,
        "BILLING_TIERS_DIR": str(TIERS),
    }
    env.pop("BILLING_STRIPE_API_KEY", None)
    closed = subprocess.run(
        [str(BILLING), "invoices", "close", "--as-of", "2026-11-01T02:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert closed.returncode == 0, closed.stderr
    with primary.connect() as connection:
        billed = connection.execute(text("SELECT customer_id FROM invoice")).scalars().all()
    assert billed == ["acme"]
    assert _invoice_numbers(replica) == replica_invoices
    assert _count(replica, "SELECT count(*) FROM invoice WHERE customer_id = 'replica_only'") == 0


# --- the lag guard ----------------------------------------------------------------------


def test_a_lagging_replica_sends_the_reads_to_the_primary(api, seeded, staff_keys, monkeypatch):
    invoice = str(seeded["invoice"])
    assert _reads_from(api, staff_keys, invoice)["report"]  # fresh: the replica answers
    details = api.get("/readyz", headers=bearer(staff_keys["admin"])).json()
    assert details["replica"] == "ok: 0.0 s behind"

    monkeypatch.setattr(replica_module, "replica_lag", lambda engine: 45.0)
    api.app.state.reads.check_seconds = 0  # check again now, not in 5 s
    before = _fallbacks("lagging")
    assert _reads_from(api, staff_keys, invoice) == {
        "report": False,
        "csv": False,
        "revenue": False,
    }
    assert _fallbacks("lagging") == before + 3
    ready = api.get("/readyz", headers=bearer(staff_keys["admin"]))
    assert ready.status_code == 200  # the primary answers: not a readiness problem
    assert ready.json()["replica"].startswith("lagging: 45.0 s behind (limit 30 s)")
    metrics = api.get("/metrics", headers=bearer(staff_keys["admin"])).text
    assert 'billing_replica_fallbacks_total{reason="lagging"}' in metrics
    assert "billing_replica_lag_seconds 45.0" in metrics

    monkeypatch.setattr(replica_module, "replica_lag", lambda engine: 29.0)  # caught up
    assert _reads_from(api, staff_keys, invoice)["report"]


def test_the_lag_check_is_cached(api, seeded, staff_keys, monkeypatch):
    calls = []

    def lag(engine):
        calls.append(engine)
        return 0.0

    monkeypatch.setattr(replica_module, "replica_lag", lag)
    api.app.state.reads.check_seconds = 60
    api.app.state.reads._last = None
    for _ in range(3):
        _reads_from(api, staff_keys, str(seeded["invoice"]))
    assert len(calls) == 1


def test_the_real_lag_reading_of_a_server_that_is_no_standby_is_zero(replica):
    assert replica_module.replica_lag(replica) == 0


def test_an_unreachable_replica_sends_the_reads_to_the_primary(
    primary, catalog, primary_url, postgres_url, seeded, staff_keys
):
    nowhere = make_url(postgres_url).set(port=free_port()).render_as_string(hide_password=False)
    before = _fallbacks("unreachable")
    with _app(primary, catalog, primary_url, nowhere) as api:
        shown = _reads_from(api, staff_keys, str(seeded["invoice"]))
        assert shown == {"report": False, "csv": False, "revenue": False}
        assert _fallbacks("unreachable") == before + 3
        ready = api.get("/readyz", headers=bearer(staff_keys["admin"]))
        assert ready.status_code == 200
        assert ready.json()["replica"] == "unreachable: reads go to the primary"


def test_the_replica_session_refuses_writes(primary, replica):
    """A write by mistake through the replica's session is refused by PostgreSQL (a
    read-only transaction), not applied; on the primary the request's own session is used."""
    from types import SimpleNamespace

    from sqlalchemy.exc import DBAPIError

    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(engine=primary)))
    with Session(primary) as own:
        reads = get_read_session(request, own, primary)  # type: ignore[arg-type]
        assert next(reads) is own
        reads = get_read_session(request, own, replica)  # type: ignore[arg-type]
        session = next(reads)
        assert session is not own
        with pytest.raises(DBAPIError, match="read-only transaction"):
            session.execute(text("DELETE FROM invoice"))
        reads.close()
    assert len(_invoice_numbers(replica)) == 0  # nothing seeded here: and nothing deleted
