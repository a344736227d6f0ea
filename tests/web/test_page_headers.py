"""Every page carries the security headers; only public pages may be cached."""

import pytest

from billing.web.templating import PAGE_HEADERS


@pytest.mark.parametrize(
    "path", ["/pricing", "/portal/signin?token=x", "/finance/login", "/portal"]
)
def test_pages_carry_security_headers(api, path):
    answer = api.get(path)
    for name, value in PAGE_HEADERS.items():
        assert answer.headers[name] == value, (path, name)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    if path != "/pricing":
        assert answer.headers["cache-control"] == "no-store"
