"""/pricing in real headless Chromium: a person types and drags, and reads the totals."""

from collections.abc import Iterator

import pytest

from tests.servers import running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_server() as base:
        yield base


@pytest.fixture
def page(chromium_path, base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def test_typing_a_quantity_shows_the_right_total_and_breakdown(page, base_url):
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    expect(page.get_by_role("heading", name="Pricing calculator")).to_be_visible()
    page.get_by_label("Product analytics", exact=True).fill("3000000")
    expect(page.locator("#total")).to_have_text("84.30")
    expect(page.locator("#line-product_analytics")).to_contain_text("84.30 USD")
    rows = page.locator("#breakdown tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1).locator("td")).to_have_text(
        ["Product analytics", "1,000,000 – 2,000,000", "1,000,000", "0.00005", "50.00"]
    )
    expect(rows.nth(2).locator("td").last).to_have_text("34.30")
    # The commitment table prices every bracket for this usage and marks no saver: too small.
    expect(page.locator("#options tbody tr")).to_have_count(12)
    expect(page.locator("#options tr.recommended")).to_have_count(0)


def test_totals_update_as_products_caps_and_a_discount_change(page, base_url):
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    page.get_by_label("Product analytics", exact=True).fill("3,000,000")
    page.get_by_label("Session replay", exact=True).fill("40000")
    expect(page.locator("#total")).to_have_text("234.30")  # 84.30 + 150.00
    page.locator("#cap-session_replay").fill("100")
    expect(page.locator("#total")).to_have_text("184.30")
    expect(page.locator("#line-session_replay")).to_contain_text("capped")
    page.get_by_label("Percentage discount").fill("20")
    expect(page.locator("#total")).to_have_text("167.44")  # 67.44 + a 100.00 cap


def test_dragging_the_slider_sets_a_quantity_and_prices_it(page, base_url):
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    slider = page.get_by_label("Feature flags volume")
    slider.fill("1000")  # the far right of the log scale
    quantity = page.get_by_label("Feature flags", exact=True)
    expect(quantity).not_to_have_value("")
    expect(page.locator("#total")).not_to_have_text("0.00")


def test_a_bad_quantity_shows_the_servers_message_next_to_the_product(page, base_url):
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    page.get_by_label("Surveys", exact=True).fill("-5")
    expect(page.locator("#err-surveys")).to_contain_text("non-negative")


def test_a_large_recommended_commitment_is_highlighted(page, base_url):
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    page.get_by_label("Product analytics", exact=True).fill("400000000")
    expect(page.locator("#options tr.recommended")).to_have_count(1)


def test_the_page_works_without_javascript_through_its_form(chromium_path, base_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{base_url}/pricing")
        page.get_by_label("Product analytics", exact=True).fill("3000000")
        page.get_by_role("button", name="Calculate").click()
        expect(page.locator("#total")).to_have_text("84.30")
        browser.close()
