"""POST /v1/stripe/webhook: signed by Stripe, not by an API key.

The official SDK checks the signature on the raw body; the body is then read here as JSON
(numbers exactly, never as floats), and anything that is not a JSON object (an
array, a string, a body nested too deeply to read) is not a Stripe event: 400. A signed
object of any shape is Stripe's to send: it is acknowledged with 200, and `ignored` when it
is not an event this service can use (docs/stripe.md, "The webhook")."""

from __future__ import annotations

import datetime as dt
import json

import stripe
from fastapi import APIRouter, Request
from pydantic import Field

from billing.api import exact_json
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
        stripe.WebhookSignature.verify_header(
            payload,
            signature,
            secret,
            tolerance=stripe.Webhook.DEFAULT_TOLERANCE,  # 5 minutes
        )
    except stripe.SignatureVerificationError as error:
        raise BadRequest(f"bad signature: {error}", field="Stripe-Signature") from None
    except ValueError as error:  # a body that is not UTF-8
        raise BadRequest(f"not a Stripe event: {error}", field="body") from None
    event = _event(payload)
    receipt = apply_event(session.connection(), catalog, event, dt.datetime.now(dt.UTC))
    event_id = event.get("id")
    return WebhookReceiptPublic(
        received=True,
        event=event_id if isinstance(event_id, str) else "",
        outcome=receipt.outcome,
        reason=receipt.reason,
    )


def _event(payload: bytes) -> dict[str, object]:
    """The signed body as a JSON object; BadRequest when it is not one."""
    try:
        document = exact_json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"not a Stripe event: not JSON ({error})", field="body") from None
    if not isinstance(document, dict):
        raise BadRequest(
            f"not a Stripe event: the body is {_kind(document)}, not a JSON object", field="body"
        )
    if document.get("object") == "v2.core.event":
        raise BadRequest(
            "not a Stripe event: a thin event (v2.core.event); this endpoint takes snapshot "
            "events (v1)",
            field="body",
        )
    return document


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"
