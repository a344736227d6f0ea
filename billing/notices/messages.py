"""What the emails say: pure functions of the API's own shapes (`AlertPublic`,
`InvoicePublic`, `WebhookEndpointPublic`), so every figure in an email is the one the API
and the pages show.

Each email is plain text with a simple HTML alternative; money is shown as everywhere
for people, rounded half-up to the currency's minor unit and grouped ("1,234.50 USD",
billing.money.display_amount).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from jinja2 import Environment

from billing.alerts.public import AlertPublic
from billing.email.outbox import Composed
from billing.invoicing.public import InvoicePublic
from billing.money import display_amount
from billing.notifications.public import WebhookEndpointPublic

_HTML = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

_ALERT_HTML = _HTML.from_string(
    """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello {{ customer }},</p>
<p><strong>{{ message }}</strong></p>
<p>Billing period starting {{ period }}; alert raised {{ fired }}.</p>
{% if link %}
<p><a href="{{ link }}">Your usage and spend caps</a></p>
{% endif %}
<p style="color: #666">{{ footer }}</p>
</body></html>
"""
)

_INVOICE_HTML = _HTML.from_string(
    """<!doctype html>
<html><body style="font-family: sans-serif">
<p>Hello {{ customer }},</p>
<p>{{ opening }}</p>
<table style="border-collapse: collapse">
{% for description, amount in lines %}
<tr><td style="padding: 2px 16px 2px 0">{{ description }}</td>
<td style="text-align: right; white-space: nowrap">{{ amount }}</td></tr>
{% endfor %}
<tr><td style="padding: 6px 16px 2px 0"><strong>Amount due</strong></td>
<td style="text-align: right; white-space: nowrap"><strong>{{ amount_due }}</strong></td></tr>
</table>
{% for fact in facts %}
<p>{{ fact }}</p>
{% endfor %}
{% if link %}
<p><a href="{{ link }}">View the invoice</a></p>
{% endif %}
<p style="color: #666">{{ footer }}</p>
</body></html>
"""
)


def _instant(timestamp: str) -> str:
    """An API timestamp for people: "2026-11-24 12:00 UTC"."""
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(timestamp: str) -> str:
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).date().isoformat()


def _last_day(end: str) -> str:
    """The last day of a period ending (exclusive) at `end`."""
    instant = dt.datetime.fromisoformat(end).astimezone(dt.UTC)
    return (instant - dt.timedelta(microseconds=1)).date().isoformat()


def _one_line(text: str) -> str:
    """A subject is one line: a name typed with a line break in it must not break it."""
    return " ".join(text.split())


def _footer(customer_name: str) -> str:
    return f"You receive this email as the billing contact of {customer_name}."


def alert_email(
    alert: AlertPublic, *, to: str, customer_name: str, portal_url: str | None
) -> Composed:
    """A usage alert: its subject is the alert's own message, tagged with the customer's name
    ("[Acme Analytics] Product analytics: 80% of the spend cap of 10.00 USD is used
    (8.00 USD)"); `portal_url` (the portal's address, if known) links the caps page."""
    link = f"{portal_url}/portal/caps" if portal_url else None
    period, fired = _day(alert.period_start), _instant(alert.fired_at)
    text = [
        f"Hello {customer_name},",
        "",
        f"{alert.message}.",
        "",
        f"Billing period starting {period}; alert raised {fired}.",
    ]
    if link:
        text += ["", f"Your usage and spend caps: {link}"]
    text += ["", "-- ", _footer(customer_name)]
    html = _ALERT_HTML.render(
        customer=customer_name,
        message=f"{alert.message}.",
        period=period,
        fired=fired,
        link=link,
        footer=_footer(customer_name),
    )
    return Composed(
        to=to,
        subject=_one_line(f"[{customer_name}] {alert.message}"),
        text="\n".join(text) + "\n",
        html=html,
    )


def invoice_email(
    invoice: InvoicePublic,
    *,
    to: str,
    customer_name: str,
    seller: str,
    due: dt.date | None,
    portal_url: str | None,
) -> Composed:
    """An invoice notice: "Invoice INV-000123 from Acme Billing — 1,234.50 USD due
    2026-12-31", with every line, the amount due, the period, the due date when known, and a
    link to the invoice in the portal when `portal_url` is known."""
    currency = invoice.currency

    def money(text: str) -> str:
        return display_amount(Decimal(text), currency)

    amount_due = money(invoice.amount_due)
    subject = f"Invoice {invoice.number} from {seller} — {amount_due} due"
    if due is not None:
        subject += f" {due.isoformat()}"
    opening = f"{seller} has issued invoice {invoice.number} on {_day(invoice.issued_at)}"
    if invoice.period_start and invoice.period_end:
        opening += f", for {_day(invoice.period_start)} to {_last_day(invoice.period_end)}"
    opening += "."
    lines = [(line.description, money(line.amount)) for line in invoice.lines]
    facts = [f"Payment is due by {due.isoformat()}."] if due is not None else []
    link = f"{portal_url}/portal/invoices/{invoice.id}" if portal_url else None
    width = max((len(amount) for _, amount in lines), default=0)
    width = max(width, len(amount_due))
    text = [f"Hello {customer_name},", "", opening, ""]
    text += [f"  {amount:>{width}}  {description}" for description, amount in lines]
    text += [f"  {'-' * width}", f"  {amount_due:>{width}}  Amount due"]
    text += ["", *facts] if facts else []
    if link:
        text += ["", f"View the invoice: {link}"]
    text += ["", "-- ", _footer(customer_name)]
    html = _INVOICE_HTML.render(
        customer=customer_name,
        opening=opening,
        lines=lines,
        amount_due=amount_due,
        facts=facts,
        link=link,
        footer=_footer(customer_name),
    )
    return Composed(to=to, subject=_one_line(subject), text="\n".join(text) + "\n", html=html)


def endpoint_disabled_email(
    endpoint: WebhookEndpointPublic,
    *,
    to: str,
    owner_name: str | None,
    disabled_at: dt.datetime,
    portal_url: str | None,
) -> Composed:
    """An endpoint disabled after failing (docs/webhooks.md, "Disabling"): to its customer
    (`owner_name` is the customer's name) or to the operators (`owner_name` None). It says
    which endpoint, when, why (the reason the owner may read: no internal addresses), that
    its events wait in order, and how to enable it again."""
    when = disabled_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    whose = (
        f"Your webhook endpoint {endpoint.id}"
        if owner_name is not None
        else f"The webhook endpoint {endpoint.id}"
        + (
            f" of customer {endpoint.customer}"
            if endpoint.customer
            else " (an admin endpoint: every customer's events)"
        )
    )
    enable = f"POST /v1/webhook-endpoints/{endpoint.id}/enable"
    link = (
        f"{portal_url}/portal/webhooks/{endpoint.id}"
        if portal_url and owner_name is not None
        else None
    )
    text = [
        f"Hello {owner_name}," if owner_name is not None else "Hello,",
        "",
        f"{whose} at {endpoint.url} was disabled on {when}: {endpoint.disabled_reason}.",
        "",
        "Its events keep being recorded and wait, in order. Once it answers again, enable it"
        + (f" in the portal ({link}) or with {enable}." if link else f" with {enable}."),
    ]
    if owner_name is None:
        text += [
            "",
            "Each failure's detail: GET "
            f"/v1/webhook-endpoints/{endpoint.id}/deliveries with an admin key, and the log.",
        ]
    footer = (
        _footer(owner_name)
        if owner_name is not None
        else "You receive this email as the operator of this billing service (BILLING_ADMIN_EMAIL)."
    )
    text += ["", "-- ", footer]
    tag = f"[{owner_name}] " if owner_name is not None else ""
    subject = f"{tag}Webhook endpoint disabled: {endpoint.url}"
    html = _ENDPOINT_HTML.render(lines=text[:-3], link=link, footer=footer)
    return Composed(to=to, subject=_one_line(subject)[:300], text="\n".join(text) + "\n", html=html)


_ENDPOINT_HTML = _HTML.from_string(
    """<!doctype html>
<html><body style="font-family: sans-serif">
{% for line in lines if line %}
<p>{{ line }}</p>
{% endfor %}
{% if link %}
<p><a href="{{ link }}">Your webhook endpoint</a></p>
{% endif %}
<p style="color: #666">{{ footer }}</p>
</body></html>
"""
)
