"""The settings.toml examples in docs/ load as shown: the late-usage policy they declare is
the one the catalogue takes (the amounts of the metering doc's late-usage example are
checked in tests/invoicing/test_time_and_order.py)."""

import re
import shutil

import pytest

from billing.catalog import load_catalog
from tests.conftest import REPO, TIERS

TOML = re.compile(r"```toml\n(.*?)```", re.DOTALL)


def settings_examples():
    for doc in ("metering.md", "tier-files.md"):
        for block in TOML.findall((REPO / "docs" / doc).read_text()):
            if "[late_usage]" in block:
                yield pytest.param(block, id=doc)


@pytest.mark.parametrize("block", list(settings_examples()))
def test_a_documented_settings_file_loads_as_it_says(block, tmp_path):
    directory = tmp_path / "tiers"
    shutil.copytree(TIERS, directory)
    (directory / "settings.toml").write_text(block)
    late = load_catalog(directory).late_usage
    assert (late.amend, late.window.days) == (True, 10)


def test_both_docs_show_a_settings_file():
    assert len(list(settings_examples())) == 2
