"""Every setting is in a settings table of the docs: docs/operations.md, or docs/stripe.md
for Stripe's."""

from billing.settings import Settings
from tests.conftest import REPO

TABLES = ("operations.md", "stripe.md")
# NOTE: read by nothing in billing/: `billing serve` takes --host and --port instead.
UNUSED = {"host", "port"}


def test_every_setting_is_in_a_settings_table():
    rows = "\n".join((REPO / "docs" / page).read_text() for page in TABLES)
    missing = [
        f"BILLING_{name.upper()}"
        for name in Settings.model_fields
        if name not in UNUSED and f"| `BILLING_{name.upper()}` |" not in rows
    ]
    assert missing == []
