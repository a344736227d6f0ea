"""An invoice as a PDF (docs/invoicing.md, "PDF"): drawn from `InvoicePublic`, the API's shape,
so the PDF shows the figures the API answers and the pages show, never figures of its own.

Pure rendering: no database, no clock. Money is the API's decimal strings, rounded half-up
to the currency's minor unit and grouped for reading ("1,234.50 USD"); the amount due is the
invoice's `amount_due`, the sum of the lines printed above it. Only numbers are printed
(INV-000123, CN-000001), never our internal ids.

Text is set in DejaVu Sans, embedded (subset) from the copies shipped beside this module
(fonts/LICENSE), so names in Latin, Greek, Cyrillic, Hebrew and more print as typed on any
machine; fpdf2's built-in fonts know Latin-1 only. (Arabic prints in right-to-left order but
unjoined: fpdf2 shapes text only with the optional uharfbuzz, not installed.) A character
the font has no glyph for (Chinese, Japanese, Korean...) would silently vanish from the
page, so it is printed as "?" instead, and the buyer's customer id, always ASCII, is
printed beside the name.

A period invoice names the tier files it was priced with: the first 12 hex digits of their
SHA-256 among the details, the whole digest and how to check it (`billing invoices verify`;
docs/pricing-changes.md, "Verifiable invoices") under the closing lines. An invoice without
a digest (a commitment invoice, or one issued before digests were kept) says nothing of it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal
from functools import cache
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.fonts import TTFFont

from billing.invoicing.models import InvoiceStatus, LineKind
from billing.invoicing.party import Party
from billing.invoicing.public import InvoiceLinePublic, InvoicePublic
from billing.money import group_quantity, round_to_minor

FONTS = Path(__file__).resolve().parent / "fonts"
FAMILY = "DejaVu"
MEDIA_TYPE = "application/pdf"
# Lines whose quantity means something to the reader (a discount's or a credit's is 1).
COUNTED = frozenset([LineKind.USAGE, LineKind.CAPPED, LineKind.ADJUSTMENT, LineKind.COMMITMENT])
GREY = (96, 96, 96)
RED = (176, 0, 32)
SHORT_DIGEST = 12  # hex digits of the tier files' digest shown among the details


def filename(invoice: InvoicePublic) -> str:
    """The file a download is saved as: the invoice's number ("INV-000123.pdf")."""
    return f"{invoice.number}.pdf"


def money(text: str, currency: str) -> str:
    """An amount as the API sends it, for reading: rounded half-up to the currency's minor
    unit, digits grouped, with the currency ("1234.5" USD -> "1,234.50 USD")."""
    rounded = round_to_minor(Decimal(text), currency)
    if rounded.is_zero():
        rounded = abs(rounded)  # never "-0.00"
    return f"{rounded:,f} {currency}"


def day(timestamp: str | None) -> str:
    """An ISO timestamp's day, in UTC ("2026-11-01")."""
    if not timestamp:
        return "—"
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).date().isoformat()


def last_day(end: str) -> str:
    """The last day a period ending (exclusive) at `end` covers: 2026-11-01T00:00Z ->
    2026-10-31."""
    instant = dt.datetime.fromisoformat(end).astimezone(dt.UTC)
    return (instant - dt.timedelta(microseconds=1)).date().isoformat()


def status_text(invoice: InvoicePublic) -> str:
    """Where the invoice stands, in words."""
    status = InvoiceStatus(invoice.status)
    if status is InvoiceStatus.PAID:
        return f"Paid on {day(invoice.paid_at)}" if invoice.paid_at else "Paid"
    if status is InvoiceStatus.VOID:
        return f"VOID since {day(invoice.voided_at)}" if invoice.voided_at else "VOID"
    if status is InvoiceStatus.UNCOLLECTIBLE:
        return "Uncollectible (written off)"
    if status is InvoiceStatus.PAYMENT_FAILED:
        return "Open: the last payment attempt failed"
    return "Open"


