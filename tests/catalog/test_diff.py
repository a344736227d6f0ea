"""billing tiers diff's core: two real tier directories in, what changed and its prices out.

Each test copies the shipped pricing_tiers/ and edits one file's text; the expected prices
are worked by hand from the tier tables in the comments.
"""

import datetime as dt
import json
import shutil
from decimal import Decimal as D

import pytest

from billing.catalog import load_catalog
from billing.catalog.diff import (
    Change,
    PricePoint,
    change_as_json,
    diff_catalogs,
    representative_quantities,
)
from tests.conftest import TIERS

AT = dt.date(2026, 6, 1)

# product_analytics, graduated: (0, 1M] at 0; (1M, 2M] at 0.00005; (2M, 15M] at 0.0000343;
# (15M, 50M] at 0.0000295; (50M, 100M] at 0.0000218; (100M, 250M] at 0.000015; then 0.000009.
# Its points: each boundary, each middle, and 250M + 150M (the width of the tier before).
ANALYTICS_OLD = [
    ("500000", "0.00"),
    ("1000000", "0.00"),
    ("1500000", "25.00"),  # 500,000 x 0.00005
    ("2000000", "50.00"),
    ("8500000", "272.95"),  # 50 + 6,500,000 x 0.0000343 (222.95)
    ("15000000", "495.90"),  # 50 + 13,000,000 x 0.0000343 (445.90)
    ("32500000", "1012.15"),  # 495.90 + 17,500,000 x 0.0000295 (516.25)
    ("50000000", "1528.40"),  # 495.90 + 35,000,000 x 0.0000295 (1,032.50)
    ("75000000", "2073.40"),  # 1,528.40 + 25,000,000 x 0.0000218 (545)
    ("100000000", "2618.40"),  # 1,528.40 + 50,000,000 x 0.0000218 (1,090)
    ("175000000", "3743.40"),  # 2,618.40 + 75,000,000 x 0.000015 (1,125)
    ("250000000", "4868.40"),  # 2,618.40 + 150,000,000 x 0.000015 (2,250)
    ("400000000", "6218.40"),  # 4,868.40 + 150,000,000 x 0.000009 (1,350)
]


@pytest.fixture
def tiers(tmp_path):
    directory = tmp_path / "new"
    shutil.copytree(TIERS, directory)
    return directory


def edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path.name}"
    path.write_text(text.replace(old, new))


def diff(directory, at=AT):
    return diff_catalogs(load_catalog(TIERS), load_catalog(directory), at=at)


def figures(change):
    return [(str(p.quantity), str(p.old), str(p.new), str(p.delta)) for p in change.prices]


def test_identical_directories_have_no_changes(tiers):
    assert diff(tiers) == []


def test_a_raised_unit_price_changes_one_product_by_the_exact_amounts_at_each_boundary(tiers):
    edit(tiers / "product_analytics.toml", '"0.00005"', '"0.00006"')
    [change] = diff(tiers)
    assert (change.kind, change.product) == ("product_changed", "product_analytics")
    assert change.details == ("version from 2024-01-01: tier 2 unit price 0.00005 -> 0.00006",)
    # 1,000,000 units of tier 2 cost 0.00001 more each: 10.00 from 2,000,000 on, half at 1.5M
    expected = []
    for quantity, old in ANALYTICS_OLD:
        delta = {"500000": D("0.00"), "1000000": D("0.00"), "1500000": D("5.00")}.get(
            quantity, D("10.00")
        )
        expected.append((quantity, old, str(D(old) + delta), str(delta)))
    assert figures(change) == expected
    assert figures(change)[3] == ("2000000", "50.00", "60.00", "10.00")


