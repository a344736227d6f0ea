"""The invoice pages and their PDFs without a browser: the portal gives a customer its own
invoices' PDFs only, finance any; the pages show the number, the due date or the day it was
paid, what a void and its re-issue are to each other (by number), money to the cent, the
digest of the tier files a period invoice was priced with, and a "Download PDF" link."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

from pypdf import PdfReader
from sqlalchemy import text

from billing.commitments import service as commitments
from billing.invoicing import payments
from billing.invoicing.pdf import money
from tests.conftest import bearer
from tests.web.helpers import sign_in


def only_invoice(engine, customer: str) -> tuple[str, str]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, series, number FROM invoice WHERE customer_id = :c"), {"c": customer}
        ).one()
    return row.id, f"{row.series}-{row.number:06d}"


def text_of(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_link(page: str) -> str:
    found = re.search(r'<a href="([^"]+)" id="download-pdf"[^>]*>Download PDF</a>', page)
    assert found, "the page has no Download PDF link"
    return found.group(1)


def test_the_portal_invoice_page_links_its_pdf_and_shows_when_it_is_due(api, engine, seeded, keys):
    invoice_id, number = only_invoice(engine, "acme")
    shown = api.get(f"/v1/invoices/{invoice_id}", headers=bearer(keys["admin"])).json()
    sign_in(api, engine, "acme")
    for reference in (invoice_id, number):
        page = api.get(f"/portal/invoices/{reference}")
        assert page.status_code == 200
        assert f"<h1>Invoice {number}</h1>" in page.text
        assert f'<dd id="due-date">{shown["due_date"]}</dd>' in page.text
        assert pdf_link(page.text) == f"/portal/invoices/{number}/pdf"
    # money to the cent, the amount due under the lines, as in the PDF
    assert re.search(r'id="amount-due">[\d,]+\.\d\d USD<', page.text)
    due = money(shown["amount_due"], "USD")
    assert f'id="amount-due">{due}<' in page.text

    download = api.get(pdf_link(page.text))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
    assert download.headers["cache-control"] == "no-store"
    pdf = text_of(download.content)
    assert number in pdf
    assert f"Amount due (the sum of the lines) {due}" in pdf
    assert f"Due date {shown['due_date']}" in pdf


def test_the_portal_never_gives_another_customers_pdf(api, engine, seeded):
    theirs_id, theirs_number = only_invoice(engine, "globex")
    sign_in(api, engine, "acme")
    for path in (
        f"/portal/invoices/{theirs_id}/pdf",
        f"/portal/invoices/{theirs_number}/pdf",
        "/portal/invoices/INV-999999/pdf",
    ):
        answer = api.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "globex" not in answer.text.lower()
        assert "Invoice not found" in answer.text


def test_signed_out_or_as_a_customer_no_finance_pdf(api, engine, seeded):
    invoice_id, number = only_invoice(engine, "acme")
    signed_out = api.get(f"/portal/invoices/{number}/pdf", follow_redirects=False)
    assert signed_out.status_code in (303, 401)
    assert signed_out.headers.get("content-type") != "application/pdf"
    sign_in(api, engine, "acme")
    answer = api.get(f"/finance/invoices/{invoice_id}/pdf", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/finance/login")


def test_finance_downloads_any_customers_pdf_from_the_invoice_page(api, engine, seeded, keys):
    sign_in(api, engine, None)
    for customer in ("acme", "globex"):
        invoice_id, number = only_invoice(engine, customer)
        page = api.get(f"/finance/invoices/{invoice_id}").text
        assert pdf_link(page) == f"/finance/invoices/{number}/pdf"
        download = api.get(pdf_link(page))
        assert download.status_code == 200
        assert download.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
        shown = api.get(f"/v1/invoices/{number}", headers=bearer(keys["finance"])).json()
        pdf = text_of(download.content)
        assert f"Amount due (the sum of the lines) {money(shown['amount_due'], 'USD')}" in pdf
        assert f"Customer ID: {customer}" in pdf
    assert api.get("/finance/invoices/INV-999999/pdf").status_code == 404


def test_a_void_and_its_reissue_name_each_other_by_number_on_the_page(api, engine, seeded, keys):
    invoice_id, number = only_invoice(engine, "globex")
    voided = api.post(
        f"/v1/invoices/{number}/void",
        json={"reason": "wrong meter", "reissue": True},
        headers=bearer(keys["finance"]),
    )
    new_id, new_number = voided.json()["reissued"]["id"], voided.json()["reissued"]["number"]
    sign_in(api, engine, None)
    old_page = api.get(f"/finance/invoices/{number}").text
    assert '<dd id="due-date">nothing: void</dd>' in old_page
    assert f'<a href="{new_id}" id="replaced-by">{new_number}</a>' in old_page
    new_page = api.get(f"/finance/invoices/{new_number}").text
    assert f'<a href="{invoice_id}" id="replaces">{number}</a>' in new_page
    pdf = text_of(api.get(pdf_link(old_page)).content)
    assert "VOID: this invoice is cancelled and nothing is due." in pdf
    assert f"It is replaced by invoice {new_number}." in pdf


def test_a_paid_invoice_shows_the_day_it_was_paid(api, engine, seeded):
    invoice_id, number = only_invoice(engine, "acme")
    paid_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with engine.begin() as connection:
        payments.apply_event(
            connection, invoice_id=invoice_id, event=payments.PaymentEvent.PAID, at=paid_at
        )
    sign_in(api, engine, "acme")
    page = api.get(f"/portal/invoices/{number}").text
    assert f'<dd id="paid-on">{paid_at.date().isoformat()}</dd>' in page
    pdf = text_of(api.get(pdf_link(page)).content)
    assert f"Status Paid on {paid_at.date().isoformat()}" in pdf


def test_the_invoice_page_and_pdf_show_the_tier_files_digest_and_how_to_check_it(
    api, engine, catalog, seeded, keys
):
    _, number = only_invoice(engine, "acme")
    shown = api.get(f"/v1/invoices/{number}", headers=bearer(keys["admin"])).json()
    digest = shown["catalog_digest"]
    assert digest == catalog.digest
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    sign_in(api, engine, "acme")
    page = api.get(f"/portal/invoices/{number}").text
    assert f'<code id="catalog-digest">{digest}</code>' in page
    assert "SHA-256 of the tier files this invoice was priced with</figcaption>" in page
    assert f"Check it: <code>billing invoices verify {number}</code>" in page
    pdf = text_of(api.get(pdf_link(page)).content)
    assert f"Priced with tier files {digest[:12]}…" in pdf
    assert f"Tier files (SHA-256): {digest}" in pdf
    assert f"Check it: billing invoices verify {number}" in pdf
    sign_in(api, engine, None)
    assert (
        f'<code id="catalog-digest">{digest}</code>' in api.get(f"/finance/invoices/{number}").text
    )

    # A commitment invoice is priced by the commitment, not the tier files: nothing of them.
    with engine.begin() as connection:
        started = commitments.start(connection, catalog, "acme", Decimal(30000), 1, seeded)
    [commitment_invoice] = started.invoices
    sign_in(api, engine, "acme")
    page = api.get(f"/portal/invoices/{commitment_invoice.number}").text
    assert f"<h1>Invoice {commitment_invoice.number}</h1>" in page
    assert "catalog-digest" not in page
    assert "billing invoices verify" not in page
    pdf = text_of(api.get(pdf_link(page)).content)
    assert "Priced with" not in pdf
    assert "Tier files" not in pdf