@cache
def _glyphs() -> frozenset[int]:
    """The code points DejaVu Sans (regular and bold) has glyphs for."""
    probe = FPDF()
    _add_fonts(probe)
    covered: set[int] | None = None
    for font in probe.fonts.values():
        if isinstance(font, TTFFont):
            points = set(font.cmap)
            covered = points if covered is None else covered & points
    _close_fonts(probe)
    return frozenset(covered or ())


def printable(text: str) -> str:
    """`text` with every character the font cannot draw replaced: by its letters without
    accents when that helps (NFKD), else by "?"; a missing glyph never vanishes unseen."""
    glyphs = _glyphs()
    out = []
    for char in text:
        if ord(char) in glyphs or char in "\n\t":
            out.append(char)
            continue
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        out.append(plain if plain and all(ord(c) in glyphs for c in plain) else "?")
    return "".join(out)


def _add_fonts(pdf: FPDF) -> None:
    pdf.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(FONTS / "DejaVuSans-Bold.ttf"))


def _close_fonts(pdf: FPDF) -> None:
    """Close the font files fontTools keeps open (lazily read) for `pdf`: the output closes
    those it used, not the others, nor any when drawing failed halfway."""
    for font in pdf.fonts.values():
        if isinstance(font, TTFFont):
            font.close()


class _Document(FPDF):
    """A4 pages with the invoice's number and the page on each footer."""

    def __init__(self, number: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.number = number
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(auto=True, margin=18)
        _add_fonts(self)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.number} · page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)

    def text_line(self, text: str, *, size: int = 10, bold: bool = False, height: int = 5) -> None:
        self.set_font(FAMILY, "B" if bold else "", size)
        self.multi_cell(0, height, printable(text), new_x="LMARGIN", new_y="NEXT", align="L")


def _party_lines(party: Party, *, seller: bool) -> list[str]:
    lines = list(party.address)
    if party.email:
        lines.append(party.email)
    if party.tax_id:
        lines.append(f"Tax ID: {party.tax_id}")
    if party.customer_id and not seller:
        lines.append(f"Customer ID: {party.customer_id}")
    return lines


def _facts(invoice: InvoicePublic) -> list[tuple[str, str]]:
    void = invoice.status == InvoiceStatus.VOID
    facts = [("Invoice number", invoice.number), ("Issue date", day(invoice.issued_at))]
    if invoice.period_start and invoice.period_end:
        period = f"{day(invoice.period_start)} to {last_day(invoice.period_end)}"
        facts.append(("Billing period", period))
    facts.append(("Due date", "nothing is due (void)" if void else invoice.due_date or "—"))
    facts.append(("Status", status_text(invoice)))
    if invoice.replaces_number:
        facts.append(("Replaces", f"{invoice.replaces_number} (void)"))
    if invoice.replaced_by_number:
        facts.append(("Replaced by", invoice.replaced_by_number))
    if invoice.catalog_digest:
        facts.append(("Priced with", f"tier files {invoice.catalog_digest[:SHORT_DIGEST]}…"))
    return facts


