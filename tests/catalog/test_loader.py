"""Tier directories: valid ones load into price plans, invalid ones report every problem."""

import datetime as dt
import json
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from billing.catalog import load_catalog, validate_directory
from billing.catalog.schema import DiscountsFile, OverrideFile, ProductFile, SettingsFile
from billing.errors import CatalogError
from billing.pricing import Model, charge
from tests.conftest import TIERS

FIXTURES = Path(__file__).parent / "fixtures"
INVALID = FIXTURES / "invalid"


def problems_of(name):
    return [(p.file, p.path, p.message) for p in validate_directory(INVALID / name)]


def test_the_shipped_tiers_are_valid_and_cover_nine_products():
    catalog = load_catalog(TIERS)
    assert set(catalog.products) == {
        "product_analytics",
        "session_replay",
        "feature_flags",
        "surveys",
        "data_warehouse",
        "error_tracking",
        "identified_events",
        "llm_tokens_standard",
        "llm_tokens_premium",
    }
    for product in catalog.products.values():
        plan = product.versions[-1].plan
        assert plan.model is Model.GRADUATED
        assert 3 <= len(plan.tiers) <= 7
        assert plan.free_allowance
        assert plan.free_allowance > 0
    assert catalog.schedule is not None
    assert catalog.schedule.terms == (1, 2, 3)


def test_the_valid_fixture_loads_every_model_and_versions_by_date():
    catalog = load_catalog(FIXTURES / "valid")
    assert {p.model for p in catalog.products.values()} == set(Model)
    widget = catalog.products["graduated_widget"]
    assert widget.version_at(dt.date(2023, 12, 31)) is None
    assert widget.version_at(dt.date(2024, 1, 1)).effective_from == dt.date(2024, 1, 1)
    assert widget.version_at(dt.date(2026, 5, 31)).effective_from == dt.date(2024, 1, 1)
    assert widget.version_at(dt.date(2026, 6, 1)).effective_from == dt.date(2026, 6, 1)
    package = catalog.products["package_widget"].versions[0].plan
    assert package.package_size == 1000
    assert charge(package, D(1001)).amount == D(2)


@pytest.mark.parametrize(
    ("fixture", "path", "fragment"),
    [
        ("non_increasing_up_to", "versions[0].tiers[1].up_to", "strictly increasing: 100"),
        (
            "missing_inf_last_tier",
            "versions[0].tiers[1].up_to",
            'last tier must have up_to = "inf"',
        ),
        ("float_price", "versions[0].tiers[1].unit_price", "not a TOML float (0.05)"),
        ("negative_price", "versions[0].tiers[1].unit_price", 'must not be negative, got "-0.05"'),
        ("too_many_decimals", "versions[0].tiers[1].unit_price", "13 decimal places; at most 12"),
        ("unknown_key", "versions[0].tiers[1].unit_prise", "did you mean 'unit_price'?"),
        ("key_not_matching_stem", "key", "key 'other_thing' must equal the file name 'thing'"),
        ("duplicate_product_key", "key", "duplicate product key 'thing': also in thing.toml"),
        ("versions_out_of_order", "versions[1].effective_from", "2023-06-01 does not come after"),
        ("unknown_currency", "currency", "unknown currency 'USX'"),
        ("package_without_size", "package_size", 'model "package" needs package_size'),
        ("unparseable_toml", "line 3, column 15", "not valid TOML"),
        ("mixed_currencies", "currency", "one currency"),
    ],
)
def test_each_invalid_fixture_reports_its_file_key_path_and_reason(fixture, path, fragment):
    found = problems_of(fixture)
    matching = [p for p in found if p[1] == path and fragment in p[2]]
    assert matching, found
    assert all(file.endswith(".toml") for file, _, _ in found)


def test_every_mistake_in_a_file_is_reported_not_just_the_first():
    found = problems_of("three_mistakes")
    assert len(found) == 3, found
    paths = {path for _, path, _ in found}
    assert paths == {"colour", "versions[0].tiers[1].up_to", "versions[0].tiers[2].unit_price"}


def test_discount_schedule_rules():
    found = problems_of("bad_discounts")
    messages = " | ".join(m for _, _, m in found)
    assert "'monthly' or 'upfront'" in messages
    assert "must not get a smaller discount" in messages
    assert "above min_purchase 3000" in messages


def test_loading_an_invalid_directory_raises_with_every_problem():
    with pytest.raises(CatalogError) as error:
        load_catalog(INVALID / "three_mistakes")
    assert len(error.value.problems) == 3
    assert "thing.toml: colour: unknown key" in error.value.message


def test_a_missing_directory_and_an_empty_one_are_problems(tmp_path):
    assert "not found" in validate_directory(tmp_path / "nope")[0].message
    assert "no product files" in validate_directory(tmp_path)[0].message


@pytest.mark.parametrize(
    ("model", "file"),
    [
        (ProductFile, "product.schema.json"),
        (DiscountsFile, "discounts.schema.json"),
        (SettingsFile, "settings.schema.json"),
        (OverrideFile, "override.schema.json"),
    ],
)
def test_the_published_json_schema_is_the_one_the_models_generate(model, file):
    published = json.loads((TIERS / "schema" / file).read_text())
    assert published == TypeAdapter(model).json_schema()


