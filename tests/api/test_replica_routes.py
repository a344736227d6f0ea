"""The read replica is for reading only, structurally: every route that reaches the replica's
session or engine (ReadSessionDep, ReadEngineDep) is a GET, and they are the routes
docs/operations.md ("Read replica") lists. A new route that takes the read session for a
write fails here, whoever writes it."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from billing.app import create_app
from billing.http.deps import get_read_engine, get_read_session
from billing.settings import Settings
from tests.conftest import REPO, TIERS

REPLICA_ROUTES = {
    "/v1/reports/invoices",
    "/v1/reports/revenue",
    "/v1/reports/caps",
    "/finance/invoices",
    "/finance/invoices.csv",
    "/finance/revenue",
    "/finance/caps",
    "/portal",
}


def _calls(dependant: Dependant) -> set[object]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def test_only_get_routes_read_the_replica_and_the_docs_list_them():
    """Every route whose dependencies reach the replica (its session or its engine) is a GET,
    so nothing is written through it; the set is the one docs/operations.md lists."""
    app = create_app(Settings(tiers_dir=TIERS, database_url="sqlite://", scheduler=False))
    contexts = iter_route_contexts(app.routes)  # the pages too, not only the API's schema
    routes = [r for r in contexts if isinstance(r.original_route, APIRoute)]
    assert len(routes) >= 60
    reading = {}
    for route in routes:
        calls = _calls(route.dependant)
        if get_read_session in calls or get_read_engine in calls:
            reading[route.path] = route.methods
    assert all(methods == {"GET"} for methods in reading.values()), reading
    assert set(reading) == REPLICA_ROUTES
    section = (REPO / "docs" / "operations.md").read_text().split("## Read replica")[1]
    section = section.split("\n## ")[0]
    for path in REPLICA_ROUTES:
        assert f"`{path}`" in section or f"`GET {path}`" in section, path