def _header(pdf: _Document, invoice: InvoicePublic, seller: Party, buyer: Party) -> None:
    top = pdf.get_y()
    half = (pdf.w - pdf.l_margin - pdf.r_margin) / 2
    pdf.set_font(FAMILY, "B", 20)
    pdf.cell(0, 9, "INVOICE", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 11)
    pdf.cell(0, 6, invoice.number, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(top)
    pdf.set_font(FAMILY, "B", 14)
    pdf.multi_cell(half, 7, printable(seller.name), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_font(FAMILY, "", 9)
    for line in _party_lines(seller, seller=True):
        pdf.multi_cell(half, 5, printable(line), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(8)

    top = pdf.get_y()
    pdf.set_font(FAMILY, "B", 9)
    pdf.set_text_color(*GREY)
    pdf.cell(half, 5, "BILL TO", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FAMILY, "B", 11)
    pdf.multi_cell(half - 4, 6, printable(buyer.name), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_font(FAMILY, "", 9)
    for line in _party_lines(buyer, seller=False):
        pdf.multi_cell(half - 4, 5, printable(line), new_x="LMARGIN", new_y="NEXT", align="L")
    bottom = pdf.get_y()

    pdf.set_y(top)
    for label, value in _facts(invoice):
        pdf.set_x(pdf.l_margin + half)
        pdf.set_font(FAMILY, "", 9)
        pdf.set_text_color(*GREY)
        pdf.cell(32, 5, label)
        pdf.set_text_color(*(RED if value.startswith("VOID") else (0, 0, 0)))
        pdf.set_font(FAMILY, "B", 9)
        pdf.multi_cell(half - 32, 5, printable(value), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(max(bottom, pdf.get_y()) + 6)


def _void_notice(pdf: _Document, invoice: InvoicePublic) -> None:
    pdf.set_text_color(*RED)
    pdf.text_line("VOID: this invoice is cancelled and nothing is due.", size=13, bold=True)
    if invoice.replaced_by_number:
        pdf.text_line(f"It is replaced by invoice {invoice.replaced_by_number}.", size=10)
    if invoice.void_reason:
        pdf.text_line(f"Reason: {invoice.void_reason}", size=10)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)


def _tier_texts(line: InvoiceLinePublic, currency: str) -> list[tuple[str, str]]:
    """A usage line's tiers: (range and price, quantity)."""
    rows = []
    for tier in line.tiers or ():
        upper = "∞" if tier.up_to is None else group_quantity(Decimal(tier.up_to))
        text = f"{group_quantity(Decimal(tier.from_))} – {upper} at {tier.unit_price} {currency}"
        if Decimal(tier.flat_fee):
            text += f" + {tier.flat_fee} {currency} flat"
        rows.append((text, group_quantity(Decimal(tier.quantity))))
    return rows


def _lines_table(pdf: _Document, invoice: InvoicePublic) -> None:
    currency = invoice.currency
    small = FontFace(family=FAMILY, emphasis=None, size_pt=8, color=GREY)
    bold = FontFace(family=FAMILY, emphasis="BOLD", size_pt=10)
    heading = FontFace(family=FAMILY, emphasis="BOLD", size_pt=9, fill_color=(236, 236, 236))
    pdf.set_font(FAMILY, "", 9)
    with pdf.table(
        col_widths=(104, 32, 38),
        text_align=("LEFT", "RIGHT", "RIGHT"),
        headings_style=heading,
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
        padding=1,
    ) as table:
        head = table.row()
        for title in ("Description", "Quantity", f"Amount ({currency})"):
            head.cell(title)
        for line in invoice.lines:
            row = table.row()
            row.cell(printable(line.description))
            counted = line.kind in COUNTED
            row.cell(group_quantity(Decimal(line.quantity)) if counted else "")
            row.cell(money(line.amount, currency).removesuffix(f" {currency}"))
            for text, quantity in _tier_texts(line, currency):
                tier = table.row()
                tier.cell(f"    {text}", style=small)
                tier.cell(quantity, style=small)
                tier.cell("", style=small)
        total = table.row()
        if invoice.status == InvoiceStatus.VOID:
            total.cell("Total of the lines (void: nothing is due)", style=bold)
        else:
            total.cell("Amount due (the sum of the lines)", style=bold)
        total.cell("", style=bold)
        total.cell(money(invoice.amount_due, currency), style=bold)


def _credit_notes(pdf: _Document, invoice: InvoicePublic) -> None:
    if not invoice.credit_notes:
        return
    currency = invoice.currency
    pdf.ln(6)
    pdf.text_line("Credit notes", size=11, bold=True)
    pdf.ln(1)
    small = FontFace(family=FAMILY, emphasis=None, size_pt=8, color=GREY)
    bold = FontFace(family=FAMILY, emphasis="BOLD", size_pt=10)
    heading = FontFace(family=FAMILY, emphasis="BOLD", size_pt=9, fill_color=(236, 236, 236))
    pdf.set_font(FAMILY, "", 9)
    with pdf.table(
        col_widths=(28, 24, 84, 38),
        text_align=("LEFT", "LEFT", "LEFT", "RIGHT"),
        headings_style=heading,
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
        padding=1,
    ) as table:
        head = table.row()
        for title in ("Note", "Issued", "Reason", f"Amount ({currency})"):
            head.cell(title)
        for note in invoice.credit_notes:
            row = table.row()
            row.cell(note.number)
            row.cell(day(note.issued_at))
            row.cell(printable(f"{note.reason} ({note.outcome.replace('_', ' ')})"))
            row.cell(money(note.total, currency).removesuffix(f" {currency}"))
            for credited in note.lines:
                sub = table.row()
                sub.cell("", style=small)
                sub.cell("", style=small)
                units = (
                    f" ({group_quantity(Decimal(credited.quantity))})" if credited.quantity else ""
                )
                sub.cell(
                    printable(f"line {credited.invoice_line}: {credited.description}{units}"),
                    style=small,
                )
                sub.cell(money(credited.amount, currency).removesuffix(f" {currency}"), style=small)
        credited_row = table.row()
        credited_row.cell("Credited by notes", colspan=3, style=bold)
        credited_row.cell(money(invoice.credited_total, currency), style=bold)
        if invoice.status != InvoiceStatus.VOID:
            owed = table.row()
            owed.cell("Still owed", colspan=3, style=bold)
            owed.cell(money(invoice.amount_remaining, currency), style=bold)


def _closing(pdf: _Document, invoice: InvoicePublic, seller: Party) -> None:
    pdf.ln(6)
    status = InvoiceStatus(invoice.status)
    pdf.set_font(FAMILY, "", 9)
    if status.open and Decimal(invoice.amount_remaining) > 0:
        due = money(invoice.amount_remaining, invoice.currency)
        pdf.text_line(f"Please pay {due} by {invoice.due_date}, quoting {invoice.number}.", size=9)
    elif status is InvoiceStatus.PAID:
        pdf.text_line(f"{status_text(invoice)}. Thank you.", size=9)
    if seller.email:
        pdf.text_line(f"Questions about this invoice: {seller.email}", size=9)


def verification_lines(invoice: InvoicePublic) -> list[str]:
    """What the invoice says about the tier files it was priced with: their whole SHA-256
    and how to check it; nothing for an invoice without a digest."""
    if not invoice.catalog_digest:
        return []
    return [
        f"Tier files (SHA-256): {invoice.catalog_digest}",
        f"Check it: billing invoices verify {invoice.number} re-derives this invoice from the "
        "tier files with this digest.",
    ]


def _verification(pdf: _Document, invoice: InvoicePublic) -> None:
    lines = verification_lines(invoice)
    if not lines:
        return
    pdf.ln(4)
    pdf.set_text_color(*GREY)
    for line in lines:
        pdf.text_line(line, size=8, height=4)
    pdf.set_text_color(0, 0, 0)


def render_invoice_pdf(invoice: InvoicePublic, *, seller: Party, buyer: Party) -> bytes:
    """The invoice as a PDF document (A4, one or more pages)."""
    pdf = _Document(invoice.number)
    try:
        pdf.set_title(f"Invoice {invoice.number}")
        pdf.set_author(printable(seller.name))
        pdf.set_subject(f"Invoice {invoice.number} to {printable(buyer.name)}")
        pdf.set_creator("billing")
        pdf.set_creation_date(dt.datetime.fromisoformat(invoice.issued_at))
        pdf.add_page()
        _header(pdf, invoice, seller, buyer)
        if invoice.status == InvoiceStatus.VOID:
            _void_notice(pdf, invoice)
        _lines_table(pdf, invoice)
        _credit_notes(pdf, invoice)
        _closing(pdf, invoice, seller)
        _verification(pdf, invoice)
        return bytes(pdf.output())
    finally:
        _close_fonts(pdf)