def test_a_removed_product_and_one_added_under_a_new_key(tiers):
    (tiers / "surveys.toml").unlink()
    copy = tiers / "crash_reports.toml"
    shutil.copy(tiers / "error_tracking.toml", copy)
    edit(copy, 'key = "error_tracking"', 'key = "crash_reports"')
    edit(copy, 'name = "Error tracking"', 'name = "Crash reports"')
    added, removed = diff(tiers)

    assert (added.kind, added.product) == ("product_added", "crash_reports")
    assert added.details[:4] == (
        "name: Crash reports",
        "unit: exception",
        "currency: USD",
        "model: graduated",
    )
    assert added.details[4].startswith("version from 2024-01-01: up to 100,000 at 0.00; ")
    assert added.details[4].endswith("; above 10,000,000 at 0.0001")
    # error tracking: (0, 100k] at 0; (100k, 400k] at 0.00037; (400k, 1M] at 0.00021; ...
    assert [p.old for p in added.prices] == [None] * len(added.prices)
    assert [p.delta for p in added.prices] == [None] * len(added.prices)
    by_quantity = {p.quantity: p.new for p in added.prices}
    assert by_quantity[D(100_000)] == D("0.00")
    assert by_quantity[D(250_000)] == D("55.50")  # 150,000 x 0.00037
    assert by_quantity[D(400_000)] == D("111.00")  # 300,000 x 0.00037
    assert by_quantity[D(1_000_000)] == D("237.00")  # 111 + 600,000 x 0.00021 (126)
    assert max(by_quantity) == D(15_000_000)  # 10M + the 5M width of the tier before

    assert (removed.kind, removed.product) == ("product_removed", "surveys")
    assert removed.details[:2] == ("name: Surveys", "unit: response")
    assert [p.new for p in removed.prices] == [None] * len(removed.prices)
    # surveys: (0, 1,500] at 0; (1,500, 2,000] at 0.1; (2,000, 3,000] at 0.035
    old = {p.quantity: p.old for p in removed.prices}
    assert old[D(1_750)] == D("25.00")  # 250 x 0.1
    assert old[D(2_500)] == D("67.50")  # 50 + 500 x 0.035


def test_a_moved_boundary_is_named_and_priced_at_both_tables_points(tiers):
    edit(
        tiers / "product_analytics.toml",
        '{ up_to = 1_000_000,   unit_price = "0" }',
        '{ up_to = 1_500_000,   unit_price = "0" }',
    )
    [change] = diff(tiers)
    assert change.details == ("version from 2024-01-01: tier 1 boundary 1,000,000 -> 1,500,000",)
    # 500,000 more free units, worth 500,000 x 0.00005 = 25.00 from 1,500,000 on
    got = {p.quantity: (p.old, p.new, p.delta) for p in change.prices}
    assert got[D(750_000)] == (D("0.00"), D("0.00"), D("0.00"))  # the new first middle
    assert got[D(1_500_000)] == (D("25.00"), D("0.00"), D("-25.00"))
    assert got[D(1_750_000)] == (D("37.50"), D("12.50"), D("-25.00"))
    assert got[D(2_000_000)] == (D("50.00"), D("25.00"), D("-25.00"))
    assert got[D(400_000_000)] == (D("6218.40"), D("6193.40"), D("-25.00"))


def test_a_renamed_unit_is_a_change_with_unchanged_prices(tiers):
    edit(tiers / "feature_flags.toml", 'unit = "request"', 'unit = "call"')
    edit(tiers / "feature_flags.toml", 'name = "Feature flags"', 'name = "Flags"')
    [change] = diff(tiers)
    assert (change.kind, change.product) == ("product_changed", "feature_flags")
    assert change.details == ("name: Feature flags -> Flags", "unit: request -> call")
    assert change.prices  # still shown, and all equal
    assert {p.delta for p in change.prices} == {D("0.00")}
    # feature flags: (0, 1M] at 0; (1M, 2M] at 0.0001: 1,500,000 costs 50.00
    assert PricePoint(D(1_500_000), D("50.00"), D("50.00")) in change.prices


def test_a_changed_bracket_discount_is_one_brackets_change(tiers):
    edit(
        tiers / "discounts.toml",
        '{ years = 2, min_credit = "20000",  discount_percent = "25" }',
        '{ years = 2, min_credit = "20000",  discount_percent = "27.5" }',
    )
    assert diff(tiers) == [
        Change(
            "brackets_changed",
            None,
            ("2-year bracket from 20,000: discount_percent 25 -> 27.5",),
            (),
        )
    ]


def test_brackets_added_removed_and_moved_are_told_apart(tiers):
    discounts = tiers / "discounts.toml"
    edit(discounts, 'min_purchase = "3000"', 'min_purchase = "5000"')
    edit(
        discounts,
        '{ years = 1, min_credit = "100000", discount_percent = "35" },',
        '{ years = 1, min_credit = "120000", discount_percent = "35" },\n'
        '  { years = 1, min_credit = "200000", discount_percent = "40" },',
    )
    edit(discounts, '  { years = 3, min_credit = "100000", discount_percent = "45" },\n', "")
    [change] = diff(tiers)
    assert change.details == (
        "min_purchase: 3,000 -> 5,000",
        "1-year bracket from 100,000: min_credit 100,000 -> 120,000",
        "bracket added: 1-year bracket from 200,000 at 40% off",
        "bracket removed: 3-year bracket from 100,000 at 45% off",
    )


