"""The switches that make PostgreSQL and Chromium required really turn a skip into a failure."""

import pytest

from tests.conftest import REPO

PROBE = """
import pytest

def test_needs_postgres(postgres_url):
    assert postgres_url
"""


@pytest.mark.parametrize(("required", "outcome"), [("1", "errors"), ("0", "skipped")])
def test_an_unreachable_postgres_skips_or_fails_as_the_switch_says(
    pytester, monkeypatch, required, outcome
):
    monkeypatch.setenv("BILLING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:1/test")
    monkeypatch.setenv("BILLING_REQUIRE_POSTGRES", required)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest("from tests.conftest import postgres_url  # noqa: F401")
    pytester.makepyfile(PROBE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**{outcome: 1})
