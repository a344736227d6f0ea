"""The backtest's loop (plain tuples, sums found once per period and customer) reports what
a plain fold of price_old and price_new over the records gives, record by record."""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.backtest.records import UsageRecord
from billing.backtest.reprice import Prices, backtest, price_new, price_old
from billing.catalog import Catalog, load_catalog
from tests.conftest import TIERS

ZERO = D(0)
# NOTE: two starts in September share its month label (and its sums), as anniversaries do
STARTS = [
    dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 9, 15, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
]


@functools.cache
def catalogs(directory: str) -> tuple[Catalog, Catalog]:
    """The shipped tier files, and a copy with session replay dearer and surveys absent."""
    edited = Path(directory) / "edited"
    shutil.copytree(TIERS, edited)
    path = edited / "session_replay.toml"
    path.write_text(path.read_text().replace('"0.004"', '"0.0045"'))
    (edited / "surveys.toml").unlink()
    return load_catalog(TIERS), load_catalog(edited)


quantities = st.one_of(st.integers(0, 20), st.integers(0, 2_000_000)).map(D)
records = st.builds(
    UsageRecord,
    customer=st.sampled_from(["ann", "bo", "cy"]),
    period_start=st.sampled_from(STARTS),
    product=st.sampled_from(["session_replay", "surveys", "product_analytics", "ghost"]),
    accepted=quantities,
    limit=st.none() | quantities,
    over_limit=quantities,
    cap=st.none() | st.sampled_from([D(0), D(5), D("49.99"), D(200)]),
    discount_percent=st.sampled_from([D(0), D(20), D("12.5"), D(100)]),
    invoiced=st.none() | st.sampled_from([D("0.00"), D("50.00")]),
    pending=st.booleans(),
)


def fold(old: Catalog, new: Catalog, rows: list[UsageRecord]):
    """Per month, per (product, month), per customer: [old, new] line totals, record by record."""
    sums: dict[object, list[D]] = defaultdict(lambda: [ZERO, ZERO])
    caps, mismatches = {}, []
    old_prices, new_prices = Prices(old), Prices(new)
    for record in rows:
        before = price_old(old_prices, record)
        plan = old_prices.plan(record.product, record.period_start)
        same = plan is not None and plan == new_prices.plan(record.product, record.period_start)
        after = before if same else price_new(new_prices, record, before)
        totals = (_or_zero(before.total), _or_zero(after.total))
        if not record.pending and totals[0] != _or_zero(record.invoiced):
            mismatches.append((record.customer, record.month, record.product, before.total))
        for key in (record.month, (record.product, record.month), record.customer):
            sums[key][0] += totals[0]
            sums[key][1] += totals[1]
        if record.cap is not None and before.cap_quantity != after.cap_quantity:
            key = (record.customer, record.product)
            if key not in caps or caps[key][0] <= record.month:  # its latest month
                caps[key] = (record.month, record.cap, before.cap_quantity, after.cap_quantity)
    return sums, caps, mismatches


def _or_zero(amount: D | None) -> D:
    return ZERO if amount is None else amount


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, max_size=40))
def test_the_report_is_a_fold_of_price_old_and_price_new(tmp_path_factory, rows):
    old, new = catalogs(str(tmp_path_factory.getbasetemp()))
    report = backtest(old, new, rows)
    sums, caps, mismatches = fold(old, new, rows)
    assert report.records == len(rows)
    assert report.pending == sum(r.pending for r in rows)
    groups = (report.months, report.by_product, report.customers)
    for key, move in [item for group in groups for item in group.items()]:
        assert (str(move.old), str(move.new)) == tuple(str(x) for x in sums[key])
    assert [(m.customer, m.month, m.product, m.repriced) for m in report.mismatches] == mismatches
    assert {
        (c.customer, c.product): (c.month, c.cap, c.quantity_old, c.quantity_new)
        for c in report.caps
    } == caps
