"""Who an invoice is from and to, as its PDF prints them (docs/invoicing.md, "PDF")."""

from __future__ import annotations

from dataclasses import dataclass

from billing.settings import Settings


@dataclass(frozen=True, slots=True)
class Party:
    """The seller (from settings) or the buyer (the customer) of an invoice."""

    name: str
    address: tuple[str, ...] = ()
    email: str | None = None
    tax_id: str | None = None
    customer_id: str | None = None  # the buyer's account with us


def seller_of(settings: Settings) -> Party:
    """The seller as BILLING_SELLER_NAME, _ADDRESS, _EMAIL and _TAX_ID configure it."""
    return Party(
        name=settings.seller_name,
        address=tuple(settings.seller_address_lines),
        email=settings.seller_email or None,
        tax_id=settings.seller_tax_id or None,
    )
