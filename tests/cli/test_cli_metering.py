"""The installed `billing` command against a real SQLite file: db, keys, customers, usage, demo."""

import json
import os
import re
import subprocess
from decimal import Decimal

from tests.conftest import TIERS
from tests.servers import BILLING, billing_cli


def run(tmp_path, *args, **env):
    environment = {
        **os.environ,
        "BILLING_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        "BILLING_TIERS_DIR": str(TIERS),
        **env,
    }
    return billing_cli(*args, env=environment)


def test_db_upgrade_keys_customers_and_usage(tmp_path):
    upgraded = run(tmp_path, "db", "upgrade").stdout.strip()
    assert re.fullmatch(r"database at revision \d{4}", upgraded)
    assert run(tmp_path, "customers", "create", "acme", "--name", "Acme").returncode == 0
    created = run(tmp_path, "keys", "create", "--role", "customer", "--customer", "acme")
    key = created.stdout.strip()
    assert key.startswith("bk_")
    assert "shown once" in created.stderr
    listed = run(tmp_path, "keys", "list").stdout
    assert key[:12] in listed
    assert key not in listed
    assert "customer=acme" in listed
    assert "active" in listed
    assert run(tmp_path, "keys", "revoke", key[:12]).returncode == 0
    assert "revoked" in run(tmp_path, "keys", "list").stdout
    usage = run(tmp_path, "usage", "acme", "--period", "2026-11")
    assert usage.stdout.splitlines() == ["acme 2026-11 (2026-11-01 .. 2026-12-01)", "  no usage"]


def test_bad_cli_input_names_the_field(tmp_path):
    run(tmp_path, "db", "upgrade")
    assert "customer: no customer 'ghost'" in run(tmp_path, "usage", "ghost").stderr
    assert (
        "customer: a customer key needs --customer"
        in run(tmp_path, "keys", "create", "--role", "customer").stderr
    )
    anchor = run(tmp_path, "customers", "create", "x", "--name", "X", "--anchor-day", "31")
    assert anchor.returncode == 2
    assert "billing_anchor_day" in anchor.stderr
    future = run(
        tmp_path,
        "customers",
        "create",
        "y",
        "--name",
        "Y",
        "--billing-start",
        "2999-01-01T00:00:00Z",
    )
    assert future.returncode == 2
    assert (
        "billing_start: billing_start 2999-01-01T00:00:00+00:00 is later than now" in future.stderr
    )
    naive = run(
        tmp_path, "customers", "create", "y", "--name", "Y", "--billing-start", "2026-01-01"
    )
    assert (naive.returncode, "billing_start" in naive.stderr) == (2, True)


def test_a_customer_imported_with_its_history_is_billed_from_its_billing_start(tmp_path):
    run(tmp_path, "db", "upgrade")
    created = run(
        tmp_path,
        "customers",
        "create",
        "old",
        "--name",
        "Old",
        "--billing-start",
        "2026-06-01T00:00:00Z",
    )
    assert created.returncode == 0, created.stderr
    usage = run(tmp_path, "usage", "old", "--period", "2026-06")
    assert usage.stdout.splitlines()[0] == "old 2026-06 (2026-06-01 .. 2026-07-01)"


def test_demo_seeds_an_empty_database_once(tmp_path):
    run(tmp_path, "db", "upgrade")
    first = run(tmp_path, "demo", "--if-empty")
    assert "demo data: customers acme, globex, initech, hooli" in first.stdout
    assert "no demo data added" in run(tmp_path, "demo", "--if-empty").stdout
    assert "events" in run(tmp_path, "usage", "acme").stdout
    caps = run(tmp_path, "caps", "show", "acme", BILLING_TIERS_DIR=str(TIERS)).stdout
    assert re.search(r"session_replay +cap +50\.00 .* limited", caps), caps
    assert re.search(r"product_analytics +cap +100\.00 .* alerted", caps), caps
    off = run(tmp_path, "demo", "--if-empty", BILLING_DEMO_DATA="0")
    assert "demo data is off" in off.stdout


def test_serve_refuses_an_unmigrated_database_when_told_not_to_migrate(tmp_path):
    result = run(tmp_path, "serve", "--port", "1", BILLING_MIGRATE_ON_START="0")
    assert result.returncode == 1
    assert "run `billing db upgrade`" in result.stderr


