"""The installed `billing` command: quote, tiers validate, tiers schema."""

import json
import shutil

import pytest

from tests.catalog.test_loader import FIXTURES, INVALID
from tests.conftest import TIERS
from tests.servers import billing_cli


def billing(*args):
    return billing_cli(*args, timeout=60)


def test_quote_json_is_the_same_document_as_the_api(client):
    args = ["product_analytics=3000000", "session_replay=40000", "--discount", "20"]
    args += ["--cap", "session_replay=100", "--credit", "30000", "--years", "1"]
    result = billing("quote", *args, "--at", "2026-11-01", "--json", "--tiers", str(TIERS))
    assert result.returncode == 0, result.stderr
    api = client.post(
        "/v1/quote",
        json={
            "usage": {"product_analytics": 3000000, "session_replay": 40000},
            "discount_percent": "20",
            "spend_caps": {"session_replay": "100"},
            "commitment": {"credit": "30000", "years": 1},
            "at": "2026-11-01",
        },
    ).json()
    assert json.loads(result.stdout) == api


def test_quote_prints_a_readable_breakdown():
    result = billing("quote", "product_analytics=3_000_000", "--at", "2026-11-01")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Product analytics: 3,000,000 events" in out
    assert "1,000,000 – 2,000,000" in out
    assert "Total             84.30 USD" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope=1"], "usage.nope: unknown product 'nope'"),
        (["product_analytics=-1"], "usage.product_analytics: quantity must be a non-negative"),
        (["product_analytics"], "expected PRODUCT=VALUE"),
        (["product_analytics=1", "--at", "2020-01-01"], "at: product_analytics has no price"),
        (["product_analytics=1", "--at", "soon"], "at: must be a date"),
        (["product_analytics=1", "--credit", "30000"], "--credit and --years go together"),
        (["product_analytics=1", "--credit", "30000", "--years", "9"], "commitment.years"),
        (["product_analytics=1", "--cap", "surveys=1.001"], "spend_caps.surveys"),
        (["surveys=1", "surveys=2"], "usage.surveys: given twice"),
    ],
)
def test_bad_quote_input_exits_2_naming_the_field(args, fragment):
    result = billing("quote", *args)
    assert result.returncode == 2
    assert fragment in result.stderr


def test_tiers_validate_passes_the_shipped_directory_and_fails_a_broken_one():
    ok = billing("tiers", "validate", str(TIERS))
    assert ok.returncode == 0
    assert "ok: 9 products, 12 commitment brackets" in ok.stdout
    bad = billing("tiers", "validate", str(INVALID / "three_mistakes"))
    assert bad.returncode == 1
    assert bad.stderr.count("thing.toml:") == 3


@pytest.mark.parametrize(
    "command",
    [("tiers", "validate", "{}"), ("serve", "--tiers", "{}"), ("worker", "--tiers", "{}")],
)
def test_a_deeply_nested_tier_file_is_one_line_naming_it_not_a_traceback(tmp_path, command):
    """10,000 nested arrays were a RecursionError in the TOML parser, printed as a traceback
    by every command that loads the tier directory (issue 17, 7)."""
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "deep.toml").write_text("x = " + "[" * 10_000 + "]" * 10_000)
    result = billing(*(part.format(directory) for part in command))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "deep.toml" in line]
    assert line.endswith(
        "deep.toml: line 1: cannot be read: nested more than 32 levels deep (arrays or "
        "inline tables)"
    )


def test_tiers_schema_prints_the_json_schema():
    result = billing("tiers", "schema")
    assert json.loads(result.stdout)["title"] == "Product tier file"
    assert json.loads(billing("tiers", "schema", "discounts").stdout)["title"].startswith(
        "Commitment"
    )


def test_quote_uses_another_tier_directory():
    result = billing(
        "quote", "volume_widget=101", "--tiers", str(FIXTURES / "valid"), "--at", "2026-01-01"
    )
    assert result.returncode == 0, result.stderr
    assert "Total             60.50 USD" in result.stdout
