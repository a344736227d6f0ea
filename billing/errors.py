"""One error tree for the whole engine.

    class                             code                      HTTP (api/errors.py)
    BillingError                      billing_error             (the base, never raised itself)
    ├── InputError                    invalid                   422
    │   ├── UnknownProduct            unknown_product
    │   ├── UnknownDimension          unknown_dimension
    │   ├── NoPriceInForce            no_price_in_force
    │   ├── InvalidQuantity           invalid_quantity
    │   ├── InvalidAmount             invalid_amount
    │   ├── InvalidPercent            invalid_percent
    │   ├── InvalidDate               invalid_date
    │   ├── InvalidPeriod             invalid_period
    │   ├── InvalidMonth              invalid_month
    │   ├── ReversedRange             reversed_range
    │   ├── DateInPast                date_in_past
    │   ├── UnknownTerm               unknown_term
    │   ├── BelowMinimumPurchase      below_min_purchase
    │   ├── NoCommitmentSchedule      no_commitment_schedule
    │   ├── InvalidJson               invalid_json
    │   ├── InvalidType               invalid_type
    │   ├── InvalidText               invalid_text
    │   ├── TextTooLong               text_too_long
    │   ├── UnknownField              unknown_field
    │   ├── MissingField              missing_field
    │   ├── NullNotAllowed            null_not_allowed
    │   ├── TooManyItems              too_many_items
    │   ├── EmptyBatch                empty_batch
    │   ├── MissingReason             missing_reason
    │   ├── CurrencyMismatch          currency_mismatch
    │   ├── KeyNeedsCustomer          key_needs_customer
    │   ├── KeyTakesNoCustomer        key_takes_no_customer
    │   ├── InvalidLinkLifetime       invalid_link_ttl
    │   ├── NotReissuable             invoice_not_reissuable
    │   ├── InvalidThreshold          invalid_threshold
    │   ├── WebhookUrlNotAllowed      webhook_url_not_allowed
    │   ├── UnknownStatus             unknown_status
    │   ├── UnknownEventType          unknown_event_type
    │   ├── UnknownAction             unknown_action
    │   ├── InvalidCreditNoteLine     invalid_credit_note_line
    │   └── IdempotencyError          idempotency_error
    ├── BadRequest                    bad_request               400
    ├── NotFound                      not_found                 404
    ├── Conflict                      conflict                  409
    │   ├── CustomerExists            customer_exists
    │   ├── InvoiceNotFinalized       invoice_not_finalized
    │   ├── CommitmentRunning         commitment_running
    │   ├── CommitmentBelowRunning    commitment_below_running
    │   ├── TopupWindowClosed         topup_window_closed
    │   ├── InvoicePaid               invoice_paid
    │   ├── CreditExceedsInvoice      credit_exceeds_invoice
    │   ├── OutcomeNotAllowed         credit_note_outcome_not_allowed
    │   └── CommitmentCreditUsed      commitment_credit_used
    ├── Unauthorized                  unauthorized              401
    ├── Forbidden                     forbidden                 403
    ├── PayloadTooLarge               too_large                 413
    ├── UnsupportedMediaType          unsupported_media_type    415
    ├── RateLimited                   rate_limited              429
    └── CatalogError                  invalid_catalog           (the service refuses to start)

A subclass answers its parent's HTTP status. Each error carries a machine `code`, a message
written for the person who will read it, and, where one input is to blame, the `field` path
that names it ("usage.session_replay"). docs/errors.md lists every code with an example;
tests/test_errors.py keeps this drawing and that page complete. The core raises the specific
class, never InputError or Conflict themselves, so every cause has its own code.
"""

from __future__ import annotations

from dataclasses import dataclass


class BillingError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "billing_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InputError(BillingError):
    """The caller sent something the engine cannot price."""

    code = "invalid"


class UnknownProduct(InputError):
    code = "unknown_product"


class UnknownDimension(InputError):
    """A dimension the product does not declare (a report by dimension)."""

    code = "unknown_dimension"


class NoPriceInForce(InputError):
    code = "no_price_in_force"


class InvalidQuantity(InputError):
    code = "invalid_quantity"


class InvalidAmount(InputError):
    code = "invalid_amount"


class InvalidPercent(InputError):
    """A percentage outside 0 to 100."""

    code = "invalid_percent"


class InvalidDate(InputError):
    code = "invalid_date"


class UnknownTerm(InputError):
    code = "unknown_term"


class BelowMinimumPurchase(InputError):
    code = "below_min_purchase"


class NoCommitmentSchedule(InputError):
    code = "no_commitment_schedule"


class InvalidPeriod(InputError):
    """A `?period=` that is not a month label YYYY-MM."""

    code = "invalid_period"


class InvalidMonth(InputError):
    """A report's `from` or `to` that is not a month label YYYY-MM."""

    code = "invalid_month"


class ReversedRange(InputError):
    """A range whose end comes before its start (`to` before `from`)."""

    code = "reversed_range"


class DateInPast(InputError):
    """A date that must lie ahead (a discount's `until`) is already past."""

    code = "date_in_past"


