"""One error tree for the whole engine.

    BillingError                      code          HTTP (api/errors.py)
    ├── InputError                    invalid       422
    │   ├── UnknownProduct            unknown_product
    │   ├── NoPriceInForce            no_price_in_force
    │   ├── InvalidQuantity           invalid_quantity
    │   ├── InvalidAmount             invalid_amount
    │   ├── InvalidDate               invalid_date
    │   ├── UnknownTerm               unknown_term
    │   ├── BelowMinimumPurchase      below_min_purchase
    │   └── NoCommitmentSchedule      no_commitment_schedule
    ├── NotFound                      not_found     404
    ├── Conflict                      conflict      409
    ├── Unauthorized                  unauthorized  401
    ├── Forbidden                     forbidden     403
    ├── PayloadTooLarge               too_large     413
    ├── UnsupportedMediaType          unsupported_media_type 415
    └── CatalogError                  invalid_catalog  (the service refuses to start)

Each error carries a machine `code`, a message written for the person who will read it,
and, where one input is to blame, the `field` path that names it ("usage.session_replay").
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


class NoPriceInForce(InputError):
    code = "no_price_in_force"


class InvalidQuantity(InputError):
    code = "invalid_quantity"


class InvalidAmount(InputError):
    code = "invalid_amount"


class InvalidDate(InputError):
    code = "invalid_date"


class UnknownTerm(InputError):
    code = "unknown_term"


class BelowMinimumPurchase(InputError):
    code = "below_min_purchase"


class NoCommitmentSchedule(InputError):
    code = "no_commitment_schedule"


class BadRequest(BillingError):
    """A request this service cannot trust or read at all, such as a bad webhook signature."""

    code = "bad_request"


class NotFound(BillingError):
    code = "not_found"


class Conflict(BillingError):
    code = "conflict"


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
