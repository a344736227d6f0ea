"""What a person sees when the service starts: on a terminal, where everything is, then text
logs; piped, JSON lines only; job runs that did nothing are not logged at info."""

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
