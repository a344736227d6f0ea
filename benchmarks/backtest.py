"""Backtest benchmark: `billing tiers diff --backtest` re-pricing, in-process.

Run it from any directory:

    .venv/bin/python benchmarks/backtest.py

It prints figures and asserts nothing about speed; it stops by itself in about a minute.

CUSTOMERS customers x the 6 largest shipped products x MONTHS closed months of usage
records (random quantities across every tier, a third of them under a spend cap, a fifth
with a discount) are re-priced under the shipped tier files and under a copy with one unit
price raised, through `billing.backtest.reprice.backtest` (old side proven against the
`invoiced` amounts, which are the old side's own figures here, so no mismatch is expected).
Baseline, in the same run: the bare pricing core on the same records, `charge()` of each
billed quantity once per side (what any re-pricing must at least do). Goal: >= 20,000
customer-periods per second.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing.backtest.records import UsageRecord
from billing.backtest.reprice import Prices, backtest, price_old
from billing.catalog import load_catalog
from billing.pricing.charge import charge

TIERS = Path(__file__).resolve().parent.parent / "pricing_tiers"
CUSTOMERS = 10_000
MONTHS = ("2026-08", "2026-09", "2026-10")
GOAL = 20_000
ROUNDS = 3


def main() -> None:
    old = load_catalog(TIERS)
    with tempfile.TemporaryDirectory() as tmp:
        changed = Path(tmp) / "tiers"
        shutil.copytree(TIERS, changed)
        path = changed / "session_replay.toml"
        path.write_text(path.read_text().replace('"0.004"', '"0.0045"', 1))
        new = load_catalog(changed)
    products = sorted(
        (key for key, p in old.products.items() if p.aggregation == "sum"),
        key=lambda key: (
            -len(old.plan_for_period(key, dt.datetime(2026, 9, 1, tzinfo=dt.UTC)).tiers)
        ),
    )[:6]
    rng = random.Random(7)
    records = []
    # NOTE: one Prices for the setup's own pricing of `invoiced` (not timed): same figures
    old_prices = Prices(old)
    for number in range(CUSTOMERS):
        for month in MONTHS:
            start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
            for product in products:
                plan = old.plan_for_period(product, start)
                top = max((t.up_to for t in plan.tiers if t.up_to is not None), default=10**6)
                quantity = Decimal(rng.randint(0, int(top) * 2))
                cap = Decimal(rng.choice([50, 200, 1000])) if number % 3 == 0 else None
                discount = Decimal(20) if number % 5 == 0 else Decimal(0)
                draft = UsageRecord(
                    customer=f"cus_{number:05d}",
                    period_start=start,
                    product=product,
                    accepted=quantity,
                    limit=None,
                    over_limit=Decimal(0),
                    cap=cap,
                    discount_percent=discount,
                    invoiced=None,
                )
                invoiced = price_old(old_prices, draft).total
                records.append(UsageRecord(**{**_fields(draft), "invoiced": invoiced}))
    periods = CUSTOMERS * len(MONTHS)
    print(
        f"Backtest benchmark: {CUSTOMERS:,} customers x {len(products)} products "
        f"({', '.join(products)}) x {len(MONTHS)} months = {len(records):,} records, "
        f"{periods:,} customer-periods"
    )
    engine_rates, core_rates = [], []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        report = backtest(old, new, records)
        engine_rates.append(periods / (time.perf_counter() - began))
        assert not report.mismatches, report.mismatches[:3]
        began = time.perf_counter()
        for record in records:
            plan_old = old.plan_for_period(record.product, record.period_start)
            plan_new = new.plan_for_period(record.product, record.period_start)
            charge(plan_old, record.accepted)
            charge(plan_new, record.accepted)
        core_rates.append(periods / (time.perf_counter() - began))
    engine, core = sorted(engine_rates)[ROUNDS // 2], sorted(core_rates)[ROUNDS // 2]
    print(
        f"   backtest: {engine:,.0f} customer-periods/s (median of {ROUNDS}); "
        f"total {report.total.old} -> {report.total.new}, {len(report.caps)} caps move"
    )
    print(f"   baseline (charge() once per side, no caps, no discounts): {core:,.0f}/s")
    print(
        f"   ratio backtest / baseline: {engine / core:.2f}; goal >= {GOAL:,}/s: "
        f"{'met' if engine >= GOAL else 'NOT MET'}"
    )


def _fields(record: UsageRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


if __name__ == "__main__":
    main()
