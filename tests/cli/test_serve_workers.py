"""`billing serve --workers N`: what its worker processes are told, unless the environment
says otherwise (docs/operations.md, BILLING_INGEST_WRITERS)."""

from __future__ import annotations

import pytest

from billing.cli.server import workers_environment
from billing.settings import Settings


def _writers(environ: dict[str, str]) -> int | None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        return Settings().ingest_writers


@pytest.mark.parametrize("workers", [2, 4])
def test_several_workers_get_one_ingestion_writer_each(workers, monkeypatch):
    monkeypatch.delenv("BILLING_INGEST_WRITERS", raising=False)
    environ: dict[str, str] = {}
    workers_environment(workers, environ)
    assert environ == {"BILLING_INGEST_WRITERS": "1"}
    assert _writers(environ) == 1


def test_one_worker_keeps_the_default_writers(monkeypatch):
    monkeypatch.delenv("BILLING_INGEST_WRITERS", raising=False)
    environ: dict[str, str] = {}
    workers_environment(1, environ)
    assert environ == {}
    assert _writers(environ) is None  # default_writers: 2 on PostgreSQL, 1 on SQLite


def test_a_writers_setting_given_is_kept_with_several_workers():
    environ = {"BILLING_INGEST_WRITERS": "3"}
    workers_environment(2, environ)
    assert environ == {"BILLING_INGEST_WRITERS": "3"}
    assert _writers(environ) == 3
