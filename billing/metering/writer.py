"""Group commit: concurrent ingestion requests share one transaction.

A request with one event costs about as many statements and one commit as a request with
thousands, so under load the service queues incoming batches and a writer thread takes
everything waiting (up to MAX_GROUP events), ingests it in a single transaction, and
answers each request with its own part of the result, after the commit. Ids repeated
across the requests of a group are handled exactly as within one batch: the first is
stored, the others are duplicates or conflicts. If a group fails as a whole, each of its
requests is tried alone, so one request can never fail another.

A process has `writers` such threads (BILLING_INGEST_WRITERS; by default 2 on PostgreSQL,
1 on SQLite). With one, a group's Python work (validation, caps, the statements' arguments)
and its waits for the database take turns, and each leaves a core idle; with two, one
group is worked on while the other waits. Their transactions lock the running totals in
one order (metering/service.py, store.lock_usage), so two groups sharing a customer wait
for each other; a deadlock PostgreSQL still reports is retried (`ingest_batch`). An id
sent in both is stored once (`event_key`), the other a duplicate or a conflict, as when
two processes receive it.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from billing.catalog import Catalog
from billing.metering.service import ingest_batch

logger = logging.getLogger(__name__)
MAX_GROUP = 10_000


@dataclass(slots=True)
class _Job:
    events: list[Any]
    future: Future[dict[str, Any]] = field(default_factory=Future)


def default_writers(engine: Engine) -> int:
    """Writer threads when BILLING_INGEST_WRITERS is unset: 2 on PostgreSQL, whose
    transactions run side by side; 1 on SQLite, which has one writer at a time."""
    return 2 if engine.dialect.name == "postgresql" else 1


class IngestWriter:
    """`writers` writer threads per process (default: `default_writers`), started on the
    first `submit`, which returns a future of the request's answer."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        max_group: int = MAX_GROUP,
        writers: int | None = None,
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._max_group = max_group
        self._writers = writers if writers is not None else default_writers(engine)
        if self._writers < 1:
            raise ValueError(f"writers must be at least 1, not {self._writers}")
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, events: list[Any]) -> Future[dict[str, Any]]:
        """Queue a batch for the next group; the future resolves after its commit."""
        self._ensure_started()
        job = _Job(events)
        self._queue.put(job)
        return job.future

    def stop(self, timeout: float = 30) -> None:  # float-ok: seconds
        """Finish what is queued, then stop the threads (each waited for up to `timeout`)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)  # one stop mark each, queued after every waiting job
        for thread in threads:
            thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"ingest-writer-{n}", daemon=True)
                    for n in range(1, self._writers + 1)
                ]
                for thread in self._threads:
                    thread.start()

    def _run(self) -> None:
        carry: _Job | None = None
        stopping = False
        while not stopping:
            job = carry if carry is not None else self._queue.get()
            carry = None
            if job is None:
                return
            group, size = [job], len(job.events)
            while size < self._max_group:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True  # answer this group first, then stop
                    break
                if size + len(following.events) > self._max_group:
                    carry = following  # it starts the next group
                    break
                group.append(following)
                size += len(following.events)
            self._process(group)
        if carry is not None:
            self._process([carry])

    def _process(self, group: list[_Job]) -> None:
        # NOTE: each future is marked running first, after which it can no longer be
        # cancelled; a request cancelled before (its client went away) is dropped: it was
        # never answered, so nothing of it was acknowledged
        group = [
            job
            for job in group
            if job.future.running() or job.future.set_running_or_notify_cancel()
        ]
        if not group:
            return
        events = [event for job in group for event in job.events]
        try:
            result = ingest_batch(engine=self._engine, catalog=self._catalog, raw_events=events)
        except Exception as error:
            if len(group) > 1:
                for job in group:
                    self._process([job])
                return
            logger.exception("ingestion of a batch of %d events failed", len(events))
            group[0].future.set_exception(error)
            return
        offset = 0
        for job in group:
            stop = offset + len(job.events)
            job.future.set_result(result.part(offset, stop).as_json())
            offset = stop
