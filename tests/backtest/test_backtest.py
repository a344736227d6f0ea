"""Backtests of a tier-file change (docs/pricing-changes.md), on both engines: closed periods
seeded through ingestion and the real close; the old side reproduces the issued invoices to
the cent; a price rise and a cut give the exact deltas; a cap that buys less is flagged;
--fail-if exit codes; the Markdown report (golden); a snapshot export gives the same report
as the database."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest

from billing.backtest.read import closed_records
from billing.backtest.records import dumps_snapshot, loads_snapshot, pseudonym
from billing.backtest.reprice import backtest
from billing.backtest.rules import RuleError, parse_rule, violations
from billing.catalog import load_catalog
from billing.commitments.discounts import set_discount
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest
from tests.servers import billing_cli

SEPT = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
GOLDEN = Path(__file__).parent / "golden_report.md"


def replay(customer, quantity, count, at, prefix):
    return [
        {
            "id": f"{prefix}{i}",
            "customer": customer,
            "product": "session_replay",
            "quantity": quantity,
            "timestamp": at,
        }
        for i in range(count)
    ]


def edited(tmp_path, name, old, new):
    """A copy of the shipped tier files with `old` replaced by `new` in session_replay's
    2026 version (the one in force for the seeded periods)."""
    directory = tmp_path / name
    shutil.copytree(TIERS, directory)
    path = directory / "session_replay.toml"
    text = path.read_text()
    head, marker, tail = text.partition("effective_from = 2026-01-01")
    assert marker
    assert old in tail
    path.write_text(head + marker + tail.replace(old, new, 1))
    return directory


@pytest.fixture
def seeded(engine, session, catalog):
    """Three customers, September and October 2026 closed:
    amy: 15,000 recordings in September (50.00), 20,000 in October (70.00);
    bob: a 50.00 cap on session replay from October; 20 x 1,000 recordings in October:
         15,000 accepted (the cap buys 15,000 at 50.00), 5,000 over the limit;
    cy:  20 % off, 3,000,001 analytics events in September (84.30 - 16.86 = 67.44)."""
    for customer in ("amy", "bob", "cy"):
        add_customer(session, customer, billing_start=SEPT)
    set_discount(
        connection=session.connection(),
        catalog=catalog,
        customer_id="cy",
        percent=D(20),
        reason="non-profit",
        until=None,
        now=SEPT,
    )
    set_cap(session.connection(), catalog, "bob", "session_replay", D(50), OCT)
    session.commit()
    ingest(
        session,
        catalog,
        replay("amy", 15_000, 1, "2026-09-10T00:00:00Z", "as"),
        now=dt.datetime(2026, 9, 11, tzinfo=dt.UTC),
    )
    ingest(
        session,
        catalog,
        [
            {
                "id": "c1",
                "customer": "cy",
                "product": "product_analytics",
                "quantity": 3_000_001,
                "timestamp": "2026-09-10T00:00:00Z",
            }
        ],
        now=dt.datetime(2026, 9, 11, tzinfo=dt.UTC),
    )
    close_due(engine, catalog, dt.datetime(2026, 10, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))
    ingest(
        session,
        catalog,
        replay("amy", 20_000, 1, "2026-10-10T00:00:00Z", "ao"),
        now=dt.datetime(2026, 10, 11, tzinfo=dt.UTC),
    )
    result = ingest(
        session,
        catalog,
        replay("bob", 1_000, 20, "2026-10-10T00:00:00Z", "b"),
        now=dt.datetime(2026, 10, 11, tzinfo=dt.UTC),
    )
    assert len(result.over_limit) == 5
    close_due(engine, catalog, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))
    return engine


def records_of(engine, first="2026-09", last="2026-10"):
    with engine.connect() as connection:
        return closed_records(connection, first, last)


def test_the_old_side_reproduces_the_invoices_to_the_cent(seeded, catalog):
    records = records_of(seeded)
    invoiced = {(r.customer, r.month, r.product): r.invoiced for r in records}
    assert invoiced == {
        ("amy", "2026-09", "session_replay"): D("50.00"),
        ("amy", "2026-10", "session_replay"): D("70.00"),
        ("bob", "2026-10", "session_replay"): D("50.00"),
        ("cy", "2026-09", "product_analytics"): D("67.44"),
    }
    report = backtest(catalog, catalog, records)
    assert report.mismatches == []
    assert (report.total.old, report.total.delta) == (D("237.44"), D(0))
    assert report.caps == []


def test_a_price_rise_and_a_cut_give_exact_deltas_and_flag_the_cap(seeded, catalog, tmp_path):
    records = records_of(seeded)
    rise = load_catalog(edited(tmp_path, "rise", '"0.005"', '"0.006"'))
    report = backtest(catalog, rise, records)
    # amy: 10,000 x 0.006 = 60.00 (was 50.00); 60.00 + 5,000 x 0.004 = 80.00 (was 70.00)
    assert {c: (m.old, m.new, m.delta_pct) for c, m in report.customers.items()} == {
        "amy": (D("120.00"), D("140.00"), D("16.67")),
        "bob": (D("50.00"), D("50.00"), D("0.00")),  # the cap holds the bill, buys less
        "cy": (D("67.44"), D("67.44"), D("0.00")),
    }
    assert [(m, move.delta) for m, move in report.months.items()] == [
        ("2026-09", D("10.00")),
        ("2026-10", D("10.00")),
    ]
    # bob's 50.00 bought 15,000; at 0.006 it buys 5,000 + 8,333 (49.998; 8,334 would cost 50.004)
    [cap] = report.caps
    assert (cap.customer, cap.cap, cap.quantity_old, cap.quantity_new, cap.drop_pct) == (
        "bob",
        D(50),
        D(15_000),
        D(13_333),
        D("11.11"),
    )
    cut = load_catalog(edited(tmp_path, "cut", '"0.004"', '"0.003"'))
    report = backtest(catalog, cut, records)
    # only amy's October reaches the third tier: 5,000 x 0.001 = 5.00 less
    assert report.total.delta == D("-5.00")
    assert report.customers["amy"].delta == D("-5.00")
    assert report.caps == []  # bob's cap stays in the second tier: buys the same


def test_a_tampered_invoice_is_a_mismatch_and_a_violation(seeded, catalog):
    records = records_of(seeded)
    changed = [
        r if r.customer != "cy" else type(r)(**{**_fields(r), "invoiced": D("67.43")})
        for r in records
    ]
    report = backtest(catalog, catalog, changed)
    [mismatch] = report.mismatches
    assert (mismatch.customer, mismatch.invoiced, mismatch.repriced) == (
        "cy",
        D("67.43"),
        D("67.44"),
    )
    assert violations(report, []) == [
        "mismatch: cy 2026-09 product_analytics: invoiced 67.43, re-priced 67.44"
    ]


def _fields(record):
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def test_rules_parse_and_judge(seeded, catalog, tmp_path):
    rise = load_catalog(edited(tmp_path, "rise", '"0.005"', '"0.006"'))
    report = backtest(catalog, rise, records_of(seeded))
    judged = violations(
        report,
        [
            parse_rule("customer_increase_pct > 10"),
            parse_rule("customer_increase_pct>20"),
            parse_rule("total_delta_pct > 5"),
            parse_rule("cap_quantity_drop_pct > 0"),
            parse_rule("customer_decrease_pct > 0"),
        ],
    )
    assert judged == [
        "customer_increase_pct > 10: amy +16.67% (120.00 -> 140.00)",
        "total_delta_pct > 5: total +8.42% (237.44 -> 257.44)",
        "cap_quantity_drop_pct > 0: bob session_replay cap 50.00 buys 15000 -> 13333 (11.11% less)",
    ]
    for bad in ("customer_increase > 10", "total_delta_pct >> 5", "total_delta_pct > ten"):
        with pytest.raises(RuleError):
            parse_rule(bad)


def test_a_snapshot_round_trips_and_pseudonymises(seeded):
    records = records_of(seeded)
    assert loads_snapshot(dumps_snapshot(records, {"from": "2026-09", "to": "2026-10"})) == records
    assert pseudonym("amy", "k") == pseudonym("amy", "k") != pseudonym("amy", "other")
    assert pseudonym("amy", "k").startswith("cus_")


def test_the_cli_gates_a_merge_and_a_snapshot_gives_the_same_report(seeded, database_url, tmp_path):
    env = {"BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    import os

    env = {**os.environ, **env}
    rise = edited(tmp_path, "rise", '"0.005"', '"0.006"')
    args = ["tiers", "diff", str(TIERS), str(rise), "--backtest", "2026-09..2026-10"]
    ok = billing_cli(*args, "--fail-if", "customer_increase_pct > 20", env=env)
    assert ok.returncode == 0, ok.stderr
    failed = billing_cli(*args, "--fail-if", "customer_increase_pct > 10", env=env)
    assert failed.returncode == 1
    assert "customer_increase_pct > 10: amy +16.67% (120.00 -> 140.00)" in failed.stdout
    bad = billing_cli(*args, "--fail-if", "customer_increase > 10", env=env)
    assert bad.returncode == 2
    assert "unknown metric" in bad.stderr
    from_db = billing_cli(*args, "--format", "json", env=env)
    assert from_db.returncode == 0, from_db.stderr
    document = json.loads(from_db.stdout)
    assert document["backtest"]["total"] == {
        "old": "237.44",
        "new": "257.44",
        "delta": "20.00",
        "delta_pct": "8.42",
    }
    assert document["backtest"]["caps"][0]["quantity_new"] == "13333"
    assert document["violations"] == []
    snapshot = tmp_path / "usage.jsonl"
    exported = billing_cli(
        "usage", "export", "--from", "2026-09", "--to", "2026-10", "-o", str(snapshot), env=env
    )
    assert exported.returncode == 0, exported.stderr
    assert loads_snapshot(snapshot.read_text()) == records_of(seeded)
    hidden = billing_cli(
        "usage", "export", "--from", "2026-09", "--to", "2026-10", "--pseudonymise", "k", env=env
    )
    assert hidden.returncode == 0, hidden.stderr
    assert "amy" not in hidden.stdout
    assert pseudonym("amy", "k") in hidden.stdout
    from_file = billing_cli(*args, "--format", "json", "--usage", str(snapshot), env=env)
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout) == document
    markdown = billing_cli(*args, "--format", "markdown", "--usage", str(snapshot), env=env)
    assert markdown.returncode == 0, markdown.stderr
    shown = markdown.stdout.replace(str(rise), "NEW").replace(str(TIERS), "OLD")
    assert shown == GOLDEN.read_text()


def test_a_row_that_billed_nothing_is_no_mismatch(catalog):
    """A running total with no accepted units (only rejected events) has no invoice line:
    re-priced at 0.00, it reproduces "nothing billed"."""
    from billing.backtest.records import UsageRecord

    empty = UsageRecord(
        customer="dee",
        period_start=SEPT,
        product="session_replay",
        accepted=D(0),
        limit=None,
        over_limit=D(0),
        cap=None,
        discount_percent=D(0),
        invoiced=None,
    )
    report = backtest(catalog, catalog, [empty])
    assert report.mismatches == []
    assert report.customers["dee"].old == D("0.00")


def test_a_commitment_whose_recommended_bracket_changes_is_reported(catalog, tmp_path):
    """500,000 recordings a month: 1,190.00 at list (14,280 a year) recommends the 3-year
    bracket from 3,000 (20 % off); with the fifth tier (150,000 to 500,000) at 0.003 instead
    of 0.002 it is 1,540.00 (18,480 a year), and the 3-year bracket from 20,000 (30 % off)
    saves more."""
    from billing.backtest.records import UsageRecord

    record = UsageRecord(
        customer="big",
        period_start=SEPT,
        product="session_replay",
        accepted=D(500_000),
        limit=None,
        over_limit=D(0),
        cap=None,
        discount_percent=D(0),
        invoiced=D("1190.00"),
    )
    dearer = load_catalog(edited(tmp_path, "dearer", '"0.002"', '"0.003"'))
    report = backtest(catalog, dearer, [record])
    [move] = report.commitments
    assert (move.customer, move.monthly_old, move.monthly_new) == (
        "big",
        D("1190.00"),
        D("1540.00"),
    )
    assert (move.bracket_old.years, move.bracket_old.min_credit) == (3, D(3000))
    assert (move.bracket_new.years, move.bracket_new.min_credit) == (3, D(20000))
    assert backtest(catalog, catalog, [record]).commitments == []


def _record(**changes):
    from billing.backtest.records import UsageRecord

    fields = {
        "customer": "eve",
        "period_start": OCT,
        "product": "session_replay",
        "accepted": D(15_000),
        "limit": None,
        "over_limit": D(0),
        "cap": None,
        "discount_percent": D(0),
        "invoiced": D("50.00"),
    }
    return UsageRecord(**{**fields, **changes})


def test_a_cap_raised_later_in_the_period_or_a_limit_without_a_cap_moves_nothing(catalog, tmp_path):
    """Units refused under a 50.00 cap that was raised to 100.00 later in the period were
    not turned away by the cap the period closed with: the same files bill the same. A
    limit left from a cap set mid-period (no cap bound at close) bounds both sides."""
    raised = _record(limit=D(27_500), over_limit=D(5_000), cap=D("100.00"))
    assert backtest(catalog, catalog, [raised]).total.delta == D(0)
    third = load_catalog(edited(tmp_path, "third", '"0.004"', '"0.0041"'))
    limited = _record(accepted=D(16_000), limit=D(15_000))
    report = backtest(catalog, third, [limited])
    assert (report.total.old, report.total.new) == (D("50.00"), D("50.00"))  # tiers 1-2 only


def test_a_truncated_or_empty_snapshot_is_refused():
    from billing.backtest.records import SnapshotError

    text = dumps_snapshot([_record(), _record(customer="fay")], {"records": 2, "from": "x"})
    assert len(loads_snapshot(text)) == 2
    with pytest.raises(SnapshotError, match="header says 2 records, the file holds 1"):
        loads_snapshot("\n".join(text.splitlines()[:2]))
    with pytest.raises(SnapshotError, match="empty"):
        loads_snapshot("")


def test_the_digest_covers_the_tier_files_the_loader_reads(tmp_path):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    before = load_catalog(directory).digest
    (directory / "old.toml").mkdir()  # a directory named like a tier file
    (directory / ".#session_replay.toml").write_text("an editor's lock file")
    assert load_catalog(directory).digest == before
    path = directory / "session_replay.toml"
    path.write_text(path.read_text().replace("\n", "\r\n"))  # a Windows checkout
    assert load_catalog(directory).digest == before


def test_an_override_is_backtested_for_its_customer_only(catalog, tmp_path):
    """Adding acme's negotiated price (0.003 beyond 5,000 recordings from October 2026)
    moves acme's October from 70.00 to 45.00 and nobody else's; the side with the
    override proves against invoices it billed (45.00)."""
    from tests.catalog.test_overrides import ACME, with_overrides

    negotiated = load_catalog(with_overrides(tmp_path, acme=ACME))

    def record(customer, invoiced):
        return _record(customer=customer, accepted=D(20_000), invoiced=D(invoiced))

    added = backtest(catalog, negotiated, [record("acme", "70.00"), record("other", "70.00")])
    assert added.mismatches == []
    assert (added.customers["acme"].old, added.customers["acme"].new) == (D("70.00"), D("45.00"))
    assert (added.customers["other"].old, added.customers["other"].new) == (
        D("70.00"),
        D("70.00"),
    )
    removed = backtest(negotiated, catalog, [record("acme", "45.00"), record("other", "70.00")])
    assert removed.mismatches == []
    assert removed.customers["acme"].new == D("70.00")
