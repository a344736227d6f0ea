"""Jinja2 templates for every page, their display filters, and how a page is answered
(with the security headers every page carries)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

# Pages load only their own scripts, styles and images; no framing; no referrer (a sign-in
# link's token must not leak to another site through a click).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def group_digits(text: Any) -> str:
    """Display only: "1000000.50" -> "1,000,000.50", "inf" -> "∞", None -> "—"."""
    if text is None or text == "":
        return "—"
    text = str(text)
    if text == "inf":
        return "∞"
    whole, dot, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-') or 0):,}{dot}{fraction}"


def day(text: Any) -> str:
    """Display only: an ISO timestamp's date ("2026-11-01T00:00:00+00:00" -> "2026-11-01")."""
    return "—" if not text else str(text)[:10]


def last_day(text: Any) -> str:
    """Display only: the last day a period ending (exclusive) at an ISO timestamp covers
    ("2026-11-01T00:00:00+00:00" -> "2026-10-31")."""
    if not text:
        return "—"
    end = dt.datetime.fromisoformat(str(text)).astimezone(dt.UTC)
    return (end - dt.timedelta(microseconds=1)).date().isoformat()


def minute(text: Any) -> str:
    """Display only: an ISO timestamp to the minute, UTC ("2026-11-01 13:05 UTC")."""
    return "—" if not text else f"{str(text)[:10]} {str(text)[11:16]} UTC"


def shares(parts: Any) -> list[str]:
    """Display only: each part's share of the parts' total quantity, in percent to one
    decimal, for bars ("66.7"); all "0" when the total is 0."""
    quantities = [Decimal(str(part["quantity"])) for part in parts]
    whole = sum(quantities, Decimal(0))
    if whole <= 0:
        return ["0" for _ in quantities]
    return [f"{(q / whole * 100).quantize(Decimal('0.1'))}" for q in quantities]


TEMPLATES.env.filters["group"] = group_digits
TEMPLATES.env.filters["shares"] = shares
TEMPLATES.env.filters["day"] = day
TEMPLATES.env.filters["minute"] = minute
TEMPLATES.env.filters["last_day"] = last_day


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    private: bool = True,
) -> HTMLResponse:
    """A page; `private` pages (anything signed in) are never cached."""
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True, slots=True)
class Area:
    """A signed-in part of the site (the portal, the finance pages): its name, home, sections
    and sign-out form, laid out by base.html around every page of the area."""

    name: str
    home: str
    nav: tuple[tuple[str, str], ...]

    def page(
        self,
        request: Request,
        user: Any,
        template: str,
        context: dict[str, Any],
        *,
        active: str,
        status: int = 200,
    ) -> HTMLResponse:
        layout = {
            "user": user,
            "nav": self.nav,
            "active": active,
            "signout": f"{self.home}/signout",
            "home": self.home,
            "area": self.name,
        }
        return render(request, template, {**layout, **context}, status=status)
