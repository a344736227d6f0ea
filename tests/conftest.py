"""Shared fixtures, and the switches that turn optional real parts into required ones.

BILLING_REQUIRE_POSTGRES=1 and BILLING_REQUIRE_BROWSER=1 (set by .ci/run) make a missing
PostgreSQL or Chromium a failure instead of a skip.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import Engine
from sqlmodel import Session

from billing.app import create_app
from billing.catalog import Catalog, load_catalog
from billing.settings import Settings

if TYPE_CHECKING:
    from billing.stripe_emulator import StripeEmulator
    from tests.servers import Receiver

REPO = Path(__file__).resolve().parent.parent
TIERS = REPO / "pricing_tiers"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
POSTGRES_URL = os.environ.get(
    "BILLING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

pytest_plugins = ["pytester"]


def require_or_skip(switch: str, reason: str) -> None:
    """Skip with `reason`, or fail when the environment says this part is required."""
    if os.environ.get(switch) == "1":
        pytest.fail(f"{reason} ({switch}=1 makes this required)")
    pytest.skip(reason)  # only when BILLING_REQUIRE_* does not make the part required


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(TIERS)


@pytest.fixture(scope="session")
def client(catalog: Catalog) -> Iterator[TestClient]:
    app = create_app(Settings(tiers_dir=TIERS, database_url="sqlite://", scheduler=False), catalog)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    require_or_skip("BILLING_REQUIRE_BROWSER", "no Chromium found (apt-get install -y chromium)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a reachable PostgreSQL server; skip (or fail when required) without one."""
    url = urlsplit(POSTGRES_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        require_or_skip(
            "BILLING_REQUIRE_POSTGRES",
            f"PostgreSQL is not reachable at {host}:{port} ({error}); "
            "set BILLING_TEST_POSTGRES_URL or start it",
        )
    return POSTGRES_URL


MID_MONTH = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def mid_month(engine: Engine) -> Iterator[dt.datetime]:
    """The clock set to MID_MONTH and ticking on: in-process tests that stamp events a minute
    ago and read "this period" find them there whatever the real date and time. Ask for it
    before `api`, so the app runs on this clock too; it comes after the database, whose
    driver must not be imported under a frozen clock (psycopg checks datetime's size)."""
    with freeze_time(MID_MONTH, tick=True):
        yield MID_MONTH


@pytest.fixture
def customer_keys(engine: Engine, api: TestClient, keys: dict[str, str]) -> dict[str, str]:
    """Customers cust_1 and cust_2, made over the API, and a customer key for each."""
    from billing.auth.models import Role
    from billing.auth.service import create_key
    from tests.api.helpers import make_customer

    make_customer(api, keys, "cust_1")
    make_customer(api, keys, "cust_2")
    made = {}
    with Session(engine) as session:
        for customer in ("cust_1", "cust_2"):
            made[customer], _ = create_key(
                connection=session.connection(), role=Role.CUSTOMER, customer_id=customer
            )
        session.commit()
    return made


@pytest.fixture
def stripe_api() -> Iterator[StripeEmulator]:
    """The Stripe emulator on 127.0.0.1 (billing/stripe_emulator.py), closed afterwards."""
    from billing.stripe_emulator import StripeEmulator

    emulator = StripeEmulator()
    yield emulator
    emulator.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (tests/servers.py), closed afterwards."""
    from tests.servers import Receiver

    made = Receiver()
    yield made
    made.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy."""
    from billing.db import upgrade

    path = tmp_path_factory.mktemp("template") / "billing.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "billing.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    yield from _postgres_schema(request.getfixturevalue("postgres_url"))


def database_at(request: pytest.FixtureRequest, tmp_path: Path, revision: str) -> Iterator[str]:
    """For a migration test on data: a database migrated only up to `revision`, on the
    engine of `request.param` ("sqlite": a file of its own; "postgres": a schema of its
    own, dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        from billing.db import upgrade

        upgrade(url, revision)
        yield url
        return
    yield from _postgres_schema(request.getfixturevalue("postgres_url"), revision)


def _postgres_schema(base_url: str, revision: str = "head") -> Iterator[str]:
    import uuid

    from sqlalchemy import create_engine, text

    from billing.db import upgrade

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options=-csearch_path%3D{schema}"
    try:
        upgrade(url, revision)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    from billing.db import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def api(engine: Engine, catalog: Catalog, database_url: str) -> Iterator[TestClient]:
    """The app on a fresh database, through TestClient."""
    settings = Settings(tiers_dir=TIERS, database_url=database_url, scheduler=False)
    with TestClient(create_app(settings, catalog, engine)) as test_client:
        yield test_client


@pytest.fixture
def keys(engine: Engine) -> dict[str, str]:
    """One key of each staff role, in clear, for Authorization headers."""
    from billing.auth.models import Role
    from billing.auth.service import create_key

    made = {}
    with Session(engine) as session:
        for role in (Role.ADMIN, Role.FINANCE, Role.INGEST):
            made[role.value], _ = create_key(
                connection=session.connection(), role=role, name=f"test {role}"
            )
        session.commit()
    return made


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def blocked_by(engine: Engine, pid: int) -> int:
    """How many PostgreSQL sessions wait for a lock held by backend `pid`."""
    from sqlalchemy import text

    with engine.connect() as connection:
        found: int = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        ).scalar_one()
        return found


def run_together(
    target: Callable[..., object],
    arguments: Iterable[tuple[object, ...]],
    timeout: float = 300,  # float-ok: seconds
) -> None:
    """Run `target(*args)` in a thread for each tuple of `arguments`, all started before any
    is waited for; return when all have ended (or `timeout` passed for each)."""
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
