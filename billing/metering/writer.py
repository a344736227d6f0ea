"""Group commit: concurrent ingestion requests share one transaction.

A request with one event costs about as many statements and one commit as a request with
thousands, so under load the service queues incoming batches and one writer thread per
process takes everything waiting (up to MAX_GROUP events), ingests it in a single
transaction, and answers each request with its own part of the result, after the commit.
Ids repeated across the requests of a group are handled exactly as within one batch: the
first is stored, the others are duplicates or conflicts. If a group fails as a whole, each
of its requests is tried alone, so one request can never fail another.
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


class IngestWriter:
    """One writer thread per process; `submit` returns a future of the request's answer."""

    def __init__(self, engine: Engine, catalog: Catalog, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._catalog = catalog
        self._max_group = max_group
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, events: list[Any]) -> Future[dict[str, Any]]:
        """Queue a batch for the next group; the future resolves after its commit."""
        self._ensure_started()
        job = _Job(events)
        self._queue.put(job)
        return job.future

    def stop(self, timeout: float = 30) -> None:  # float-ok: seconds
        """Finish what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
                self._thread.start()

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
