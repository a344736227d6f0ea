"""`billing portal-link`: a single-use link on BILLING_PUBLIC_URL, with its lifetime."""

import datetime as dt
import re

from tests.cli.test_cli_metering import run

PUBLIC = {"BILLING_PUBLIC_URL": "https://billing.example.com/"}


def test_a_link_for_a_customer_and_one_for_finance(tmp_path):
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "customers", "create", "acme", "--name", "Acme")
    made = run(tmp_path, "portal-link", "acme", "--ttl", "2h", **PUBLIC)
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert re.fullmatch(
        r"https://billing\.example\.com/portal/signin\?token=[\w-]+\.\d+\.[0-9a-f]{64}", link
    ), link
    expires = int(link.split(".")[-2])
    lifetime = expires - dt.datetime.now(dt.UTC).timestamp()
    assert 7100 < lifetime <= 7200
    assert "works once" in made.stderr
    finance = run(tmp_path, "portal-link", "--finance", **PUBLIC).stdout.strip()
    assert finance.startswith("https://billing.example.com/finance/signin?token=")
    default = int(finance.split(".")[-2]) - dt.datetime.now(dt.UTC).timestamp()
    assert 800 < default <= 900  # BILLING_PORTAL_LINK_TTL: 15 minutes


def test_mistakes_are_refused_with_the_reason(tmp_path):
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "customers", "create", "acme", "--name", "Acme")
    for args, message in (
        (("portal-link", "nobody"), "no customer 'nobody'"),
        (("portal-link", "acme", "--ttl", "soon"), "--ttl: a duration like 90s, 15m, 2h or 1d"),
        (("portal-link", "acme", "--ttl", "30d"), "a link lives between 1 second and 7 days"),
        (("portal-link", "acme", "--finance"), "not both"),
        (("portal-link",), "give a CUSTOMER"),
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 2, args
        assert message in result.stderr, (args, result.stderr)
