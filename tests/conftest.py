"""Shared fixtures, and the switches that turn optional real parts into required ones.

BILLING_REQUIRE_POSTGRES=1 and BILLING_REQUIRE_BROWSER=1 (set by .ci/run) make a missing
PostgreSQL or Chromium a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from billing.api.app import create_app
from billing.catalog import Catalog, load_catalog
from billing.settings import Settings

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
    pytest.skip(reason)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(TIERS)


@pytest.fixture(scope="session")
def client(catalog: Catalog) -> Iterator[TestClient]:
    app = create_app(Settings(tiers_dir=TIERS), catalog)
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
