"""Checkpoints of a SQLite database's write-ahead log, from a thread of their own.

In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies
the log's pages back into the database file (and syncs it). By default the connection
that commits past 1,000 pages of log runs the checkpoint itself, inside its commit: with
ingestion, that is the writer thread every group waits for, and a checkpoint copies the
same pages again and again (random event ids touch most leaf pages of the event tables).
SQLite's documentation suggests the alternative used here: "an application can turn off
the automatic checkpoint and run checkpoints in a separate thread"
(https://www.sqlite.org/wal.html, "Application-Initiated Checkpoints").

So `billing serve` checkpoints from a `WalCheckpointer` thread every
BILLING_SQLITE_CHECKPOINT_SECONDS, a PASSIVE checkpoint (it never waits for, nor blocks,
readers and writers), and every connection of ours keeps the automatic checkpoint only as
a bound, at `db.WAL_AUTOCHECKPOINT_PAGES`: if the thread falls behind (or is off, as in the
CLI), the log is still checkpointed by the committing connection once it holds that many
pages (40 MB of 4 KiB pages). Measured in docs/benchmarks.md ("2026-12-02, fourth session").
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from sqlalchemy import Engine

from billing.db import in_memory

logger = logging.getLogger(__name__)


class Checkpoint(NamedTuple):
    """What one `PRAGMA wal_checkpoint(PASSIVE)` did (https://www.sqlite.org/pragma.html
    #pragma_wal_checkpoint): `busy` is 1 when another checkpoint (another process's) was
    running; `log_pages` the pages in the log, `checkpointed` how many of them are now in
    the database file (fewer while a reader still uses older pages); both -1 when busy."""

    busy: int
    log_pages: int
    checkpointed: int


def uses_wal_file(engine: Engine) -> bool:
    """Whether `engine` is a SQLite database in a file (in-memory ones have no log)."""
    url = engine.url.render_as_string(hide_password=False)
    return engine.dialect.name == "sqlite" and not in_memory(url)


class WalCheckpointer:
    """A daemon thread that checkpoints `engine`'s log every `interval` seconds, through a
    pooled connection it takes for each checkpoint and gives back. `start` and `stop` are
    idempotent; a failed checkpoint is logged and the next one is tried on time. ValueError
    for an engine that is not a SQLite file (`uses_wal_file`) or an interval not above 0."""

    def __init__(self, engine: Engine, interval: float) -> None:  # float-ok: seconds
        if not uses_wal_file(engine):
            raise ValueError(f"{engine.url!r} is not a SQLite database in a file")
        if not interval > 0:
            raise ValueError(f"interval must be above 0 seconds, not {interval}")
        self._engine = engine
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last: Checkpoint | None = None  # the latest checkpoint's outcome
        self.checkpoints = 0  # checkpoints run, busy ones included
        self.failures = 0

    def checkpoint(self) -> Checkpoint:
        """Run one PASSIVE checkpoint now; raises what the database raises."""
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                row = cursor.fetchone()
                assert row is not None  # the pragma answers a row, busy or not
                busy, log_pages, checkpointed = row
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool
        done = Checkpoint(int(busy), int(log_pages), int(checkpointed))
        self.last = done
        self.checkpoints += 1
        return done

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="sqlite-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30) -> None:  # float-ok: seconds
        """Stop the thread after the checkpoint under way, if any (waited for up to
        `timeout`)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.checkpoint()
            except Exception:  # the next one may work: a log not checkpointed only grows
                self.failures += 1
                logger.exception("checkpoint of the SQLite write-ahead log failed")
