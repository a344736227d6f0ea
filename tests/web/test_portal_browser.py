"""The portal and the finance pages in real headless Chromium, against `billing serve` on
the demo data: a customer signs in by link, sets a cap, chooses a discount; finance filters
invoices, downloads the CSV and reads the chart. Every page is screenshotted (into the
test's temp dir; with BILLING_SCREENSHOTS=DIR also there, which is how `make screenshots`
refreshes docs/img) and must log no console errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import TIERS
from tests.servers import Server, billing_ok
from tests.web.test_pricing_page import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Site:
    """A served database with the demo data, and the keys and links to get in."""

    def __init__(self, directory: Path) -> None:
        self.env = {
            **os.environ,
            "BILLING_DATABASE_URL": f"sqlite:///{directory / 'billing.db'}",
            "BILLING_TIERS_DIR": str(TIERS),
        }
        self.cli("db", "upgrade")
        self.cli("demo")
        self.admin = self.cli("keys", "create", "--role", "admin").strip()
        self.finance = self.cli("keys", "create", "--role", "finance").strip()
        self.server = Server(TIERS, self.env["BILLING_DATABASE_URL"])
        self.server.env["BILLING_SCHEDULER"] = "0"
        self.server.env["BILLING_PUBLIC_URL"] = self.server.base
        self.env["BILLING_PUBLIC_URL"] = self.server.base
        self.server.start()
        self.base = self.server.base

    def cli(self, *args: str) -> str:
        return billing_ok(*args, env=self.env)

    def api(self, path: str) -> dict:
        request = urllib.request.Request(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {self.admin}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    made = Site(tmp_path_factory.mktemp("site"))
    yield made
    made.server.stop()


class Browser:
    """One Chromium context; collects console errors and takes named screenshots."""

    def __init__(self, playwright, chromium_path: str, shots: Path, **context) -> None:
        self.browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        self.context = self.browser.new_context(
            viewport=context.pop("viewport", {"width": 1200, "height": 900}), **context
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots = shots

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        published = os.environ.get("BILLING_SCREENSHOTS")
        if published:
            Path(published).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(published) / path.name)
        return path

    def close(self) -> None:
        self.context.close()
        self.browser.close()


@pytest.fixture
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture
def browser(playwright, chromium_path, tmp_path) -> Iterator[Browser]:
    opened = Browser(playwright, chromium_path, tmp_path)
    yield opened
    opened.close()


def sign_in_by_link(browser: Browser, site: Site, customer: str) -> None:
    from playwright.sync_api import expect

    link = site.cli("portal-link", customer).strip()
    assert link.startswith(f"{site.base}/portal/signin?token=")
    browser.page.goto(link)
    expect(browser.page.get_by_role("heading", name="Billing portal: sign in")).to_be_visible()
    browser.page.get_by_role("button", name="Sign in").click()
    expect(browser.page).to_have_url(f"{site.base}/portal")


def accept_extra_cost_if_asked(page) -> None:
    """Tick the extra-cost box when the reviewed bracket costs more than paying as you go
    (its own test is test_a_commitment_dearer_than_paying_as_you_go_needs_an_explicit_yes)."""
    box = page.locator("#accept-extra-cost")
    if box.count():
        box.check()


def test_a_customer_signs_in_sets_a_cap_and_chooses_a_discount(browser, site):
    from playwright.sync_api import expect

    page = browser.page
    sign_in_by_link(browser, site, "initech")
    expect(page.get_by_role("heading", name="Initech", exact=True)).to_be_visible()
    expect(page.locator("#usage-data_warehouse")).to_contain_text("rows")
    browser.shot("portal-overview")

    # A spend cap: the preview says what it buys as you type, then it is saved.
    page.get_by_role("navigation").get_by_role("link", name="Spend caps").click()
    cap = page.locator("#cap-data_warehouse")
    cap.get_by_label("New cap (USD)").fill("400")
    expect(cap.locator(".preview .qmax")).to_have_text(re.compile(r"^[\d,]+$"))
    bought = cap.locator(".preview .qmax").inner_text()
    expect(cap.locator(".preview .effect")).to_contain_text("Takes effect at once")
    browser.shot("portal-caps-preview")
    cap.get_by_role("button", name="Save cap").click()
    expect(page.locator("#cap-data_warehouse .notice")).to_contain_text("Saved. Takes effect")
    expect(page.locator("#cap-data_warehouse .qmax-now")).to_have_text(bought)
    expect(page.locator("#cap-data_warehouse .cap-now")).to_have_text("400.00 USD")
    browser.shot("portal-caps")

    # A discount: the bracket and price follow the typing; review, then confirm.
    page.get_by_role("navigation").get_by_role("link", name="Discount").click()
    expect(page.locator("#options tbody tr")).to_have_count(12)
    page.get_by_label("Credit a year (USD)").fill("30000")
    page.get_by_label("Term").select_option("1")
    expect(page.locator("#live-bracket")).to_have_text("20 % off")
    expect(page.locator("#live-price")).to_have_text("24,000.00 USD")
    page.get_by_label("Credit a year (USD)").fill("60000")
    expect(page.locator("#live-bracket")).to_have_text("25 % off")
    expect(page.locator("#live-price")).to_have_text("45,000.00 USD")
    page.get_by_label("Credit a year (USD)").fill("30000")
    expect(page.locator("#live-price")).to_have_text("24,000.00 USD")
    browser.shot("portal-discount")
    page.get_by_role("button", name="Review", exact=True).click()
    accept_extra_cost_if_asked(page)
    page.get_by_role("button", name="Confirm and commit").click()
    expect(page.locator("#done")).to_contain_text("Commitment started: INV-")
    expect(page.locator("#ledger tbody tr").first).to_be_visible()
    browser.shot("portal-commitment")
    assert browser.errors == []

    # The API agrees: the cap and the commitment are there.
    caps = site.api("/v1/customers/initech/spend-caps")["spend_caps"]
    warehouse = next(c for c in caps if c["product"] == "data_warehouse")
    assert (warehouse["cap"], f"{int(warehouse['q_max']):,}") == ("400.00", bought)
    [commitment] = site.api("/v1/customers/initech/commitment")["commitments"]
    assert (commitment["credit"], commitment["years"], commitment["status"]) == (
        "30000.00",
        1,
        "active",
    )
    changes = site.api("/v1/customers/initech/spend-caps/changes")["changes"]
    assert changes[0]["changed_by"] == "customer portal (sign-in link)"


def test_the_portal_reads_well_on_a_phone(playwright, chromium_path, tmp_path, site):
    from playwright.sync_api import expect

    phone = Browser(playwright, chromium_path, tmp_path, viewport={"width": 390, "height": 844})
    try:
        sign_in_by_link(phone, site, "acme")
        for path, name in (("/portal", "portal-phone"), ("/portal/caps", None)):
            phone.page.goto(f"{site.base}{path}")
            expect(phone.page.locator("h1")).to_be_visible()
            overflow = phone.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
            if name:
                phone.shot(name)
        assert phone.errors == []
    finally:
        phone.close()


def test_the_forms_work_without_javascript(playwright, chromium_path, tmp_path, site):
    from playwright.sync_api import expect

    plain = Browser(playwright, chromium_path, tmp_path, java_script_enabled=False)
    try:
        sign_in_by_link(plain, site, "hooli")
        page = plain.page
        page.goto(f"{site.base}/portal/caps")
        cap = page.locator("#cap-session_replay")
        cap.get_by_label("New cap (USD)").fill("25")
        cap.get_by_role("button", name="Preview").click()
        cap = page.locator("#cap-session_replay")
        expect(cap.locator(".preview .qmax")).to_have_text("10,000")  # 5,000 free + $25
        cap.get_by_role("button", name="Save cap").click()
        expect(page.locator("#cap-session_replay .cap-now")).to_have_text("25.00 USD")
        page.goto(f"{site.base}/portal/discount")
        page.get_by_label("Credit a year (USD)").fill("3000")
        page.get_by_label("Term").select_option("2")
        page.get_by_role("button", name="Review", exact=True).click()
        expect(page.locator("#live-bracket")).to_have_text("15 % off")
        accept_extra_cost_if_asked(page)
        page.get_by_role("button", name="Confirm and commit").click()
        expect(page.locator("#done")).to_contain_text("Commitment started")
    finally:
        plain.close()
    [commitment] = site.api("/v1/customers/hooli/commitment")["commitments"]
    assert (commitment["credit"], commitment["years"]) == ("3000.00", 2)


def test_a_commitment_dearer_than_paying_as_you_go_needs_an_explicit_yes(browser, site):
    """A new customer's usage is far below 200,000 a year: the review says in words what it
    would cost more, Confirm alone starts nothing, and the tick box naming the figure does."""
    from playwright.sync_api import expect

    page = browser.page
    site.cli("customers", "create", "umbrella", "--name", "Umbrella")
    sign_in_by_link(browser, site, "umbrella")
    page.goto(f"{site.base}/portal/discount")
    expect(page.get_by_role("heading", name="Choose your discount")).to_be_visible()
    page.get_by_label("Credit a year (USD)").fill("200000")
    page.get_by_label("Term").select_option("1")
    expect(page.locator("#live-saving")).to_contain_text("more a year than paying as you go")
    page.get_by_role("button", name="Review", exact=True).click()
    loss = page.locator("#loss")
    expect(loss).to_contain_text("This commitment costs more than paying as you go")
    extra = re.search(r"([\d,]+\.\d\d USD) more a year", loss.inner_text())
    assert extra, loss.inner_text()
    browser.shot("portal-discount-loss")

    page.get_by_role("button", name="Confirm and commit").click()  # without the tick
    expect(page.locator("#loss-error")).to_contain_text(f"costs {extra.group(1)} more a year")
    assert site.api("/v1/customers/umbrella/commitment")["commitments"] == []

    page.get_by_label(re.compile("I understand, and want to commit")).check()
    page.get_by_role("button", name="Confirm and commit").click()
    expect(page.locator("#done")).to_contain_text("Commitment started: INV-")
    expect(page.get_by_role("heading", name="Your discount")).to_be_visible()
    expect(page.get_by_text("Best for your usage")).to_have_count(0)
    number = page.locator("#done a").inner_text()
    page.locator("#done a").click()  # the number in the notice is a link to the invoice
    expect(page.locator("h1")).to_contain_text(number)
    # the one refused confirm answered 422 (Chromium logs a failed load); nothing else failed
    assert [e for e in browser.errors if "status of 422" not in e] == []
    [commitment] = site.api("/v1/customers/umbrella/commitment")["commitments"]
    assert commitment["credit"] == "200000.00"


def test_a_customer_sets_alert_thresholds_and_a_webhook(browser, site):
    """Thresholds typed in any order are saved sorted as numbers; a refused webhook URL is
    explained next to the form and changes nothing."""
    from playwright.sync_api import expect

    page = browser.page
    sign_in_by_link(browser, site, "hooli")
    page.goto(f"{site.base}/portal/caps")
    form = page.locator("#alert-settings")
    form.get_by_label(re.compile("Alert at these shares of a cap")).fill("100, 9, 75")
    form.get_by_label(re.compile("Webhook URL")).fill("http://169.254.169.254/latest")
    form.get_by_role("button", name=re.compile("Save")).click()
    expect(page.locator("#alerts-error")).to_contain_text("webhook")
    before = site.api("/v1/customers/hooli/alert-settings")
    assert before["webhook_url"] is None

    form = page.locator("#alert-settings")
    form.get_by_label(re.compile("Alert at these shares of a cap")).fill("100, 9, 75")
    form.get_by_label(re.compile("Webhook URL")).fill("https://hooks.example.com/hooli")
    form.get_by_role("button", name=re.compile("Save")).click()
    expect(page.locator("#alerts-saved")).to_be_visible()
    expect(page.locator("#a-thresholds")).to_have_value("9, 75, 100")
    browser.shot("portal-alerts")
    saved = site.api("/v1/customers/hooli/alert-settings")
    assert (saved["thresholds"], saved["webhook_url"]) == (
        ["9", "75", "100"],
        "https://hooks.example.com/hooli",
    )
    assert [e for e in browser.errors if "status of 422" not in e] == []  # the refused URL


def test_finance_filters_invoices_downloads_the_csv_and_reads_the_chart(browser, site):
    from playwright.sync_api import expect

    page = browser.page
    page.goto(f"{site.base}/finance")
    expect(page).to_have_url(f"{site.base}/finance/login")
    page.get_by_label("API key").fill(site.finance)
    browser.shot("finance-login")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Invoices")).to_be_visible()
    page.get_by_label("Customer").fill("globex")
    page.get_by_label("Status").select_option("finalized")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"customer=globex"))
    expect(page.locator("#count")).to_have_text("3")  # three closed months of history
    expect(page.locator("#invoice-table tbody tr")).to_have_count(3)
    browser.shot("finance-invoices")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["customer"] for r in rows] == ["globex"] * 3
    shown = page.locator("#invoice-table tbody tr td:nth-child(9)").all_inner_texts()
    assert [r["amount_due"] for r in rows] == [s.replace(",", "") for s in shown]

    page.get_by_role("navigation").get_by_role("link", name="Billings").click()
    chart = page.locator("#revenue-chart svg[role=img]")
    expect(chart).to_be_visible()
    assert chart.locator("rect[class^=series-]").count() > 0
    expect(page.locator("#revenue-chart .legend-list li").first).to_contain_text("Data warehouse")
    browser.shot("finance-revenue")
    page.get_by_role("navigation").get_by_role("link", name="Caps hit").click()
    expect(page.locator("#caps-hit")).to_contain_text("session_replay")
    browser.shot("finance-caps")
    page.get_by_role("navigation").get_by_role("link", name="Stripe sync").click()
    expect(page.locator("#sync-state")).to_contain_text("off")
    browser.shot("finance-stripe")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    page.goto(f"{site.base}/finance/invoices")
    expect(page).to_have_url(f"{site.base}/finance/login")
    assert browser.errors == []


def test_a_customer_manages_a_webhook_endpoint(browser, site):
    """Add with two event types ticked (the secret shown once), send a test event, rotate,
    disable and enable, then delete after confirming; a refused URL is explained next to
    the form. The same endpoint as the API shows it."""
    from playwright.sync_api import expect

    page = browser.page
    sign_in_by_link(browser, site, "globex")
    page.get_by_role("navigation").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    expect(page.locator("#no-endpoints")).to_be_visible()

    form = page.locator("#add-endpoint")
    form.get_by_label(re.compile("URL")).fill("http://10.0.0.8/hooks")
    form.get_by_label(re.compile("invoice.paid")).check()
    form.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#add-error")).to_contain_text("10.0.0.8 is a private address")
    expect(page.locator("#w-url")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label(re.compile("invoice.paid"))).to_be_checked()  # kept

    form = page.locator("#add-endpoint")
    form.get_by_label(re.compile("URL")).fill("https://hooks.example.com/globex")
    form.get_by_label(re.compile("Description")).fill("ERP sync")
    form.get_by_label(re.compile("credit_note.created")).check()
    form.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#made")).to_contain_text("shown this once")
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("whsec_")
    browser.shot("portal-webhooks")
    [made] = site.api("/v1/webhook-endpoints?customer=globex")["endpoints"]
    assert (made["url"], made["events"], made["description"]) == (
        "https://hooks.example.com/globex",
        ["invoice.paid", "credit_note.created"],
        "ERP sync",
    )

    page.get_by_role("link", name="Open the endpoint").click()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.locator("#done")).to_contain_text("A test event")
    expect(page.locator("#deliveries")).to_contain_text("ping")
    page.get_by_role("button", name=re.compile("Rotate secret")).click()
    rotated = page.locator("#secret").inner_text()
    assert rotated.startswith("whsec_")
    assert rotated != secret
    expect(page.locator("#done")).to_contain_text("keeps signing beside it")
    browser.shot("portal-webhook-endpoint")

    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#status")).to_have_text("disabled")
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("#status")).to_have_text("enabled")

    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#confirm-delete")).to_contain_text("Delete this endpoint?")
    assert len(site.api("/v1/webhook-endpoints?customer=globex")["endpoints"]) == 1
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.locator("#done")).to_contain_text("Endpoint deleted")
    assert site.api("/v1/webhook-endpoints?customer=globex")["endpoints"] == []
    assert [e for e in browser.errors if "status of 422" not in e] == []  # the refused URL


def test_a_customer_sees_what_made_the_bill(browser, site):
    """acme's demo usage carries projects and models: the overview and a past invoice show
    each broken-down line by value, amounts adding up to the line."""
    from playwright.sync_api import expect

    page = browser.page
    sign_in_by_link(browser, site, "acme")
    section = page.locator("#breakdown-product_analytics")
    expect(section).to_contain_text("What made Product analytics: by project")
    expect(page.locator("#breakdown-llm_tokens_standard")).to_contain_text("gpt-4o-mini")
    browser.shot("portal-breakdown")
    page.locator("a[href^='/portal/invoices/']").first.click()
    part_amounts = page.locator("#breakdown-product_analytics tr.part td.num:nth-of-type(3)")
    expect(part_amounts.first).to_be_visible()
    amounts = [Decimal(t.replace(",", "")) for t in part_amounts.all_inner_texts()]
    line = page.locator("tr.line-usage", has_text="Product analytics").locator("td.num").last
    assert sum(amounts) == Decimal(line.inner_text().replace(",", ""))
    assert browser.errors == []
