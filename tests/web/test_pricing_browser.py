"""/pricing in real headless Chromium against `billing serve`: the starting volumes, typing
and dragging, the address as the quote's state (a link reopens the same quote), human
messages, the page without JavaScript, and a 390 px phone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.web.test_pricing_page import CHROMIUM_ARGS, base_url, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}


@contextmanager
def browser_page(chromium_path: str, **context) -> Iterator:
    """A page of its own Chromium context (a viewport, JavaScript off, permissions...), and
    the console errors it logs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        made = browser.new_context(**context)
        opened = made.new_page()
        opened.set_default_timeout(15_000)
        errors: list[str] = []
        opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        opened.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield opened, errors
        finally:
            made.close()
            browser.close()


def settled(page) -> None:  # noqa: F811
    """Wait until the live page has priced what was typed (it marks <main> aria-busy from
    the first keystroke until the new figures are in)."""
    page.locator("main:not([aria-busy])").wait_for()


def test_the_page_opens_priced_at_the_starting_volumes(chromium_path, base_url):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(chromium_path, viewport={"width": 1200, "height": 900}) as (page, errors):  # noqa: F811
        page.goto(f"{base_url}/pricing")
        expect(page.locator("#defaults-note")).to_contain_text("top of its first paid tier")
        expect(page.get_by_label("Product analytics", exact=True)).to_have_value("2,000,000")
        expect(page.get_by_label("Session replay", exact=True)).to_have_value("15,000")
        expect(page.locator("#total")).to_have_text("496.00")
        expect(page.locator("#line-product_analytics")).to_contain_text("50.00 USD a month")
        # Every product has a row (add-ons and per-model variants at 0, chosen, not
        # assumed); each priced one its free tier and first paid tier under it.
        expect(page.locator("#breakdown tbody tr.product-row")).to_have_count(9)
        expect(page.get_by_label("Identified events", exact=True)).to_have_value("0")
        expect(page.locator("#breakdown tbody tr.tier-row")).to_have_count(12)
        expect(page.locator("#breakdown tfoot")).to_contain_text("496.00")
        options = page.locator("#options tbody tr")
        expect(options).to_have_count(12)
        expect(page.locator("#options tr.recommended")).to_have_count(1)
        expect(page.locator("#options tr.recommended")).to_contain_text("Best for your usage")
        expect(page.locator("#options")).not_to_contain_text("enter usage")
        expect(page.locator("#options")).to_contain_text("Not worth it at this usage")
        # Sliders are shown (and placed) only because JavaScript runs.
        expect(page.get_by_label("Product analytics volume")).to_be_visible()
        assert page.get_by_label("Product analytics volume").input_value() != "0"
        assert errors == []


