"""SQLite's write-ahead log is checkpointed by a thread of its own (billing/sqlite_wal.py), not
inside the commits of the service's connections, which checkpoint only past a bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from billing.app import create_app
from billing.db import WAL_AUTOCHECKPOINT_PAGES, make_engine
from billing.settings import Settings
from billing.sqlite_wal import WalCheckpointer, uses_wal_file

TIERS = Path(__file__).resolve().parents[1] / "pricing_tiers"
PAGES = 3_000  # above SQLite's default bound (1,000 pages), below ours


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


@pytest.fixture
def wal_engine(path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (n INTEGER PRIMARY KEY, b BLOB)"))
    yield engine
    engine.dispose()


def page_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("PRAGMA page_size")).scalar_one())


def fill(engine: Engine, pages: int = PAGES) -> None:
    """Commit about `pages` pages of new rows, in one transaction."""
    size = page_size(engine)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO filler (b) VALUES (randomblob(:size))"),
            [{"size": size // 2}] * (pages * 2),
        )


def wait_for(condition, seconds: float = 30) -> bool:  # float-ok: a bound, not a measure
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_connections_checkpoint_only_past_the_bound(wal_engine: Engine) -> None:
    with wal_engine.connect() as connection:
        bound = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    assert bound == WAL_AUTOCHECKPOINT_PAGES > PAGES


def test_a_commit_leaves_the_log_to_the_checkpointer(wal_engine: Engine, path: Path) -> None:
    before = path.stat().st_size
    fill(wal_engine)
    # the commit wrote its pages to the log only: with SQLite's default bound (1,000
    # pages) the committing connection would have copied them into the file
    assert path.stat().st_size == before
    connection = WalCheckpointer(wal_engine, 1).connect()
    done = WalCheckpointer.checkpoint(connection)
    connection.close()
    assert done.busy == 0
    assert done.log_pages >= PAGES
    assert done.checkpointed == done.log_pages  # no reader held older pages back
    assert path.stat().st_size - before >= PAGES * page_size(wal_engine)
    with wal_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM filler")).scalar_one() == PAGES * 2


def test_a_reader_keeps_its_pages_until_it_ends(wal_engine: Engine) -> None:
    fill(wal_engine, 10)
    own = WalCheckpointer(wal_engine, 1).connect()
    WalCheckpointer.checkpoint(own)
    with wal_engine.connect().execution_options(sqlite_begin="DEFERRED") as reader:
        read = reader.begin()  # a read transaction, held open on its snapshot
        assert reader.execute(text("SELECT count(*) FROM filler")).scalar_one() == 20
        fill(wal_engine, 10)
        held = WalCheckpointer.checkpoint(own)
        assert held.checkpointed < held.log_pages  # PASSIVE: it did not wait for the reader
        assert reader.execute(text("SELECT count(*) FROM filler")).scalar_one() == 20
        read.commit()
    freed = WalCheckpointer.checkpoint(own)
    assert freed.checkpointed == freed.log_pages
    own.close()


def test_the_thread_checkpoints_until_stopped(wal_engine: Engine, path: Path) -> None:
    checkpointer = WalCheckpointer(wal_engine, 0.01)
    checkpointer.start()
    checkpointer.start()  # once only
    try:
        assert checkpointer.running
        before = path.stat().st_size
        fill(wal_engine)
        assert wait_for(lambda: path.stat().st_size > before)
        assert checkpointer.failures == 0
        assert checkpointer.last is not None
        assert checkpointer.last.busy == 0
    finally:
        checkpointer.stop()
        checkpointer.stop()
    assert not checkpointer.running
    runs = checkpointer.checkpoints
    time.sleep(0.05)
    assert checkpointer.checkpoints == runs


def test_only_for_sqlite_files(tmp_path: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        memory = make_engine(url)
        assert not uses_wal_file(memory)
        with pytest.raises(ValueError, match="not a SQLite database in a file"):
            WalCheckpointer(memory, 1)
        memory.dispose()
    postgres = make_engine("postgresql+psycopg://billing@127.0.0.1:1/none")  # not connected
    assert not uses_wal_file(postgres)
    postgres.dispose()
    file = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    assert uses_wal_file(file)
    for interval in (0, 0.001):
        with pytest.raises(ValueError, match=r"at least 0\.01"):
            WalCheckpointer(file, interval)
    file.dispose()


@pytest.mark.parametrize("seconds", [0.01, 0])
def test_served_app_runs_the_thread_while_it_serves(
    wal_engine: Engine, path: Path, seconds
) -> None:
    settings = Settings(
        tiers_dir=TIERS,
        database_url=f"sqlite:///{path}",
        scheduler=False,
        sqlite_checkpoint_seconds=seconds,
    )
    app = create_app(settings, engine=wal_engine)
    checkpointer = app.state.wal_checkpointer
    if not seconds:
        assert checkpointer is None  # turned off: commits past the bound checkpoint instead
        return
    assert not checkpointer.running
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert checkpointer.running
        fill(wal_engine)
        assert wait_for(lambda: (checkpointer.last or (0, 0, 0)).log_pages >= PAGES)
    assert not checkpointer.running


def test_the_log_stays_bounded_when_commits_never_pause(wal_engine: Engine, path: Path) -> None:
    """A PASSIVE checkpoint never catches up with a writer that commits without a pause;
    the commits' own checkpoint past the bound restarts the log, and the file is cut back
    to the journal size limit."""
    size = page_size(wal_engine)
    log = path.with_name(path.name + "-wal")
    frame = size + 24  # a page and its frame header (https://www.sqlite.org/fileformat.html)
    checkpointer = WalCheckpointer(wal_engine, 0.01)
    checkpointer.start()
    largest = 0
    try:
        for _ in range(WAL_AUTOCHECKPOINT_PAGES * 5 // 2 // 250):
            fill(wal_engine, 250)
            largest = max(largest, log.stat().st_size)
    finally:
        checkpointer.stop()
    assert largest > WAL_AUTOCHECKPOINT_PAGES * frame // 2  # it did grow past the thread
    assert largest <= 2 * WAL_AUTOCHECKPOINT_PAGES * frame
    assert checkpointer.checkpoints > 0
    with wal_engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM filler")).scalar_one()
    assert stored == WAL_AUTOCHECKPOINT_PAGES * 5 // 2 // 250 * 500


@pytest.mark.parametrize("seconds", [0.001, -1, 61])
def test_settings_refuse_intervals_out_of_range(seconds) -> None:
    with pytest.raises(ValueError, match=r"sqlite_checkpoint_seconds|BILLING_SQLITE_CHECKPOINT"):
        Settings(tiers_dir=TIERS, sqlite_checkpoint_seconds=seconds)
