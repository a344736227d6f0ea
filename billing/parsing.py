"""Exact parsing of request values (quantities, amounts, percentages, dates), with messages
that name the problem. Used by the API, the CLI, the pages and metering alike."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from billing.money import fraction_digits


class JSONNumber(Decimal):
    """A number that was written in JSON with a fraction or exponent (or NaN/Infinity)."""


MAX_QUANTITY = Decimal(10) ** 15
MAX_DECIMALS = 12
# The largest amount of money accepted as input, in major units of the catalogue's currency
# (a cap, a commitment's or a top-up's credit, a credit note's amount, a quote's caps and
# credit, the CLI's and the pages' too): a sanity bound, so a slip of the keyboard (a
# commitment of 999,999,999,999) is refused, not invoiced. docs/money.md, "Money in JSON".
MAX_AMOUNT = Decimal(1_000_000_000)
MAX_AMOUNT_DECIMALS = 3


_NUMBER_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,6})?", re.ASCII)
_NON_FINITE = re.compile(r"[-+]?(?:nan|snan|inf|infinity)", re.IGNORECASE)
MAX_TEXT = 64


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "contains a NUL character or a lone surrogate (text a database cannot store)"


def storable(text: str) -> bool:
    """Whether `text` can be stored as text on both engines: no NUL (PostgreSQL refuses it)
    and no lone surrogate (not encodable as UTF-8). ASCII without NUL is the fast case."""
    return ("\x00" not in text and text.isascii()) or _UNSTORABLE.search(text) is None


def show(value: Any) -> str:
    """A value as a message shows it: short, plain, never a Python repr of Decimal."""
    text = str(value) if isinstance(value, Decimal | int) else repr(value)
    return text if len(text) <= MAX_TEXT else f"{text[:MAX_TEXT]}… ({len(text)} characters)"


def _number(value: Any, what: str, code: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PydanticCustomError(
            code,
            "{what} must be a number or a decimal string, got {kind}",
            {"what": what, "kind": type(value).__name__},
        )
    if isinstance(value, str):
        text = value.strip()
        if _NON_FINITE.fullmatch(text):
            value = Decimal(text)
        elif len(text) > 2 * MAX_TEXT or not _NUMBER_TEXT.fullmatch(text):
            raise PydanticCustomError(
                code, "{what} must be a number, got {value}", {"what": what, "value": show(value)}
            )
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except ArithmeticError:
        raise PydanticCustomError(
            code, "{what} must be a number, got {value}", {"what": what, "value": show(value)}
        ) from None
    if not number.is_finite():
        raise PydanticCustomError(
            code,
            "{what} must be a finite number, got {value}",
            {"what": what, "value": show(value)},
        )
    if number < 0:
        raise PydanticCustomError(
            code,
            "{what} must be a non-negative number, got {value}",
            {"what": what, "value": show(value)},
        )
    return number


def parse_quantity(value: Any) -> Decimal:
    """A usage quantity: non-negative, finite, at most 10^15, at most 12 decimal places."""
    number = _number(value, "quantity", "invalid_quantity")
    if number > MAX_QUANTITY:
        raise PydanticCustomError(
            "invalid_quantity",
            "quantity must be at most 10^15, got {value}",
            {"value": show(value)},
        )
    if fraction_digits(number) > MAX_DECIMALS:
        raise PydanticCustomError(
            "invalid_quantity",
            "quantity has {digits} decimal places; at most 12 are allowed",
            {"digits": fraction_digits(number)},
        )
    return number if number else number.copy_abs()  # no negative zero


def parse_amount(value: Any) -> Decimal:
    """An amount of money: a decimal string, at most 3 decimals. A JSON number, whole or
    not, is refused (docs/money.md, "Money in JSON"): money travels as strings both ways."""
    if (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, JSONNumber) and value.is_finite()
    ):
        raise PydanticCustomError(
            "invalid_amount",
            'amounts of money are sent as strings, like "{value}", not JSON numbers, so they '
            "stay exact",
            {"value": show(value)},
        )
    number = _number(value, "an amount", "invalid_amount")
    if number > MAX_AMOUNT:
        raise PydanticCustomError(
            "invalid_amount",
            "an amount must be at most {limit} (in the catalogue's currency), got {value}",
            {"limit": f"{MAX_AMOUNT:,}", "value": show(value)},
        )
    if fraction_digits(number) > MAX_AMOUNT_DECIMALS:
        raise PydanticCustomError(
            "invalid_amount",
            "an amount has at most 3 decimal places (the currency's minor unit), got {value}",
            {"value": show(value)},
        )
    return number


def parse_percent(value: Any) -> Decimal:
    """A percentage between 0 and 100 with at most 4 decimal places."""
    number = _number(value, "a percentage", "invalid_percent")
    if number > 100:
        raise PydanticCustomError(
            "invalid_percent",
            "a percentage must be between 0 and 100, got {value}",
            {"value": show(value)},
        )
    if fraction_digits(number) > 4:
        raise PydanticCustomError(
            "invalid_percent",
            "a percentage has at most 4 decimal places, got {value}",
            {"value": show(value)},
        )
    return number


def parse_date(value: Any) -> dt.date:
    """An ISO date string, YYYY-MM-DD."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else _bad_date(value)
        except ValueError:
            pass
    return _bad_date(value)


def _bad_date(value: Any) -> dt.date:
    raise PydanticCustomError(
        "invalid_date", "must be a date like 2026-11-01, got {value}", {"value": show(value)}
    )


def parse_years(value: Any) -> int:
    """A whole number of years, 1 to 10."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise PydanticCustomError(
            "invalid_years",
            "years must be a whole number from 1 to 10, got {value}",
            {"value": show(value)},
        )
    return value


_NUMBER_OR_STRING = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\d+(\.\d+)?$"}]}

Quantity = Annotated[Decimal, BeforeValidator(parse_quantity), WithJsonSchema(_NUMBER_OR_STRING)]
Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,3})?$", "examples": ["100.00"]}),
]
Percent = Annotated[Decimal, BeforeValidator(parse_percent), WithJsonSchema(_NUMBER_OR_STRING)]
IsoDate = Annotated[
    dt.date, BeforeValidator(parse_date), WithJsonSchema({"type": "string", "format": "date"})
]
Years = Annotated[int, BeforeValidator(parse_years), WithJsonSchema({"type": "integer"})]
