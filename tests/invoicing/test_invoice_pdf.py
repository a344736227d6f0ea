"""The invoice PDF, drawn from the API's shape without a database: what a reader finds in it
(read back with pypdf, as any PDF reader extracts it), money rounded half-up and grouped,
void and paid invoices said plainly, names in any script, and no internal id."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from pypdf import PdfReader

from billing.invoicing.party import Party, seller_of
from billing.invoicing.pdf import filename, money, printable, render_invoice_pdf
from billing.invoicing.public import InvoicePublic
from billing.settings import Settings

SELLER = Party(
    name="Example Billing Inc.",
    address=("100 Example Street", "Springfield, IL 62701"),
    email="billing@example.com",
    tax_id="US 12-3456789",
)
BUYER = Party(name="Acme Inc", email="ap@acme.test", customer_id="acme")
TIERS = [
    {"from": "0", "up_to": "1000000", "quantity": "1000000", "unit_price": "0"},
    {"from": "1000000", "up_to": None, "quantity": "234500", "unit_price": "0.00005"},
]


def invoice(**changes: Any) -> InvoicePublic:
    """An open usage invoice: 1,234,500 events (11.725 exact, 11.73 rounded), 1,200,000.00 of
    a committed year, a 10% discount: amount due 1,080,010.56 USD."""
    shape: dict[str, Any] = {
        "id": "inv_0123456789abcdef",
        "number": "INV-000123",
        "customer": "acme",
        "kind": "usage",
        "status": "finalized",
        "currency": "USD",
        "period_start": "2026-10-01T00:00:00+00:00",
        "period_end": "2026-11-01T00:00:00+00:00",
        "subtotal": "1200011.73",
        "discount_total": "120001.17",
        "total": "1080010.56",
        "credits_applied": "0.00",
        "amount_due": "1080010.56",
        "issued_at": "2026-11-01T01:05:00+00:00",
        "reference": "cm_0123456789",
        "replaces": None,
        "voided_at": None,
        "void_reason": None,
        "paid_at": None,
        "credited_total": "0.00",
        "net_total": "1080010.56",
        "amount_remaining": "1080010.56",
        "lines": [
            {
                "position": 1,
                "kind": "usage",
                "product": "product_analytics",
                "description": "Product analytics: 1,234,500 events",
                "quantity": "1234500",
                "amount": "11.73",
                "tiers": [
                    {**t, "flat_fee": "0", "amount": a}
                    for t, a in zip(TIERS, ("0", "11.725"), strict=True)
                ],
            },
            {
                "position": 2,
                "kind": "commitment",
                "product": None,
                "description": "Committed usage credit, contract year 1 of 1",
                "quantity": "1",
                "amount": "1200000.00",
                "tiers": None,
            },
            {
                "position": 3,
                "kind": "discount",
                "product": None,
                "description": "10% discount",
                "quantity": "1",
                "amount": "-120001.17",
                "tiers": None,
            },
        ],
        "credit_notes": [],
        "due_date": "2026-12-01",
        "replaces_number": None,
        "replaced_by": None,
        "replaced_by_number": None,
    }
    return InvoicePublic.model_validate({**shape, **changes})


def text_of(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_an_open_invoice_says_who_what_when_and_how_much():
    shown = invoice()
    text = text_of(render_invoice_pdf(shown, seller=SELLER, buyer=BUYER))
    for expected in (
        "INVOICE",
        "INV-000123",
        "Example Billing Inc.",
        "100 Example Street",
        "Springfield, IL 62701",
        "billing@example.com",
        "Tax ID: US 12-3456789",
        "Acme Inc",
        "ap@acme.test",
        "Customer ID: acme",
        "Issue date 2026-11-01",
        "Billing period 2026-10-01 to 2026-10-31",
        "Due date 2026-12-01",
        "Status Open",
        # every line: its description, quantity where it counts, the rounded amount
        "Product analytics: 1,234,500 events 1,234,500 11.73",
        "1,000,000 – ∞ at 0.00005 USD 234,500",  # its tiers: range, unit price, quantity
        "Committed usage credit, contract year 1 of 1 1 1,200,000.00",
        "10% discount -120,001.17",
        "Amount due (the sum of the lines) 1,080,010.56 USD",
        "Please pay 1,080,010.56 USD by 2026-12-01, quoting INV-000123.",
    ):
        assert expected in text, expected
    assert "11.725" not in text  # a tier's exact amount is not a figure of the invoice
    assert "inv_" not in text
    assert "cm_" not in text  # nor the commitment it sells: numbers, never our ids
    assert "VOID" not in text


def test_the_file_is_named_after_the_number():
    assert filename(invoice()) == "INV-000123.pdf"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("1234.5", "USD", "1,234.50 USD"),
        ("0.005", "USD", "0.01 USD"),  # half-up, to the cent
        ("0.0049", "USD", "0.00 USD"),
        ("-0.001", "USD", "0.00 USD"),  # never "-0.00"
        ("-2500", "EUR", "-2,500.00 EUR"),
        ("1234567", "JPY", "1,234,567 JPY"),
        ("1.24", "KWD", "1.240 KWD"),  # three minor digits
    ],
)
def test_money_is_rounded_half_up_to_the_minor_unit_and_grouped(amount, currency, shown):
    assert money(amount, currency) == shown


def test_a_void_invoice_says_void_and_that_nothing_is_due_naming_its_replacement():
    voided = invoice(
        status="void",
        voided_at="2026-11-03T09:00:00+00:00",
        void_reason="duplicate events from a replay",
        replaced_by="inv_fedcba9876543210",
        replaced_by_number="INV-000124",
        due_date=None,
        amount_remaining="0.00",
    )
    text = text_of(render_invoice_pdf(voided, seller=SELLER, buyer=BUYER))
    assert "VOID: this invoice is cancelled and nothing is due." in text
    assert "Status VOID since 2026-11-03" in text
    assert "Due date nothing is due (void)" in text
    assert "It is replaced by invoice INV-000124." in text
    assert "Reason: duplicate events from a replay" in text
    assert "Total of the lines (void: nothing is due) 1,080,010.56 USD" in text
    assert "Please pay" not in text
    assert "inv_" not in text


def test_a_reissued_invoice_names_the_number_it_replaces():
    reissued = invoice(replaces="inv_0123456789abcdef", replaces_number="INV-000122")
    text = text_of(render_invoice_pdf(reissued, seller=SELLER, buyer=BUYER))
    assert "Replaces INV-000122 (void)" in text
    assert "inv_" not in text


def test_a_paid_invoice_says_when_and_lists_its_credit_notes():
    note = {
        "id": "cn_0123456789abcdef",
        "number": "CN-000007",
        "invoice": "inv_0123456789abcdef",
        "invoice_number": "INV-000123",
        "customer": "acme",
        "currency": "USD",
        "reason": "duplicate events",
        "outcome": "refund",
        "total": "5.00",
        "issued_at": "2026-11-06T12:00:00+00:00",
        "issued_by": "finance key 2",
        "lines": [
            {
                "position": 1,
                "invoice_line": 1,
                "description": "Product analytics: 1,234,500 events",
                "quantity": "100000",
                "amount": "5.00",
            }
        ],
    }
    paid = invoice(
        status="paid",
        paid_at="2026-11-05T16:30:00+00:00",
        credit_notes=[note],
        credited_total="5.00",
        net_total="1080005.56",
        amount_remaining="0.00",
    )
    text = text_of(render_invoice_pdf(paid, seller=SELLER, buyer=BUYER))
    assert "Status Paid on 2026-11-05" in text
    assert "Due date 2026-12-01" in text
    assert "CN-000007 2026-11-06 duplicate events (refund) 5.00" in text
    assert "line 1: Product analytics: 1,234,500 events (100,000) 5.00" in text
    assert "Credited by notes 5.00 USD" in text
    assert "Still owed 0.00 USD" in text
    assert "Paid on 2026-11-05. Thank you." in text
    assert "cn_" not in text
    assert "inv_" not in text


@pytest.mark.parametrize(
    "name",
    ["Ωmega Α.Ε.", "ООО «Ромашка»", "Łódź Spółka z o.o.", "Ærø Ålesund ÅS", "Œuvre & Fils — Ltd"],
)
def test_names_in_other_scripts_print_as_typed(name):
    buyer = Party(name=name, email="ap@example.test", customer_id="c1")
    text = text_of(render_invoice_pdf(invoice(), seller=SELLER, buyer=buyer))
    assert name in text


def test_a_character_the_font_lacks_shows_as_a_question_mark_never_vanishes(caplog):
    buyer = Party(name="株式会社 Acme", email="ap@example.test", customer_id="acme-jp")
    with caplog.at_level(logging.WARNING):
        text = text_of(render_invoice_pdf(invoice(), seller=SELLER, buyer=buyer))
    assert "???? Acme" in text
    assert "Customer ID: acme-jp" in text  # the account, always ASCII, names the buyer
    assert not [r for r in caplog.records if "missing" in r.getMessage()]


def test_printable_keeps_what_the_font_draws_and_replaces_the_rest():
    assert printable("Müller ΑΒΓ Жук ∞ – €") == "Müller ΑΒΓ Жук ∞ – €"
    assert printable("株式会社") == "????"
    assert printable("ﬁne") == "ﬁne"  # the ligature itself is in the font


def test_a_long_invoice_runs_over_pages_with_the_number_on_each():
    line = {
        "kind": "adjustment",
        "product": "product_analytics",
        "quantity": "1000",
        "amount": "1.00",
        "tiers": None,
    }
    lines = [
        {**line, "position": n, "description": f"Late usage of period {n}"} for n in range(1, 81)
    ]
    long = invoice(lines=lines, amount_due="80.00", total="80.00", subtotal="80.00")
    content = render_invoice_pdf(long, seller=SELLER, buyer=BUYER)
    pages = PdfReader(io.BytesIO(content)).pages
    assert len(pages) >= 2
    for index, page in enumerate(pages, start=1):
        assert f"INV-000123 · page {index} of {len(pages)}" in page.extract_text()
    text = text_of(content)
    assert all(f"Late usage of period {n} 1,000 1.00" in text for n in range(1, 81))
    assert "Amount due (the sum of the lines) 80.00 USD" in pages[-1].extract_text()


def test_the_seller_comes_from_settings_address_lines_split():
    settings = Settings(
        seller_name="Nordwind GmbH",
        seller_address="Hafenstraße 1\\n20457 Hamburg\nGermany",
        seller_email="",
        seller_tax_id="DE123456789",
    )
    seller = seller_of(settings)
    assert seller == Party(
        name="Nordwind GmbH",
        address=("Hafenstraße 1", "20457 Hamburg", "Germany"),
        email=None,
        tax_id="DE123456789",
    )
    text = text_of(render_invoice_pdf(invoice(), seller=seller, buyer=BUYER))
    assert "Nordwind GmbH\nHafenstraße 1\n20457 Hamburg\nGermany\nTax ID: DE123456789" in text
    assert "Questions about this invoice" not in text  # no seller email configured


DIGEST = "151fce56ab3e" + "0123456789abcdef" * 3 + "0123"  # 64 hex digits


def test_a_period_invoice_names_the_tier_files_it_was_priced_with_and_how_to_check():
    text = text_of(render_invoice_pdf(invoice(catalog_digest=DIGEST), seller=SELLER, buyer=BUYER))
    assert "Priced with tier files 151fce56ab3e…" in text  # among the details
    assert f"Tier files (SHA-256): {DIGEST}" in text  # the whole digest, on one line
    assert "Check it: billing invoices verify INV-000123" in text


def test_an_invoice_without_a_digest_says_nothing_of_tier_files():
    for shown in (invoice(), invoice(catalog_digest=None, kind="commitment", period_start=None)):
        text = text_of(render_invoice_pdf(shown, seller=SELLER, buyer=BUYER))
        assert "Priced with" not in text
        assert "Tier files" not in text
        assert "billing invoices verify" not in text
