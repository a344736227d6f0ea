"""Customer overrides (pricing_tiers/overrides/<customer>.toml): validated with the rest of the
directory, in force between their dates for their customer only, part of the digest, and
used by quotes for that customer."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D

import pytest

from billing.catalog.loader import catalog_digest, load_catalog, validate_directory
from billing.errors import CatalogError
from billing.quotes import quote
from tests.conftest import TIERS

ACME = """\
customer = "acme"

[[products]]
key = "session_replay"
effective_from = 2026-10-01
effective_to = 2027-01-01
tiers = [
  { up_to = 5_000, unit_price = "0" },
  { up_to = "inf", unit_price = "0.003" },
]
"""


def with_overrides(tmp_path, **files: str):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "overrides").mkdir()
    for customer, text in files.items():
        (directory / "overrides" / f"{customer}.toml").write_text(text)
    return directory


def test_an_override_prices_its_customer_between_its_dates_only(tmp_path):
    catalog = load_catalog(with_overrides(tmp_path, acme=ACME))
    october = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    january = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    september = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    listed = catalog.plan_for_period("session_replay", october)
    negotiated = catalog.plan_for_period("session_replay", october, "acme")
    assert negotiated != listed
    assert [t.unit_price for t in negotiated.tiers] == [D("0"), D("0.003")]
    assert catalog.plan_for_period("session_replay", december, "acme") == negotiated
    # effective_to is exclusive; before effective_from the list price holds
    assert catalog.plan_for_period("session_replay", january, "acme") == listed
    assert catalog.plan_for_period("session_replay", september, "acme") == listed
    # another customer, another product: the list price
    assert catalog.plan_for_period("session_replay", october, "other") == listed
    assert catalog.plan_for_period("product_analytics", october, "acme") == (
        catalog.plan_for_period("product_analytics", october)
    )
    assert catalog.plan_at("session_replay", dt.date(2026, 12, 31), customer="acme") == negotiated


def test_quotes_for_a_customer_use_their_override(tmp_path):
    catalog = load_catalog(with_overrides(tmp_path, acme=ACME))
    usage = {"session_replay": D(20_000)}
    day = dt.date(2026, 11, 1)
    # 5,000 free, then 10,000 x 0.005 + 5,000 x 0.004 = 70.00; acme: 15,000 x 0.003 = 45.00
    assert quote(catalog=catalog, usage=usage, at=day).total == D("70.00")
    assert quote(catalog=catalog, usage=usage, at=day, customer="acme").total == D("45.00")
    assert quote(catalog=catalog, usage=usage, at=day, customer="other").total == D("70.00")
    # the cap inversion (q_max) too: 30.00 buys 11,000 at list, 15,000 at acme's price
    capped = quote(
        catalog=catalog, usage=usage, at=day, spend_caps={"session_replay": D(30)}, customer="acme"
    )
    assert capped.lines[0].max_quantity == D(15_000)
    assert capped.lines[0].total == D("30.00")


BAD = """\
customer = "someone_else"

[[products]]
key = "nope"
effective_from = 2026-10-01
effective_to = 2026-09-01
tiers = [{ up_to = 5_000, unit_price = "0" }]

[[products]]
key = "session_replay"
effective_from = 2026-10-01
tiers = [{ up_to = "inf", unit_price = "-1" }]

[[products]]
key = "session_replay"
effective_from = 2026-12-01
colour = "red"
tiers = [{ up_to = "inf", unit_price = "1" }]
"""


def test_every_mistake_in_an_override_file_is_reported_with_file_and_key_path(tmp_path):
    directory = with_overrides(tmp_path, bad=BAD)
    found = {(p.file, p.path): p.message for p in validate_directory(directory)}
    file = "overrides/bad.toml"
    assert "must equal the file name 'bad'" in found[file, "customer"]
    assert "unknown product 'nope'" in found[file, "products[0].key"]
    assert "must come after effective_from" in found[file, "products[0].effective_to"]
    assert 'the last tier must have up_to = "inf"' in found[file, "products[0].tiers[0].up_to"]
    assert "must not be negative" in found[file, "products[1].tiers[0].unit_price"]
    assert "overlaps products[1]" in found[file, "products[2].effective_from"]
    assert "unknown key" in found[file, "products[2].colour"]
    with pytest.raises(CatalogError):
        load_catalog(directory)


def test_not_toml_is_blamed_on_the_override_file(tmp_path):
    directory = with_overrides(tmp_path, broken="customer = ")
    [problem] = validate_directory(directory)
    assert problem.file == "overrides/broken.toml"
    assert "not valid TOML" in problem.message


def test_the_digest_covers_the_override_files(tmp_path):
    plain = catalog_digest(TIERS)
    empty = with_overrides(tmp_path)
    assert catalog_digest(empty) == plain  # an empty folder changes nothing
    (empty / "overrides" / "acme.toml").write_text(ACME)
    assert catalog_digest(empty) != plain
    assert load_catalog(empty).digest == catalog_digest(empty)


def test_tiers_diff_reports_an_override_with_the_customers_prices(tmp_path):
    from billing.catalog.diff import OVERRIDE_CHANGED, diff_catalogs

    old = load_catalog(TIERS)
    new = load_catalog(with_overrides(tmp_path, acme=ACME))
    [change] = diff_catalogs(old, new, at=dt.date(2026, 11, 1))
    assert change.kind == OVERRIDE_CHANGED
    assert change.product == "session_replay"
    assert change.details == (
        "override for customer acme",
        "added: from 2026-10-01 to 2027-01-01 (exclusive): up to 5,000 at 0.00; "
        "above 5,000 at 0.003",
    )
    # priced at the customer's plans: 15,000 recordings cost 50.00 at list, 30.00 for acme
    at_15_000 = next(p for p in change.prices if p.quantity == D(15_000))
    assert (at_15_000.old, at_15_000.new, at_15_000.delta) == (D("50.00"), D("30.00"), D("-20.00"))
    assert diff_catalogs(new, new, at=dt.date(2026, 11, 1)) == []


def test_an_override_cannot_start_before_the_products_first_version(tmp_path):
    early = ACME.replace("effective_from = 2026-10-01", "effective_from = 2023-06-01")
    directory = with_overrides(tmp_path, acme=early)
    found = {(p.file, p.path): p.message for p in validate_directory(directory)}
    first = load_catalog(TIERS).first_price_day("session_replay")
    assert found == {
        ("overrides/acme.toml", "products[0].effective_from"): (
            f"session_replay has no price before {first} (its first version): an override "
            "cannot start earlier, got 2023-06-01"
        )
    }
