"""Chunks of a job run side by side: in this process and in worker processes.

A job whose chunks are independent transactions (the period close: each chunk locks its own
customers) runs them on several cores, as PostgreSQL runs their transactions side by side.
This process takes chunks like any worker, so the work starts at once while the workers
start (a spawned interpreter imports the package first, about a second). Workers are
*spawned*, never forked: the caller may be a server with threads (the scheduler's, the
ingestion writers'), and a forked copy of a threaded process can hold a lock no thread will
ever release (Python's `multiprocessing` documentation, "Contexts and start methods").

Chunks are handed out one at a time, in order, to whoever is free, so a slow chunk never
holds the others back. The first error stops handing out chunks: those already running
finish (each is its own transaction, committed or rolled back whole), and the error is
raised. What the chunks return comes back in the order of the chunks.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

from billing.db import make_engine

C = TypeVar("C")  # what every chunk runs with besides the engine (picklable)
K = TypeVar("K")  # a chunk (picklable)
R = TypeVar("R")  # what a chunk returns (picklable)

_engine: Engine | None = None
_context: object = None


def _start_worker(url: str, context: object) -> None:
    """A worker's start: its own engine on the caller's database, the shared context."""
    global _engine, _context
    _engine = make_engine(url)
    _context = context


def _in_worker(task: Callable[[Engine, Any, Any], Any], chunk: Any) -> Any:
    assert _engine is not None, "a chunk ran outside a started worker"
    return task(_engine, _context, chunk)


class _Dealer(Generic[K, R]):
    """Hands out chunks one at a time, remembering each one's index; stops on the first
    error."""

    def __init__(self, chunks: Sequence[K]) -> None:
        self._pending = deque(enumerate(chunks))
        self._lock = threading.Lock()
        self.results: dict[int, R] = {}
        self.futures: list[Future[R]] = []
        self.error: BaseException | None = None

    def take(self) -> tuple[int, K] | None:
        with self._lock:
            return self._pending.popleft() if self._pending and self.error is None else None

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            self._pending.clear()

    def send(self, pool: ProcessPoolExecutor, task: Callable[[Engine, C, K], R]) -> None:
        """Send the next chunk to the pool, and the one after it when this one is done."""
        with self._lock:  # taken, sent and recorded together: run_chunks sees every future
            if not self._pending or self.error is not None:
                return
            index, chunk = self._pending.popleft()
            future = pool.submit(_in_worker, task, chunk)
            self.futures.append(future)

        def done(finished: Future[R]) -> None:
            error = finished.exception()
            if error is not None:
                self.fail(error)
                return
            self.results[index] = finished.result()
            self.send(pool, task)

        future.add_done_callback(done)


def run_chunks(
    engine: Engine,
    context: C,
    chunks: Sequence[K],
    task: Callable[[Engine, C, K], R],
    *,
    processes: int,
) -> list[R]:
    """`task(engine, context, chunk)` for every chunk, here and in `processes - 1` spawned
    worker processes (each with an engine of its own on `engine`'s database); what each
    returned, in the order of `chunks`. `task` must be a module-level function and the
    context, chunks and results picklable. With `processes` 1 (or one chunk) every chunk
    runs here, in order. The first error raised by a chunk, here or in a worker, is raised
    once the chunks already running are done; chunks not started by then are not run."""
    if processes <= 1 or len(chunks) <= 1:
        return [task(engine, context, chunk) for chunk in chunks]
    dealer: _Dealer[K, R] = _Dealer(chunks)
    url = engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(
        max_workers=processes - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(url, context),
    )
    try:
        for _ in range(processes - 1):
            dealer.send(pool, task)
        while (taken := dealer.take()) is not None:
            index, chunk = taken
            try:
                dealer.results[index] = task(engine, context, chunk)
            except BaseException as error:
                dealer.fail(error)
                raise
    finally:
        pool.shutdown(wait=True)
    # every future was recorded before the last chunk was taken; each is done now
    for future in list(dealer.futures):
        future.result()  # raises a worker's error
    if dealer.error is not None:
        raise dealer.error
    return [dealer.results[index] for index in range(len(chunks))]
