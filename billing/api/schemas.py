"""Request and response bodies of the public pricing API (shapes of docs/pricing-api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from billing.parsing import Amount, IsoDate, Percent, Quantity, Years

STRICT = ConfigDict(extra="forbid")


class CommitmentChoice(BaseModel):
    model_config = STRICT
    credit: Amount = Field(description="annual credit amount, as a string")
    years: Years = Field(description="term length in years")


class QuoteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "usage": {"product_analytics": 3000000, "session_replay": 10000},
                    "discount_percent": "20",
                    "spend_caps": {"session_replay": "100.00"},
                    "commitment": {"credit": "30000", "years": 1},
                    "at": "2026-11-01",
                }
            ]
        },
    )
    usage: dict[str, Quantity] = Field(
        max_length=100, description="quantity per product key for one month"
    )
    discount_percent: Percent | None = Field(None, description="percentage off every line")
    spend_caps: dict[str, Amount] | None = Field(
        None, max_length=100, description="cap per product on the line total after discount"
    )
    commitment: CommitmentChoice | None = None
    at: IsoDate | None = Field(None, description="date whose tier versions apply (default today)")
    include_commitment_options: StrictBool = Field(
        False, description="also price every commitment bracket for this usage"
    )


class ErrorOut(BaseModel):
    code: str = Field(description="machine-readable error code")
    message: str
    field: str | None = Field(description="dotted path of the input at fault, if one is")
    errors: list[dict[str, str | None]] | None = None


class EventIn(BaseModel):
    """One usage event (validated per event by the service, so one bad event spoils nothing)."""

    id: str = Field(max_length=200, description="unique id; a retry must reuse it")
    customer: str
    product: str | None = Field(None, description="the product's key; or name the `event`")
    event: str | None = Field(
        None,
        description="an event name the products' sources select (docs/tier-files.md, "
        '"Sources"), instead of `product`',
    )
    quantity: str | int | float = Field(  # float-ok: documents a JSON number; parsed exactly
        1, description="non-negative; default 1"
    )
    timestamp: str = Field(description="ISO 8601 with a zone, e.g. 2026-11-24T10:00:00Z")
    properties: dict[str, str | int | float] | None = Field(  # float-ok: documents JSON
        None,
        description="flat map of names to short strings or numbers (at most 20; "
        'docs/metering.md, "Properties")',
    )


class EventBatchIn(BaseModel):
    events: list[EventIn] = Field(max_length=10_000)


class SpendCapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = Field(
        description='the cap as a string ("250.00"); null removes it; "0" keeps only the '
        "free allowance"
    )


class AlertSettingsIn(BaseModel):
    """Fields you leave out keep their value."""

    model_config = ConfigDict(extra="forbid")

    thresholds: list[Percent] | None = Field(
        None, description='percentages of a cap that fire an alert, e.g. ["50", "80", "100"]'
    )
    free_allowance: StrictBool | None = Field(
        None, description="alert when a product's free allowance is used up"
    )
    webhook_url: str | None = Field(
        None, description="http(s) URL alerts are POSTed to, signed; null removes it"
    )
    rotate_secret: StrictBool = Field(False, description="issue a new signing secret")


class WebhookEndpointIn(BaseModel):
    """A webhook endpoint to make (docs/webhooks.md)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http(s) URL events are POSTed to, signed")
    events: list[str] = Field(
        max_length=50, description='event types to receive, e.g. ["invoice.paid"]; ["*"]: all'
    )
    customer: str | None = Field(
        None,
        max_length=64,
        description="admins: whose events (null: every customer's); customer keys: their own",
    )
    description: str = Field("", max_length=200)


class RotateSecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_hours: int = Field(
        24, ge=0, le=168, description="how long the old secret keeps signing beside the new one"
    )


class CommitmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit: Amount = Field(description='annual credit, as a string ("30000")')
    years: Years = Field(description="term length in years (see GET /v1/products)")


class TopUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credit: Amount = Field(description="credit to add to the current contract year, as a string")


class DiscountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: Percent | None = Field(description='e.g. "15"; null removes the discount')
    reason: str | None = Field(None, max_length=200, description="why, for the audit trail")
    until: IsoDate | None = Field(
        None, description="last day of the periods it applies to (periods starting on or before)"
    )


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="why, for the audit trail")
    reissue: StrictBool = Field(
        False, description="issue a corrected invoice for the same period (usage invoices)"
    )


class CreditNoteLineIn(BaseModel):
    """One invoice line to credit: by `amount`, by `quantity` (units fewer, re-priced), or,
    with neither, all that is left of it."""

    model_config = ConfigDict(extra="forbid")

    line: int = Field(ge=1, description="the invoice line's position (1, 2, ...)")
    amount: Amount | None = Field(None, description="money to credit from it, as a string")
    quantity: Quantity | None = Field(None, description="units fewer: the line re-priced")


class CreditNoteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "duplicate events from a broken SDK",
                    "lines": [{"line": 1, "quantity": "200000"}],
                    "outcome": "reduce_due",
                }
            ]
        },
    )

    reason: str = Field(min_length=1, max_length=500, description="why, for the audit trail")
    lines: list[CreditNoteLineIn] = Field(min_length=1, max_length=100)
    outcome: Literal["reduce_due", "credit_balance", "refund"] = Field(
        description="reduce_due (open invoices) | refund | credit_balance (paid invoices)"
    )