def test_versions_are_compared_by_date_and_prices_use_the_plan_in_force_on_the_day(tiers):
    edit(
        tiers / "surveys.toml",
        '  { up_to = "inf",  unit_price = "0.005" },\n]\n',
        '  { up_to = "inf",  unit_price = "0.005" },\n]\n\n'
        "[[versions]]\neffective_from = 2027-01-01\ntiers = [\n"
        '  { up_to = 1_500,  unit_price = "0" },\n'
        '  { up_to = "inf",  unit_price = "0.01", flat_fee = "5" },\n]\n',
    )
    [before] = diff(tiers, at=AT)
    assert before.details == (
        "version from 2027-01-01 added: up to 1,500 at 0.00; above 1,500 at 0.01 + flat fee 5.00",
    )
    assert {p.delta for p in before.prices} == {D("0.00")}  # the new version is not in force
    [after] = diff(tiers, at=dt.date(2027, 1, 1))
    assert after.details == before.details
    # new: (0, 1,500] at 0, then 0.01 each + 5.00 once; 3,000 is 15.00 + 5.00
    # old: 50 (500 x 0.1) + 1,000 x 0.035 = 85.00
    at_3000 = next(p for p in after.prices if p.quantity == D(3_000))
    assert (at_3000.old, at_3000.new, at_3000.delta) == (D("85.00"), D("20.00"), D("-65.00"))


def test_a_product_before_its_first_version_has_no_price_on_that_side(tiers):
    edit(tiers / "surveys.toml", "effective_from = 2024-01-01", "effective_from = 2027-01-01")
    [change] = diff(tiers)
    assert change.details == (
        "version from 2024-01-01 removed: up to 1,500 at 0.00; up to 2,000 at 0.10; "
        "up to 3,000 at 0.035; up to 10,000 at 0.015; up to 20,000 at 0.01; "
        "above 20,000 at 0.005",
        "version from 2027-01-01 added: up to 1,500 at 0.00; up to 2,000 at 0.10; "
        "up to 3,000 at 0.035; up to 10,000 at 0.015; up to 20,000 at 0.01; "
        "above 20,000 at 0.005",
    )
    assert change.prices
    assert all(p.new is None and p.delta is None for p in change.prices)


def test_sources_filters_and_aggregation_are_compared(tiers):
    edit(
        tiers / "feature_flags.toml",
        '{ event = "flag_local_evaluation", multiplier = "10" }',
        '{ event = "flag_local_evaluation", multiplier = "12.5" }',
    )
    edit(tiers / "feature_flags.toml", '  { event = "flag_decide" },\n', "")
    edit(
        tiers / "identified_events.toml",
        'where = { person_mode = ["full", "force_upgrade"] }',
        'where = { person_mode = ["full"] }\naggregation = "count"',
    )
    flags, identified = diff(tiers)
    assert flags.details == (
        "source removed: flag_decide x1",
        "source flag_local_evaluation: multiplier 10 -> 12.5",
    )
    assert identified.details == (
        "aggregation: sum -> count",
        "where person_mode: force_upgrade, full -> full",
    )


def test_representative_quantities_of_a_package_plan_are_in_units():
    from billing.pricing.plan import Model, PricePlan, Tier

    plan = PricePlan(
        Model.PACKAGE,
        (Tier(D(10), D("0")), Tier(None, D("2"))),
        "USD",
        package_size=100,
    )
    # packages: 5 and 10 in the first tier, 10 + 10 in the last; times 100 units
    assert representative_quantities(plan) == [D(500), D(1_000), D(2_000)]
    lone = PricePlan(Model.VOLUME, (Tier(None, D("0.001")),), "USD")
    assert representative_quantities(lone) == [D(1_000_000)]


def test_a_change_as_json_has_strings_for_money_and_quantities(tiers):
    edit(tiers / "product_analytics.toml", '"0.00005"', '"0.00006"')
    (tiers / "surveys.toml").unlink()
    changed, removed = diff(tiers)
    data = change_as_json(changed)
    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "product_changed"
    assert data["product"] == "product_analytics"
    assert data["details"] == ["version from 2024-01-01: tier 2 unit price 0.00005 -> 0.00006"]
    assert data["prices"][:2] == [
        {"quantity": "500000", "old": "0.00", "new": "0.00", "delta": "0.00"},
        {"quantity": "1000000", "old": "0.00", "new": "0.00", "delta": "0.00"},
    ]
    assert data["prices"][3] == {
        "quantity": "2000000",
        "old": "50.00",
        "new": "60.00",
        "delta": "10.00",
    }
    gone = change_as_json(removed)["prices"][0]
    assert gone == {"quantity": "750", "old": "0.00", "new": None, "delta": None}
