"""Request dependencies the API and the pages share, as Annotated aliases: the catalogue, the
engine, a database session that commits once per request, and the read replica's session
for the read-only reports and pages (ReadSessionDep, ReadEngineDep)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from billing.catalog import Catalog
from billing.db import read_only, session_scope
from billing.http.replica import ReadEngines
from billing.metering.limited import LimitedList


async def get_catalog(request: Request) -> Catalog:
    """The catalogue loaded at start-up."""
    catalog: Catalog = request.app.state.catalog
    return catalog


async def get_engine(request: Request) -> Engine:
    """The database engine of this process."""
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session per request: committed when the route returns without error, rolled back
    when it raises. The one place a request commits: routes never do."""
    with session_scope(engine) as session:
        yield session
    for hook in session.info.pop(AFTER_COMMIT, ()):
        hook()


def get_read_engine(request: Request) -> Engine:
    """The engine a read-only report or page reads from: the read replica when it is
    configured and within BILLING_REPLICA_MAX_LAG_SECONDS, else the primary. GET routes
    only (tests/api/test_replica_routes.py): nothing is ever written through it."""
    reads: ReadEngines = request.app.state.reads
    return reads.for_reads()


def get_read_session(
    request: Request,
    session: Annotated[Session, Depends(get_session, scope="function")],
    engine: Annotated[Engine, Depends(get_read_engine)],
) -> Iterator[Session]:
    """A session for reads: the request's own session when reads go to the primary (as
    without a replica), else a read-only transaction on the replica, rolled back at the end."""
    if engine is request.app.state.engine:
        yield session
        return
    with read_only(engine) as connection:
        connection = connection.execution_options(postgresql_readonly=True)
        with Session(bind=connection) as replica:
            yield replica


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# NOTE: scope="function" commits when the route returns, before the answer is sent: a
# client never reads a 2xx for a change that then failed to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# The read-only reports and pages: the replica when configured and fresh (GET routes only).
ReadEngineDep = Annotated[Engine, Depends(get_read_engine)]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
AFTER_COMMIT = "after_commit"  # session.info key: what to run once the request committed


class LimitMoves:
    """Tell the limited list (GET /v1/quota/limited) that this request moved a limit."""

    def __init__(self, session: Session, limited: LimitedList) -> None:
        self._session = session
        self._limited = limited

    def moved(self) -> None:
        """Rebuild the list once this request's change is committed, not before: a rebuild
        in between would read the old limits and keep them."""
        self._session.info.setdefault(AFTER_COMMIT, []).append(self._limited.invalidate)


def get_limit_moves(request: Request, session: SessionDep) -> LimitMoves:
    """The limited list of this process, bound to the request's session."""
    return LimitMoves(session, request.app.state.limited_list)


LimitsChanged = Annotated[LimitMoves, Depends(get_limit_moves)]
