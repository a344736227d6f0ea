"""Invoice PDFs in real headless Chromium against `billing serve` on the demo data: a customer
opens an invoice from the portal overview and downloads its PDF, finance does the same from
the invoice list; each file is read back with pypdf and holds the invoice's number and the
amount due the API answers; the portal page and the PDF show the tier files' digest."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing.invoicing.pdf import money
from tests.web import test_portal_browser as served
from tests.web.test_portal_browser import Browser, Site, sign_in_by_link

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The served demo site and the Chromium of the portal's browser tests (a site of this module).
site = served.site
playwright = served.playwright
browser = served.browser


def downloaded_pdf(opened: Browser) -> tuple[str, str]:
    """Press the page's "Download PDF" link; the file's suggested name and its text."""
    with opened.page.expect_download() as download:
        opened.page.get_by_role("link", name="Download PDF").click()
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return download.value.suggested_filename, text


def test_a_customer_downloads_an_invoice_pdf_from_the_portal(browser, site: Site):
    from playwright.sync_api import expect

    newest = site.api("/v1/customers/acme/invoices")["invoices"][0]
    shown = site.api(f"/v1/invoices/{newest['id']}")
    page = browser.page
    sign_in_by_link(browser, site, "acme")
    page.get_by_role("link", name=newest["number"], exact=True).first.click()
    expect(page.get_by_role("heading", name=f"Invoice {newest['number']}")).to_be_visible()
    expect(page.locator("#due-date")).to_have_text(shown["due_date"])
    due = money(shown["amount_due"], shown["currency"])
    expect(page.locator("#amount-due")).to_have_text(due)
    # what a person reads: numbers, never our ids; every line's amount rounded to the cent
    assert "inv_" not in page.locator("main").inner_text()
    amounts = page.locator("tr[class^='line-'] > td.num:last-child").all_inner_texts()
    assert amounts
    assert all(re.fullmatch(r"-?[\d,]+\.\d\d", a.strip()) for a in amounts), amounts
    # the tier files it was priced with: the whole digest, labelled, and how to check it
    digest = shown["catalog_digest"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    label = "SHA-256 of the tier files this invoice was priced with"
    expect(page.get_by_role("figure", name=label).locator("code")).to_have_text(digest)
    check = page.locator("#catalog-digest-check")
    expect(check).to_contain_text(f"Check it: billing invoices verify {newest['number']}")
    browser.shot("portal-invoice")

    name, text = downloaded_pdf(browser)
    assert name == f"{newest['number']}.pdf"
    assert newest["number"] in text
    assert f"Amount due (the sum of the lines) {due}" in text
    assert f"Priced with tier files {digest[:12]}…" in text
    assert f"Tier files (SHA-256): {digest}" in text
    assert "inv_" not in text
    assert browser.errors == []


def test_finance_downloads_an_invoice_pdf_from_the_invoice_page(browser, site: Site):
    from playwright.sync_api import expect

    newest = site.api("/v1/customers/globex/invoices")["invoices"][0]
    shown = site.api(f"/v1/invoices/{newest['id']}")
    page = browser.page
    page.goto(f"{site.base}/finance")
    page.get_by_label("API key").fill(site.finance)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Customer").fill("globex")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=newest["number"], exact=True).click()
    expect(page.get_by_role("heading", name=f"Invoice {newest['number']}")).to_be_visible()
    browser.shot("finance-invoice")

    name, text = downloaded_pdf(browser)
    assert name == f"{newest['number']}.pdf"
    assert newest["number"] in text
    assert f"Amount due (the sum of the lines) {money(shown['amount_due'], 'USD')}" in text
    assert "Customer ID: globex" in text
    assert browser.errors == []