class InvalidJson(InputError):
    """The body is not JSON."""

    code = "invalid_json"


class InvalidType(InputError):
    """A value of the wrong JSON type (the body not an object, `events` not a list)."""

    code = "invalid_type"


class InvalidText(InputError):
    """Text no database can store: a NUL character or a lone surrogate, in a JSON body's
    string or key, or in the URL."""

    code = "invalid_text"


class TextTooLong(InputError):
    """Text longer than its field holds (a webhook endpoint's description: 200 characters);
    the message gives the limit."""

    code = "text_too_long"


class UnknownField(InputError):
    """A field the request does not have; typos never pass silently."""

    code = "unknown_field"


class MissingField(InputError):
    """A required value is missing, or left empty in a form."""

    code = "missing_field"


class NullNotAllowed(InputError):
    """`null` sent for a setting that can be changed but not unset."""

    code = "null_not_allowed"


class TooManyItems(InputError):
    """A list longer than allowed (alert thresholds)."""

    code = "too_many_items"


class EmptyBatch(InputError):
    """An events request with no events in it."""

    code = "empty_batch"


class MissingReason(InputError):
    """A change kept in an audit trail (a void, a discount) was sent without a reason."""

    code = "missing_reason"


class CurrencyMismatch(InputError):
    """A customer in another currency than the catalogue prices in."""

    code = "currency_mismatch"


class KeyNeedsCustomer(InputError):
    """A customer key asked for without naming its customer."""

    code = "key_needs_customer"


class KeyTakesNoCustomer(InputError):
    """A customer named for a key whose role is not `customer`."""

    code = "key_takes_no_customer"


class InvalidLinkLifetime(InputError):
    """A sign-in link lifetime outside 1 second to 7 days."""

    code = "invalid_link_ttl"


class NotReissuable(InputError):
    """A re-issue asked for an invoice that is not a period's usage invoice."""

    code = "invoice_not_reissuable"


class InvalidThreshold(InputError):
    """An alert threshold outside (0, 100] percent of the cap."""

    code = "invalid_threshold"


class WebhookUrlNotAllowed(InputError):
    """A webhook URL that is malformed or points somewhere webhooks may not go."""

    code = "webhook_url_not_allowed"


class UnknownStatus(InputError):
    """A status filter that is not one of the invoice statuses."""

    code = "unknown_status"


class UnknownEventType(InputError):
    """A webhook endpoint's event filter names a type that does not exist."""

    code = "unknown_event_type"


class UnknownAction(InputError):
    """A page form posted an action the page does not have."""

    code = "unknown_action"


class InvalidCreditNoteLine(InputError):
    """A credit note line naming no creditable invoice line, or with both or neither of an
    amount and a quantity where one is needed."""

    code = "invalid_credit_note_line"


class IdempotencyError(InputError):
    """An Idempotency-Key used again with another request (method, path or body)."""

    code = "idempotency_error"


class BadRequest(BillingError):
    """A request this service cannot trust or read at all, such as a bad webhook signature."""

    code = "bad_request"


class NotFound(BillingError):
    code = "not_found"


class Conflict(BillingError):
    code = "conflict"


class CustomerExists(Conflict):
    """A customer with this id already exists."""

    code = "customer_exists"


class InvoiceNotFinalized(Conflict):
    """The invoice is no longer finalized (already void), so it cannot be voided again."""

    code = "invoice_not_finalized"


class CommitmentRunning(Conflict):
    """A commitment runs for this customer: top it up, or start a new one when it ends."""

    code = "commitment_running"


class CommitmentBelowRunning(Conflict):
    """A smaller commitment than the running one, which can only start when that one ends."""

    code = "commitment_below_running"


class TopupWindowClosed(Conflict):
    """A top-up after the window at the start of the contract year has closed."""

    code = "topup_window_closed"


class InvoicePaid(Conflict):
    """A paid invoice cannot be voided: a credit note corrects it."""

    code = "invoice_paid"


class CreditExceedsInvoice(Conflict):
    """A credit note for more than is still creditable on the invoice (or on a line)."""

    code = "credit_exceeds_invoice"


class OutcomeNotAllowed(Conflict):
    """A credit note outcome the invoice's state does not allow (a refund of an unpaid
    invoice, less due on a paid one, or more due reduced than is still owed)."""

    code = "credit_note_outcome_not_allowed"


class CommitmentCreditUsed(Conflict):
    """Voiding a commitment invoice whose credit has been used: credit it with a note."""

    code = "commitment_credit_used"


class Unauthorized(BillingError):
    code = "unauthorized"


class Forbidden(BillingError):
    code = "forbidden"


class PayloadTooLarge(BillingError):
    code = "too_large"


class UnsupportedMediaType(BillingError):
    code = "unsupported_media_type"


class RateLimited(BillingError):
    """Too many requests from one client: try again after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a tier directory: which file, which key path, why."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class CatalogError(BillingError):
    """A tier directory failed validation; `problems` lists every problem found."""

    code = "invalid_catalog"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the tier directory:\n{lines}")
