"""The address `make run` serves, in headless Chromium: `/` is a landing page that leads to
the pricing calculator, the API docs, the portal and the finance pages; a page path that
does not exist is an HTML page, while the API's paths keep their JSON error body."""

import json
import urllib.error
import urllib.request

import pytest

from tests.web.test_pricing_page import base_url, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_landing_page_leads_everywhere_a_newcomer_goes(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    answer = page.goto(f"{base_url}/")
    assert answer is not None
    assert answer.status == 200
    expect(page.get_by_role("heading", name="Usage-based billing")).to_be_visible()
    expect(page.locator("#landing")).to_contain_text("billing portal-link acme")
    expect(page.locator("#landing")).to_contain_text("billing keys create --role finance")
    page.locator("#to-pricing").click()
    expect(page.get_by_role("heading", name="Pricing calculator")).to_be_visible()
    page.goto(f"{base_url}/")
    page.locator("#to-finance").click()
    assert page.url.endswith("/finance/login")
    page.goto(f"{base_url}/")
    assert page.locator("#to-docs").get_attribute("href") == "/docs"


def test_a_missing_page_is_an_html_404_and_a_missing_api_path_is_json(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    for path in ("/nope", "/portal/nope", "/finance/nope/deeper"):
        answer = page.goto(f"{base_url}{path}")
        assert answer is not None
        assert answer.status == 404
        assert answer.headers["content-type"].startswith("text/html")
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        expect(page.locator("main")).to_contain_text(f"There is no page at {path}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base_url}/v1/nope", timeout=10)
    assert refused.value.code == 404
    assert json.loads(refused.value.read())["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .info .title"), ("/redoc", "[role=navigation], .menu-content")],
)
def test_the_api_docs_render_with_the_network_blocked(page, base_url, path, rendered):  # noqa: F811
    """Swagger UI and ReDoc come from the installed package: with every request that would
    leave 127.0.0.1 refused, both still render the API."""
    from playwright.sync_api import expect

    outside: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    answer = page.goto(f"{base_url}{path}")
    assert answer is not None
    assert answer.status == 200
    expect(page.locator(rendered).first).to_be_visible(timeout=30_000)
    expect(page.locator("body")).to_contain_text("/v1/events", timeout=30_000)
    assert outside == []
