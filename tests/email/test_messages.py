"""The emails are pure functions of the API's shapes: what people can type (a customer's
name, a line's description) is escaped in the HTML part and left as typed in the text."""

import datetime as dt

from billing.alerts.public import AlertPublic
from billing.invoicing.public import InvoicePublic
from billing.notices.messages import alert_email, invoice_email

NAME = "<b>Evil & Co</b>"


def alert():
    return AlertPublic(
        id=7,
        product="product_analytics",
        period_start="2026-11-01T00:00:00Z",
        kind="cap_100",
        message="Product analytics: the spend cap of 1,000.00 USD is reached; further usage is "
        "not accepted this period",
        fired_at="2026-11-24T12:00:00Z",
        delivery="none",
        attempts=0,
        last_error=None,
        delivered_at=None,
    )


def test_a_name_is_escaped_in_the_html_and_kept_in_the_text():
    made = alert_email(alert(), to="ops@evil.example", customer_name=NAME, portal_url=None)
    assert made.subject.startswith(f"[{NAME}] Product analytics: the spend cap of 1,000.00 USD")
    assert f"Hello {NAME}," in made.text
    assert made.html is not None
    assert "Hello &lt;b&gt;Evil &amp; Co&lt;/b&gt;," in made.html
    assert NAME not in made.html
    assert "portal" not in made.text


def test_an_invoice_without_a_period_or_due_date_and_in_yen():
    invoice = InvoicePublic.model_validate(
        {
            "id": "inv_1",
            "number": "INV-000042",
            "customer": "evil",
            "kind": "commitment",
            "status": "finalized",
            "currency": "JPY",
            "period_start": None,
            "period_end": None,
            "subtotal": "1234567",
            "discount_total": "0",
            "total": "1234567",
            "credits_applied": "0",
            "amount_due": "1234567",
            "issued_at": "2026-11-24T12:00:00+00:00",
            "reference": None,
            "replaces": None,
            "replaces_number": None,
            "replaced_by": None,
            "replaced_by_number": None,
            "due_date": None,
            "voided_at": None,
            "void_reason": None,
            "paid_at": None,
            "credited_total": "0",
            "net_total": "1234567",
            "amount_remaining": "1234567",
            "lines": [
                {
                    "position": 1,
                    "kind": "commitment",
                    "product": None,
                    "description": "Credit <1 year> & more",
                    "quantity": "1",
                    "amount": "1234567",
                    "tiers": None,
                }
            ],
            "credit_notes": [],
        }
    )
    made = invoice_email(
        invoice, to="ops@evil.example", customer_name=NAME, seller="Acme", due=None, portal_url=None
    )
    assert made.subject == "Invoice INV-000042 from Acme — 1,234,567 JPY due"
    assert "  1,234,567 JPY  Credit <1 year> & more" in made.text
    assert "Payment is due" not in made.text
    assert "issued invoice INV-000042 on 2026-11-24." in made.text
    assert made.html is not None
    assert "Credit &lt;1 year&gt; &amp; more" in made.html
    due = invoice_email(
        invoice,
        to="ops@evil.example",
        customer_name=NAME,
        seller="Acme",
        due=dt.date(2026, 12, 24),
        portal_url="https://billing.example.com",
    )
    assert due.subject.endswith("1,234,567 JPY due 2026-12-24")
    assert "https://billing.example.com/portal/invoices/inv_1" in due.text


def test_a_subject_is_one_line_whatever_the_name():
    made = alert_email(
        alert(), to="ops@evil.example", customer_name="Evil\r\nBcc: x", portal_url=None
    )
    assert made.subject.startswith("[Evil Bcc: x] Product analytics")