def test_typing_a_quantity_shows_the_right_total_and_breakdown(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing?product_analytics=")
    expect(page.get_by_role("heading", name="Pricing calculator")).to_be_visible()
    page.get_by_label("Product analytics", exact=True).fill("3000000")
    expect(page.locator("#total")).to_have_text("84.30")
    expect(page.locator("#line-product_analytics")).to_contain_text("84.30 USD")
    rows = page.locator("#breakdown tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("Product analytics: 3,000,000 events")
    expect(rows.nth(2).locator("td")).to_have_text(
        ["1,000,000 – 2,000,000", "1,000,000 × 0.00005", "50.00"]
    )
    expect(rows.nth(3).locator("td").last).to_have_text("34.30")
    # Every bracket priced for this usage; none saves, and each says so in words.
    expect(page.locator("#options tbody tr")).to_have_count(12)
    expect(page.locator("#options tr.recommended")).to_have_count(0)
    expect(page.locator("#commitment-advice")).to_contain_text("no commitment saves money yet")
    expect(page.locator("#options tbody tr").first).to_contain_text(
        "Not worth it at this usage: costs 1,688.40 USD more a year than paying as you go"
    )
    expect(page.locator("#options tbody tr").first).to_contain_text("225.00 USD a month")
    assert "product_analytics=3000000" in page.url


def test_totals_update_as_products_and_caps_change(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing?product_analytics=")
    page.get_by_label("Product analytics", exact=True).fill("3,000,000")
    page.get_by_label("Session replay", exact=True).fill("40000")
    expect(page.locator("#total")).to_have_text("234.30")  # 84.30 + 150.00
    page.locator("#cap-session_replay").fill("100")
    expect(page.locator("#total")).to_have_text("184.30")
    expect(page.locator("#line-session_replay")).to_contain_text("Capped: 27,500 of 40,000")
    assert page.locator("#discount").count() == 0  # no public percentage discount


def test_dragging_the_slider_sets_a_quantity_and_prices_it(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing?feature_flags=")
    slider = page.get_by_label("Feature flags volume")
    slider.fill("1000")  # the far right of the log scale
    quantity = page.get_by_label("Feature flags", exact=True)
    expect(quantity).not_to_have_value("")
    expect(page.locator("#total")).not_to_have_text("0.00")
    expect(page.locator("#line-feature_flags")).to_contain_text("USD a month")


def test_a_bad_quantity_is_explained_next_to_it_and_the_rest_stays_priced(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    expect(page.locator("#total")).to_have_text("496.00")
    page.get_by_label("Surveys", exact=True).fill("-5")
    expect(page.locator("#err-qty-surveys")).to_have_text(
        "A volume cannot be negative: enter 0 or more responses, like 2,000"
    )
    expect(page.get_by_label("Surveys", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#total")).to_have_text("446.00")  # everything but Surveys' 50.00
    expect(page.locator("#summary")).to_contain_text("Leaves out Surveys")
    expect(page.locator("#line-product_analytics")).to_contain_text("50.00 USD a month")
    page.locator("#cap-surveys").fill("12.345")
    expect(page.locator("#err-cap-surveys")).to_have_text(
        "A spend cap in USD has at most 2 decimal places, like 50.25"
    )
    page.get_by_label("Surveys", exact=True).fill("2000")
    expect(page.locator("#err-qty-surveys")).to_have_text("")
    expect(page.get_by_label("Surveys", exact=True)).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#total")).to_have_text("496.00")  # priced without the bad cap
    expect(page.locator("#line-surveys")).to_contain_text("Priced without a cap")
    for text in ("usage.", "spend_caps.", "invalid_"):
        expect(page.locator("main")).not_to_contain_text(text)


def test_over_the_quote_budget_the_page_says_so_and_tries_again(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    expect(page.locator("#total")).to_have_text("496.00")
    refused: list[str] = []

    def once(route):
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(status=429, headers={"Retry-After": "1"}, body="")

    page.route("**/pricing?*", once)
    page.get_by_label("Surveys", exact=True).fill("")
    expect(page.locator("#offline")).to_have_text(
        "Too many quotes from your address: the figures update again in 1 s."
    )
    expect(page.locator("#total")).to_have_text("446.00")  # priced once the second is up
    expect(page.locator("#offline")).to_have_text("")
    assert len(refused) == 1


def test_a_large_recommended_commitment_is_highlighted(page, base_url):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{base_url}/pricing")
    page.get_by_label("Product analytics", exact=True).fill("400000000")
    expect(page.locator("#options tr.recommended")).to_have_count(1)
    expect(page.locator("#options tr.recommended")).to_contain_text("Best for your usage")
    expect(page.locator("#options")).to_contain_text("Past this bracket")
    expect(page.locator("#options")).not_to_contain_text("19,999.99")


def test_a_shared_address_reopens_the_same_inputs_and_total(chromium_path, base_url):  # noqa: F811
    from playwright.sync_api import expect

    typed = {
        "#qty-product_analytics": "12500000",
        "#qty-session_replay": "40000",
        "#qty-surveys": "",
        "#cap-session_replay": "100",
        "#cap-error_tracking": "75.50",
    }
    with browser_page(chromium_path) as (first, errors):
        first.goto(f"{base_url}/pricing")
        for selector, value in typed.items():
            first.locator(selector).fill(value)
        expect(first.locator("#line-session_replay")).to_contain_text("Capped")
        expect(first.locator("#line-surveys")).to_have_text("Not included")
        settled(first)
        total = first.locator("#total").inner_text()
        shared = first.url
        assert first.locator("#share-link").get_attribute("href") == shared.removeprefix(base_url)
        query = dict(parse_qsl(urlsplit(shared).query, keep_blank_values=True))
        assert query["product_analytics"] == "12500000"
        assert query["cap.session_replay"] == "100"
        assert query["cap.error_tracking"] == "75.50"
        assert query["surveys"] == ""
        assert query["data_warehouse"] == "10000000"  # a starting volume, kept as shown
        # Reloaded, the same page says the same.
        first.reload()
        expect(first.locator("#total")).to_have_text(total)
        for selector, value in typed.items():
            expect(first.locator(selector)).to_have_value(value)
        assert errors == []
    # Opened in a new browser, the address is the same quote.
    with browser_page(chromium_path) as (second, errors):
        second.goto(shared)
        expect(second.locator("#total")).to_have_text(total)
        for selector, value in typed.items():
            expect(second.locator(selector)).to_have_value(value)
        expect(second.locator("#line-session_replay")).to_contain_text("Capped")
        expect(second.locator("#defaults-note")).to_have_text("")
        assert errors == []


def test_copy_link_copies_the_address_of_the_quote(chromium_path, base_url):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(chromium_path, permissions=["clipboard-read", "clipboard-write"]) as (
        page,  # noqa: F811
        errors,
    ):
        page.goto(f"{base_url}/pricing")
        page.get_by_label("Surveys", exact=True).fill("2500")
        page.get_by_role("button", name="Copy link").click()
        expect(page.locator("#copy-status")).to_have_text("Copied.")
        # The reprice of what was typed may finish after the click: the same address,
        # so "Copied." stays.
        settled(page)
        expect(page.locator("#copy-status")).to_have_text("Copied.")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.url
        assert "surveys=2500" in copied
        assert errors == []


def test_without_javascript_the_form_submits_quantities_and_caps(chromium_path, base_url):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(chromium_path, java_script_enabled=False) as (page, _):  # noqa: F811
        page.goto(f"{base_url}/pricing")
        expect(page.locator("#total")).to_have_text("496.00")  # server-rendered defaults
        expect(page.get_by_label("Product analytics volume")).to_be_hidden()
        expect(page.get_by_role("button", name="Copy link")).to_be_hidden()
        page.get_by_label("Product analytics", exact=True).fill("3000000")
        page.locator("#cap-session_replay").fill("20")
        page.get_by_role("button", name="Calculate").click()
        # 496.00 - 50.00 + 84.30 for analytics; session replay's 50.00 capped at 20.00.
        expect(page.locator("#total")).to_have_text("500.30")
        expect(page.locator("#line-session_replay")).to_contain_text("Capped: 9,000 of 15,000")
        assert "cap.session_replay=20" in page.url
        page.locator("#cap-session_replay").fill("twenty")
        page.get_by_role("button", name="Calculate").click()
        expect(page.locator("#err-cap-session_replay")).to_have_text(
            "A spend cap is an amount in USD, like 50 or 50.00"
        )
        expect(page.locator("#total")).to_have_text("530.30")


def fits_the_phone(page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    header = page.locator("#breakdown thead th").last
    expect(header).to_have_text("Amount (USD)")
    expect(header).to_be_visible()
    within(header.bounding_box())
    for table in ("#breakdown", "#options"):
        within(page.locator(table).bounding_box())
    for cell in page.locator("#breakdown tbody td:last-child").all():
        within(cell.bounding_box())


def within(box) -> None:
    """A bounding box lies between 0 and the phone's width."""
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE["width"], box


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?product_analytics=400000000&session_replay=40000&cap.session_replay=100"
        "&data_warehouse=123456789&error_tracking=abc&feature_flags=3333333&surveys=20000"
        "&cap.surveys=1.234",
    ],
    ids=["starting volumes", "large volumes, a cap and errors"],
)
def test_at_390_px_nothing_overflows_and_the_amounts_are_in_view(chromium_path, base_url, query):  # noqa: F811
    from playwright.sync_api import expect

    with browser_page(chromium_path, viewport=PHONE, is_mobile=True, has_touch=True) as (
        page,  # noqa: F811
        errors,
    ):
        page.goto(f"{base_url}/pricing{query}")
        expect(page.locator("#breakdown")).to_be_visible()
        fits_the_phone(page)
        # Still so once the live page has re-priced a bigger quote.
        page.get_by_label("Data warehouse", exact=True).fill("9999999999")
        expect(page.locator("#line-data_warehouse")).to_contain_text("41,985.00 USD a month")
        settled(page)
        fits_the_phone(page)
        expect(page.locator("#options tr.recommended")).to_be_visible()
        assert errors == []
