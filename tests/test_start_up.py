"""What a person sees when the service starts: on a terminal, where everything is, then text
logs; piped, JSON lines only; job runs that did nothing are not logged at info."""

import os
import subprocess
import sys

from billing.app import SERVED_GC_THRESHOLD
from billing.jobs import scheduler
from billing.observability.logs import resolved_format
from tests.conftest import TIERS
from tests.servers import Server, cli_database


def test_text_logs_start_with_where_everything_is(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    cli_database(url)
    server = Server(TIERS, url)
    server.env.update({"BILLING_LOG_FORMAT": "text", "BILLING_SCHEDULER": "0"})
    server.start()
    server.stop()
    banner = server.output.split("\n")[:6]
    assert banner[0] == f"billing: serving {server.base} (1 worker)"
    assert f"start here       {server.base}/" in banner[1]
    assert f"API docs         {server.base}/docs" in banner[3]
    assert "billing portal-link <customer>" in banner[4]
    assert "billing portal-link --finance" in banner[5]
    assert not server.output.lstrip().startswith("{")


def test_piped_output_is_json_and_a_terminal_gets_text(monkeypatch):
    class Tty:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr("sys.stderr", Tty(False))
    assert resolved_format("auto") == "json"
    monkeypatch.setattr("sys.stderr", Tty(True))
    assert resolved_format("auto") == "text"
    assert resolved_format("json") == "json"


def test_a_job_summary_counting_nothing_is_a_heartbeat():
    assert not scheduler.did_something("0 invoices for 0 customers")
    assert not scheduler.did_something("0 expired idempotency keys removed")
    assert scheduler.did_something("2 invoices for 1 customers")
    assert scheduler.did_something("0 delivered, 1 to retry, 0 failed")


def test_a_served_process_tunes_the_garbage_collector(tmp_path):
    """`billing serve` builds each worker's app with `create_served_app`: generation 0 at
    SERVED_GC_THRESHOLD and the start-up objects frozen; the process that merely calls
    `create_app` (tests, embedders) keeps CPython's settings."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    cli_database(url)
    script = (
        "import gc\n"
        "from billing.app import create_app, create_served_app\n"
        "create_app()\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
        "create_served_app()\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": url,
        "BILLING_TIERS_DIR": str(TIERS),
        "BILLING_SCHEDULER": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["700 False", f"{SERVED_GC_THRESHOLD} True"]
