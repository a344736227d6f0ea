"""Checkpoints of a SQLite database's write-ahead log, from a thread of their own.

In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies
the log's pages back into the database file (and syncs it). By default the connection
that commits past 1,000 pages of log runs the checkpoint itself, inside its commit: with
ingestion, that is the writer thread every group of requests waits for, and each
checkpoint copies pages that the next commits change again (random event ids touch most
leaf pages of the event tables). SQLite's documentation gives the alternative used here:
checkpoints run by the application "in a separate thread or process"
(https://www.sqlite.org/wal.html, "Application-Initiated Checkpoints").

So `billing serve` runs a `WalCheckpointer`: a PASSIVE checkpoint every
BILLING_SQLITE_CHECKPOINT_SECONDS, on a connection of its own, which copies what the log
holds at that moment without waiting for or blocking readers and writers. Connections
still checkpoint in their commit, but only past `db.WAL_AUTOCHECKPOINT_PAGES` (10,000)
pages of log, where SQLite's default is 1,000. The two together:

- When commits pause (most of the time), the thread's checkpoint copies the whole log and
  the next commit restarts it from its beginning: no commit copies anything.
- When commits never pause (a saturated writer), a PASSIVE checkpoint never catches up
  with the log's end, and the log is restarted only by a commit's own checkpoint at the
  bound; that checkpoint copies just the pages appended since the thread's last one, and
  runs a tenth as often as SQLite's default would. The log may overshoot the bound while
  the thread's checkpoint holds the checkpoint lock (the commit's is skipped, and tried
  again at the next commit).

`db.JOURNAL_SIZE_LIMIT` truncates the log file back to that size once it restarts.
Measured in docs/benchmarks.md ("2026-12-02, fourth session").
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any, NamedTuple

from sqlalchemy import Engine

from billing.db import in_memory
from billing.settings import SQLITE_CHECKPOINT_MIN_SECONDS

logger = logging.getLogger(__name__)


class Checkpoint(NamedTuple):
    """What one `PRAGMA wal_checkpoint(PASSIVE)` did (https://www.sqlite.org/pragma.html
    #pragma_wal_checkpoint): `busy` is 1 when another checkpoint (another process's) was
    running; `log_pages` the pages in the log, `checkpointed` how many of them are now in
    the database file (fewer while a reader still uses older pages, or while a commit
    appended more); both -1 when busy."""

    busy: int
    log_pages: int
    checkpointed: int


def uses_wal_file(engine: Engine) -> bool:
    """Whether `engine` is a SQLite database in a file (in-memory ones have no log)."""
    return engine.dialect.name == "sqlite" and not in_memory(engine.url)


class WalCheckpointer:
    """A daemon thread that checkpoints `engine`'s log every `interval` seconds (at least
    SQLITE_CHECKPOINT_MIN_SECONDS), on a SQLite connection of its own (`connect`), opened by
    `start` and closed by `stop`: never one of the pool's, so requests never wait for it,
    nor it for them. `start` and `stop` are idempotent. A failed checkpoint is logged with
    its traceback when it follows a successful one (or is the first), counted in `failures`
    otherwise, and the next is tried on time; a success after failures is logged too.
    ValueError for an engine that is not a SQLite file (`uses_wal_file`) or too short an
    interval."""

    def __init__(self, engine: Engine, interval: float) -> None:  # float-ok: seconds
        if not uses_wal_file(engine):
            raise ValueError(f"{engine.url!r} is not a SQLite database in a file")
        if not interval >= SQLITE_CHECKPOINT_MIN_SECONDS:
            raise ValueError(
                f"interval must be at least {SQLITE_CHECKPOINT_MIN_SECONDS} s, not {interval}"
            )
        self._engine = engine
        self._interval = interval
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.last: Checkpoint | None = None  # the latest checkpoint's outcome
        self.checkpoints = 0  # checkpoints run by the thread, busy ones included
        self.failures = 0  # failed ones, in all

    def connect(self) -> Any:
        """A new DB-API connection to the engine's database, from the engine's URL as its
        dialect reads it (check_same_thread off for a file), without the pool, its event
        hooks (pragmas) or the engine's own connect arguments: a PASSIVE checkpoint sets
        none of them and never waits on a lock."""
        dialect = self._engine.dialect
        args, kwargs = dialect.create_connect_args(self._engine.url)
        connection = dialect.connect(*args, **kwargs)
        connection.isolation_level = None  # no implicit BEGIN: a pragma is all it runs
        return connection

    @staticmethod
    def checkpoint(connection: sqlite3.Connection) -> Checkpoint:
        """Run one PASSIVE checkpoint on `connection`; raises what sqlite3 raises."""
        row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return Checkpoint(int(row[0]), int(row[1]), int(row[2]))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            connection = self.connect()
            stopping = self._stopping = threading.Event()  # its own: see stop()
            self._thread = threading.Thread(
                target=self._run,
                args=(connection, stopping),
                name="sqlite-wal-checkpoint",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float = 30) -> None:  # float-ok: seconds
        """Stop the thread after the checkpoint under way, if any (waited for up to
        `timeout`; a thread still running then stops at its next turn, and closes its
        connection, even if `start` runs another)."""
        with self._lock:
            thread, self._thread = self._thread, None
            stopping = self._stopping
        if thread is None:
            return
        stopping.set()
        thread.join(timeout)

    def _run(self, connection: sqlite3.Connection, stopping: threading.Event) -> None:
        failing = False
        try:
            while not stopping.wait(self._interval):
                try:
                    self.last = self.checkpoint(connection)
                except Exception:  # the next may work; meanwhile commits past the bound do it
                    self.failures += 1
                    if not failing:
                        logger.exception("checkpoint of the SQLite write-ahead log failed")
                    failing = True
                else:
                    if failing:
                        logger.warning(
                            "checkpoints of the SQLite write-ahead log work again "
                            "(%d failed in all)",
                            self.failures,
                        )
                    failing = False
                self.checkpoints += 1
        finally:
            connection.close()
