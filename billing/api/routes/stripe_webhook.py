"""POST /v1/stripe/webhook: signed by Stripe, not by an API key."""

from __future__ import annotations

import datetime as dt

import stripe
from fastapi import APIRouter, Request
from pydantic import Field

from billing.api.schemas import ErrorOut
from billing.errors import BadRequest
from billing.http.deps import CatalogDep, SessionDep
from billing.public import PublicModel
from billing.stripe_sync.webhook import apply_event

router = APIRouter(prefix="/v1/stripe", tags=["stripe"])


class WebhookReceiptPublic(PublicModel):
    received: bool
    event: str = Field(description="Stripe's event id")
    outcome: str = Field(
        description="recorded | not_applied | replayed | ignored | unknown_invoice: what the "
        "event did"
    )
    reason: str = Field(description="why it changed nothing, when it did not")


@router.post("/webhook", responses={400: {"model": ErrorOut}})
async def stripe_webhook(
    request: Request, session: SessionDep, catalog: CatalogDep
) -> WebhookReceiptPublic:
    """Apply invoice.paid, invoice.payment_failed, invoice.voided and
    invoice.marked_uncollectible by the time they happened; ignore other events."""
    secret = request.app.state.settings.stripe_webhook_secret
    if not secret:
        raise BadRequest(
            "this service has no BILLING_STRIPE_WEBHOOK_SECRET: it cannot check signatures",
            field="Stripe-Signature",
        )
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as error:
        raise BadRequest(f"bad signature: {error}", field="Stripe-Signature") from None
    except ValueError as error:
        raise BadRequest(f"not a Stripe event: {error}", field="body") from None
    receipt = apply_event(session.connection(), catalog, event, dt.datetime.now(dt.UTC))
    return WebhookReceiptPublic(
        received=True,
        event=str(getattr(event, "id", "")),
        outcome=receipt.outcome,
        reason=receipt.reason,
    )