def test_commitments_from_the_shell(tmp_path):
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "customers", "create", "acme", "--name", "Acme")
    tiers = {"BILLING_TIERS_DIR": str(TIERS)}
    options = run(tmp_path, "commitments", "options", "acme", "--usage", "2500", **tiers).stdout
    assert "2500.00 USD a month (your --usage)" in options
    assert "3y     30000.00 credit  30% off:     21000.00 a year" in options
    assert options.count("<- recommended") == 1
    started = run(tmp_path, "commitments", "start", "acme", "--credit", "30000", **tiers)
    assert started.stdout.splitlines() == [
        "invoice INV-000001: 24000.00",
        "credit available now: 2500.00",
    ]
    shown = run(tmp_path, "commitments", "show", "acme", **tiers).stdout
    assert "30000.00 USD a year for 1y at 20% off" in shown
    assert "release" in shown
    again = run(tmp_path, "commitments", "start", "acme", "--credit", "100", **tiers)
    assert again.returncode != 0
    now = run(tmp_path, "credits", "release", **tiers)
    assert now.returncode == 0, now.stderr
    # A replay runs as of a past time: the term's end cannot be run ahead of the clock.
    later = run(tmp_path, "credits", "release", "--as-of", "2099-01-01T00:00:00Z", **tiers)
    assert later.returncode == 2
    assert "is later than now" in later.stderr
    assert "expiry" not in run(tmp_path, "commitments", "show", "acme", **tiers).stdout


def test_finance_reports_from_the_shell(tmp_path):
    run(tmp_path, "db", "upgrade")
    tiers = {"BILLING_TIERS_DIR": str(TIERS)}
    run(tmp_path, "demo", "--if-empty", **tiers)
    closed = run(tmp_path, "invoices", "close", **tiers)
    assert closed.returncode == 0, closed.stderr
    revenue = run(
        tmp_path, "report", "revenue", "--group-by", "customer", "--format", "json", **tiers
    )
    rows = json.loads(revenue.stdout)
    assert rows[-1]["customer"] == "TOTAL"
    assert sum(Decimal(r["amount_due"]) for r in rows[:-1]) == Decimal(rows[-1]["amount_due"])
    listing = run(tmp_path, "report", "invoices", "--format", "csv", **tiers).stdout.splitlines()
    assert listing[0].startswith("number,id,customer")
    assert len(listing) > 4
    table = run(tmp_path, "report", "invoices", **tiers).stdout
    assert "INV-000001" in table
    bad = run(tmp_path, "report", "invoices", "--from", "2026-13", **tiers)
    assert bad.returncode != 0
    assert "YYYY-MM" in bad.stderr


def test_credit_notes_from_the_shell(tmp_path):
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "customers", "create", "acme", "--name", "Acme")
    tiers = {"BILLING_TIERS_DIR": str(TIERS)}
    run(tmp_path, "commitments", "start", "acme", "--credit", "30000", **tiers)  # INV-000001
    assert run(tmp_path, "credit-notes", "list", "INV-000001").stdout.strip() == (
        "INV-000001: no credit notes"
    )
    made = run(
        tmp_path,
        "credit-notes",
        "create",
        "INV-000001",
        "--reason",
        "goodwill",
        "--line",
        "1:100",
        **tiers,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "CN-000001: 100.00 USD credited on INV-000001 (reduce_due)"
    listed = run(tmp_path, "credit-notes", "list", "INV-000001").stdout.splitlines()
    assert listed[0].startswith("CN-000001")
    assert "goodwill" in listed[0]
    assert listed[-1] == "INV-000001: credited 100.00, still owed 23900.00"
    too_much = run(
        tmp_path,
        "credit-notes",
        "create",
        "INV-000001",
        "--reason",
        "x",
        "--line",
        "1:99999",
        **tiers,
    )
    assert too_much.returncode == 2
    assert "credit" in too_much.stderr
    bad = run(tmp_path, "credit-notes", "create", "INV-000001", "--reason", "x", "--line", "one")
    assert (bad.returncode, "--line" in bad.stderr) == (2, True)


def test_reading_commands_in_another_folder_create_no_database(tmp_path):
    """Run from a folder with no database: one sentence naming BILLING_DATABASE_URL and
    `billing db upgrade`, exit 1, and no billing.db left behind."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "BILLING_DATABASE_URL"}
    env["BILLING_TIERS_DIR"] = str(TIERS)
    for args in (
        ("usage", "acme"),
        ("customers", "list"),
        ("report", "invoices"),
        ("keys", "list"),
    ):
        done = subprocess.run(
            [str(BILLING), *args],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=env,
            timeout=60,
        )
        assert done.returncode == 1, (args, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: no database at sqlite:///./billing.db"), line
        assert "BILLING_DATABASE_URL" in line
        assert "`billing db upgrade`" in line
        assert list(elsewhere.iterdir()) == []  # nothing created
    # a database file that is not migrated: the same kind of sentence, still one line
    (elsewhere / "billing.db").touch()
    done = subprocess.run(
        [str(BILLING), "usage", "acme"], capture_output=True, text=True, cwd=elsewhere, env=env
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "is not set up" in line
    assert "`billing db upgrade`" in line


def test_customers_are_listed(tmp_path):
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "customers", "create", "acme", "--name", "Acme", "--email", "ap@acme.test")
    run(tmp_path, "customers", "create", "globex", "--name", "Globex")
    listed = json.loads(run(tmp_path, "customers", "list", "--format", "json").stdout)
    assert [(c["id"], c["name"], c["email"]) for c in listed] == [
        ("acme", "Acme", "ap@acme.test"),
        ("globex", "Globex", ""),
    ]
    assert "Customers (2)" in run(tmp_path, "customers", "list").stdout