def test_only_the_file_in_another_currency_is_blamed():
    found = problems_of("one_file_in_another_currency")
    assert [(f, p) for f, p, _ in found] == [("a_odd.toml", "currency")]


def test_a_bracket_that_min_purchase_skips_over_is_refused_and_full_rollover_is_allowed():
    found = problems_of("unreachable_bracket")
    assert len(found) == 1
    assert "can never be chosen" in found[0][2]


def test_odd_values_are_reported_readably_and_a_bom_is_harmless():
    found = problems_of("odd_values")
    text = "\n".join(f"{f}: {p}: {m}" for f, p, m in found)
    assert "shouting.TOML: : tier files end in lowercase .toml" in text
    assert "unit_price: a price must be written with digits and one point" in text
    assert "flat_fee: a price must be at most 1000000000" in text
    assert 'tiers[2]: must be a table, like { up_to = 100, unit_price = "0.5" }' in text
    assert "bom_widget" not in text
    assert "instance of" not in text


def test_settings_declare_the_late_usage_policy_and_are_validated_with_the_rest(tmp_path):
    import shutil

    from billing.catalog import load_catalog

    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory, ignore=shutil.ignore_patterns("schema"))
    assert not load_catalog(directory).late_usage.amend  # reject by default
    (directory / "settings.toml").write_text('[late_usage]\npolicy = "amend"\nwindow_days = 10\n')
    late = load_catalog(directory).late_usage
    assert (late.amend, late.window.days) == (True, 10)
    (directory / "settings.toml").write_text(
        '[late_usage]\npolicy = "sometimes"\nwindow_days = -1\nextra = 1\n'
    )
    found = {(p.file, p.path) for p in validate_directory(directory)}
    assert found == {
        ("settings.toml", "late_usage.policy"),
        ("settings.toml", "late_usage.window_days"),
        ("settings.toml", "late_usage.extra"),
    }


def test_a_credit_above_what_can_be_sent_in_is_refused_in_the_tier_file(tmp_path):
    """A bracket from more than 1,000,000,000 (the most any amount sent in may be) could
    never be bought: the tier file is refused, naming the key."""
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    discounts = directory / "discounts.toml"
    discounts.write_text(discounts.read_text().replace('"100000",', '"1000000001",', 1))
    [problem] = validate_directory(directory)
    assert (problem.file, problem.path) == ("discounts.toml", "brackets[3].min_credit")
    assert problem.message == 'an amount must be at most 1000000000, got "1000000001"'


PATHOLOGICAL = [
    (
        "x = " + "[" * 10_000 + "]" * 10_000,  # a RecursionError in tomllib
        "line 1",
        "cannot be read: nested more than 32 levels deep (arrays or inline tables)",
    ),
    (
        "x = " + "{a = " * 10_000 + "1" + "}" * 10_000,
        "line 1",
        "cannot be read: nested more than 32 levels deep (arrays or inline tables)",
    ),
    (  # tomllib keeps every prefix of a key: gigabytes
        'key = "weird"\n' + "a" + ".a" * 100_000 + " = 1",
        "line 2",
        "cannot be read: a dotted key of more than 32 parts",
    ),
    (
        "".join(f"[{'.'.join(['t'] * depth)}]\n" for depth in range(1, 100)),
        "line 33",
        "cannot be read: a dotted key of more than 32 parts",
    ),
    ("up_to = " + "1" * 5_000, "", "not valid TOML: a number too large to read"),
    ("up_to = 0x" + "f" * 5_000, "up_to", "not valid TOML: an integer outside the 64-bit range"),
    ("up_to = 9223372036854775808", "up_to", "not valid TOML: an integer outside the 64-bit"),
    ("# " + "x" * (1024 * 1024), "", "the file is 1,048,578 bytes; a tier file is at most"),
]


@pytest.mark.parametrize(("text", "path", "message"), PATHOLOGICAL)
def test_a_pathological_file_is_one_problem_naming_it_never_a_traceback(
    tmp_path, text, path, message
):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "weird.toml").write_text(text)
    [problem] = validate_directory(directory)
    assert (problem.file, problem.path) == ("weird.toml", path)
    assert problem.message.startswith(message)
    with pytest.raises(CatalogError) as refused:
        load_catalog(directory)
    assert refused.value.problems == [problem]


def test_what_only_looks_deep_or_dotted_is_read_as_usual(tmp_path):
    """Brackets and dots inside strings and comments, floats in a list, 30 levels."""
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    odd = (
        "# " + "[" * 100 + "." * 100 + "\n"
        'name = "' + "[" * 100 + '"\n'
        "unit = '" + "." * 100 + "'\n"
        'description = """' + "{" * 100 + '\n"quoted" """"\n'
        "x = [" + ", ".join(["1.5"] * 100) + "]\n"
        "y = " + "[" * 30 + "]" * 30 + "\n"
    )
    (directory / "weird.toml").write_text(odd)
    found = [p for p in validate_directory(directory) if p.file == "weird.toml"]
    assert "missing required key 'key'" in {p.message for p in found}  # parsed, then validated
    assert not any("cannot be read" in p.message or "TOML" in p.message for p in found)
