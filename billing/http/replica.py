"""The read replica (BILLING_REPLICA_URL, docs/operations.md "Read replica"): which engine
the read-only reports and pages read from.

Only the routes that take `ReadSessionDep` or `ReadEngineDep` (billing/http/deps.py) read
here, and they are GETs (tests/api/test_replica_routes.py walks the routes to hold this).
Ingestion, the close and every other job take the primary engine: they sit in layers below
this module (pyproject's import contract), so they cannot reach the replica.

Before the replica serves a read, its lag must be within BILLING_REPLICA_MAX_LAG_SECONDS:
`now() - pg_last_xact_replay_timestamp()` on PostgreSQL (NULL, on a server that is not a
standby, reads as 0). The answer is kept LAG_CHECK_SECONDS; a replica too far behind or
unreachable sends the reads to the primary, counted in billing_replica_fallbacks_total.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from billing.db import make_engine
from billing.observability.metrics import REPLICA_FALLBACKS, REPLICA_LAG
from billing.settings import Settings

logger = logging.getLogger(__name__)

LAG_CHECK_SECONDS = 5.0  # float-ok: seconds
# NOTE: a server that is not a standby (the stand-in database of the tests) answers NULL.
LAG_SQL = text("SELECT COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)")
LAG_TIMEOUT_MS = 2000  # the check's statement_timeout: a stuck replica is not waited for


def replica_lag(engine: Engine) -> float:  # float-ok: seconds
    """How many seconds the replica is behind its primary (0 on SQLite, and on a PostgreSQL
    server that is not a standby). Raises when the replica cannot be reached."""
    if engine.dialect.name != "postgresql":
        return 0.0  # float-ok: seconds
    with engine.connect() as connection:
        # SET LOCAL, with the value bound (set_config's third argument: this transaction)
        connection.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"),
            {"ms": str(LAG_TIMEOUT_MS)},
        )
        lag = connection.execute(LAG_SQL).scalar_one()
    return max(float(lag), 0.0)  # float-ok: seconds


@dataclass(frozen=True, slots=True)
class ReplicaCheck:
    """The last lag check: whether reads may go to the replica, and why not."""

    usable: bool
    reason: str  # "ok", "lagging" or "unreachable"
    lag_seconds: float | None  # float-ok: seconds
    checked_at: float  # float-ok: a time.monotonic() reading


class ReadEngines:
    """The engine reads go to: the replica when one is configured and fresh, else the
    primary. Thread-safe; one check at a time, the others use the last answer meanwhile."""

    def __init__(
        self,
        primary: Engine,
        replica: Engine | None = None,
        max_lag_seconds: float = 30.0,  # float-ok: seconds
        check_seconds: float = LAG_CHECK_SECONDS,  # float-ok: seconds
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self._last: ReplicaCheck | None = None
        self._checking = threading.Lock()

    @classmethod
    def from_settings(cls, primary: Engine, settings: Settings) -> ReadEngines:
        replica = make_engine(settings.replica_url) if settings.replica_url else None
        return cls(primary, replica, settings.replica_max_lag_seconds)

    def for_reads(self) -> Engine:
        """The engine a read-only report or page reads from now (may query the replica's
        lag: call it off the event loop)."""
        if self.replica is None:
            return self.primary
        check = self.check()
        if check.usable:
            return self.replica
        REPLICA_FALLBACKS.labels(check.reason).inc()
        return self.primary

    def check(self) -> ReplicaCheck:
        """The replica's state, checked again when the last check is older than
        `check_seconds`. Before the first check has finished, reads go to the primary."""
        last = self._last
        if last is not None and time.monotonic() - last.checked_at < self.check_seconds:
            return last
        if not self._checking.acquire(blocking=False):  # another thread is checking
            return last or ReplicaCheck(False, "unchecked", None, time.monotonic())
        try:
            self._last = self._measure()
            return self._last
        finally:
            self._checking.release()

    def _measure(self) -> ReplicaCheck:
        assert self.replica is not None
        now = time.monotonic()
        try:
            lag = replica_lag(self.replica)
        except Exception as error:  # an unreachable replica is a fallback, never a 500
            logger.warning("read replica unreachable (%s): reads go to the primary", error)
            return ReplicaCheck(False, "unreachable", None, now)
        REPLICA_LAG.set(lag)
        if lag > self.max_lag_seconds:
            logger.warning(
                "read replica %.1f s behind (limit %s s): reads go to the primary",
                lag,
                self.max_lag_seconds,
            )
            return ReplicaCheck(False, "lagging", lag, now)
        return ReplicaCheck(True, "ok", lag, now)

    def state(self) -> str:
        """What /readyz's details say about the replica."""
        if self.replica is None:
            return "off: BILLING_REPLICA_URL is not set"
        check = self.check()
        if check.usable:
            return f"ok: {check.lag_seconds or 0:.1f} s behind"
        if check.reason == "lagging":
            return (
                f"lagging: {check.lag_seconds or 0:.1f} s behind (limit "
                f"{self.max_lag_seconds:g} s); reads go to the primary"
            )
        return f"{check.reason}: reads go to the primary"

    def dispose(self) -> None:
        if self.replica is not None:
            self.replica.dispose()
