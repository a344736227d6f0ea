"""The shape of tier files, as frozen pydantic models (and the JSON Schema editors use).

These models check each value (types, formats, unknown keys); rules that relate several
values (order of tiers, last tier unbounded, file name) are in `rules.py`, so that a file
with several mistakes reports all of them.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from billing.money import MINOR_UNITS, fraction_digits
from billing.parsing import MAX_AMOUNT as MAX_INPUT_AMOUNT
from billing.pricing.commitments import Release
from billing.pricing.plan import Model

MAX_PRICE_DECIMALS = 12
MAX_PRICE = Decimal(10) ** 9
MAX_AMOUNT = MAX_INPUT_AMOUNT  # a credit above what can be sent in could never be bought
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
SLUG_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
EVENT_PATTERN = r"^[A-Za-z0-9_$.-]{1,64}$"
PROPERTY_PATTERN = r"^[A-Za-z0-9_$.-]{1,40}$"  # as events send them (metering/validate.py)
MAX_PROPERTY_VALUE = 200
MAX_SOURCES = 20
MAX_DIMENSIONS = 3
MAX_DIMENSION_VALUES = 100_000
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]{1,12})?$"
CUSTOMER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # customers.models.ID_PATTERN
MAX_OVERRIDES = 100  # product overrides in one customer's file


def _decimal_string(
    value: Any,
    *,
    what: str,
    max_decimals: int = MAX_PRICE_DECIMALS,
    maximum: Decimal = MAX_PRICE,
) -> Decimal:
    if isinstance(value, float):  # float-ok: refuses TOML floats
        raise PydanticCustomError(
            "float_price",
            '{what} must be a decimal string such as "{example}", not a TOML float ({value}): '
            "floats cannot hold prices exactly",
            {"what": what, "example": _plain(value), "value": value},
        )
    if not isinstance(value, str) or isinstance(value, bool):
        raise PydanticCustomError(
            "not_decimal_string",
            '{what} must be a decimal string such as "0.00005", got {value}',
            {"what": what, "value": repr(value)},
        )
    if not _PLAIN_DECIMAL.fullmatch(value.strip()) and not value.strip().startswith("-"):
        raise PydanticCustomError(
            "not_decimal_string",
            '{what} must be written with digits and one point, like "0.00005", got {value}',
            {"what": what, "value": repr(value[:40])},
        )
    try:
        number = Decimal(value.strip())
    except ArithmeticError:
        raise PydanticCustomError(
            "not_decimal_string",
            '{what} must be a decimal string such as "0.00005", got "{value}"',
            {"what": what, "value": value},
        ) from None
    if not number.is_finite():
        raise PydanticCustomError(
            "not_finite",
            '{what} must be a finite number, got "{value}"',
            {"what": what, "value": value},
        )
    if number < 0:
        raise PydanticCustomError(
            "negative", '{what} must not be negative, got "{value}"', {"what": what, "value": value}
        )
    if number > maximum:
        raise PydanticCustomError(
            "too_large",
            '{what} must be at most {maximum}, got "{value}"',
            {"what": what, "maximum": maximum, "value": value[:40]},
        )
    if fraction_digits(number) > max_decimals:
        raise PydanticCustomError(
            "too_many_decimals",
            '{what} has {digits} decimal places; at most {max} are allowed ("{value}")',
            {"what": what, "digits": fraction_digits(number), "max": max_decimals, "value": value},
        )
    return number


def _plain(value: float) -> str:  # float-ok: shows a refused TOML float
    return format(Decimal(repr(value)), "f")


def _price(value: Any) -> Decimal:
    return _decimal_string(value, what="a price")


def _amount(value: Any) -> Decimal:
    return _decimal_string(value, what="an amount", max_decimals=3, maximum=MAX_AMOUNT)


def _percent(value: Any) -> Decimal:
    number = _decimal_string(value, what="a percentage", max_decimals=4, maximum=Decimal(100))
    if number >= 100:
        raise PydanticCustomError(
            "percent_range", 'a discount must be below 100 %, got "{value}"', {"value": value}
        )
    return number


def _share(value: Any) -> Decimal:
    return _decimal_string(value, what="a percentage", max_decimals=4, maximum=Decimal(100))


def _up_to(value: Any) -> int | Literal["inf"]:
    if value == "inf" and isinstance(value, str):
        return "inf"
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError(
            "up_to_type",
            'up_to must be a whole number of units (like 1_000_000) or "inf", got {value}',
            {"value": repr(value)},
        )
    if value <= 0:
        raise PydanticCustomError(
            "up_to_positive", "up_to must be positive, got {value}", {"value": value}
        )
    return value


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise PydanticCustomError(
            "not_toml_date",
            "effective_from must be a bare TOML date like 2024-01-01 (no quotes, no time), "
            "got {value}",
            {"value": repr(value)},
        )
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str) or value not in MINOR_UNITS:
        raise PydanticCustomError(
            "unknown_currency",
            'unknown currency {value}; use an ISO 4217 code such as "USD", "EUR", "JPY"',
            {"value": repr(value)},
        )
    return value


def _whole(minimum: int) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PydanticCustomError(
                "whole_number",
                "must be a whole number of at least {minimum}, got {value}",
                {"minimum": minimum, "value": repr(value)},
            )
        return value

    return check


def _multiplier(value: Any) -> Decimal:
    number = _decimal_string(value, what="a multiplier", max_decimals=6, maximum=Decimal(10**6))
    if number == 0:
        raise PydanticCustomError(
            "multiplier_zero",
            'a multiplier must be above 0 (leave the source out to count nothing), got "{value}"',
            {"value": value},
        )
    return number


def _filter_value(value: Any) -> str:
    """A `where` value: a string, or a whole number (compared as its digits)."""
    if isinstance(value, str) and 0 < len(value) <= MAX_PROPERTY_VALUE:
        return value
    if type(value) is int:
        return str(value)
    raise PydanticCustomError(
        "filter_value",
        "a filter value is a string of 1 to {max} characters or a whole number, got {value}",
        {"max": MAX_PROPERTY_VALUE, "value": repr(value)[:60]},
    )


def _decimal_schema(description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_PATTERN, "description": description}
    )


Price = Annotated[Decimal, BeforeValidator(_price), _decimal_schema("decimal string, <= 12 places")]
Amount = Annotated[Decimal, BeforeValidator(_amount), _decimal_schema("decimal string amount")]
Percent = Annotated[Decimal, BeforeValidator(_percent), _decimal_schema("percentage, below 100")]
Share = Annotated[Decimal, BeforeValidator(_share), _decimal_schema("percentage, 0 to 100")]
UpTo = Annotated[
    int | Literal["inf"],
    BeforeValidator(_up_to),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"const": "inf"}]},
    ),
]
EffectiveDate = Annotated[
    dt.date, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})
]
Currency = Annotated[str, BeforeValidator(_currency), WithJsonSchema({"enum": sorted(MINOR_UNITS)})]
Years = Annotated[
    int, BeforeValidator(_whole(1)), WithJsonSchema({"type": "integer", "minimum": 1})
]
Months = Annotated[
    int, BeforeValidator(_whole(0)), WithJsonSchema({"type": "integer", "minimum": 0})
]
Multiplier = Annotated[
    Decimal,
    BeforeValidator(_multiplier),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]{1,6})?$",
            "description": "exact decimal string above 0, <= 6 places",
        }
    ),
]
EventName = Annotated[
    str,
    Field(
        pattern=EVENT_PATTERN,
        description="an event name as events send it in `event` (or a product key)",
    ),
]
PropertyName = Annotated[str, Field(pattern=PROPERTY_PATTERN)]
FilterValue = Annotated[
    str,
    BeforeValidator(_filter_value),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "integer"}]}
    ),
]
PackageSize = Annotated[
    int, BeforeValidator(_whole(1)), WithJsonSchema({"type": "integer", "minimum": 1})
]

FROZEN = ConfigDict(extra="forbid", frozen=True, strict=False)


class TierSpec(BaseModel):
    """One tier: units up to `up_to` (inclusive, cumulative) at `unit_price` each."""

    model_config = FROZEN
    up_to: UpTo
    unit_price: Price
    flat_fee: Price | None = None


class VersionSpec(BaseModel):
    """A tier table and the date from which it is in force."""

    model_config = FROZEN
    effective_from: EffectiveDate
    tiers: tuple[TierSpec, ...]


class SourceSpec(BaseModel):
    """One kind of metered event a product counts, each unit `multiplier` times."""

    model_config = FROZEN
    event: EventName
    multiplier: Multiplier = Decimal(1)


class ProductFile(BaseModel):
    """pricing_tiers/<key>.toml: one product's pricing, all its versions."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Product tier file")
    key: str = Field(pattern=SLUG_PATTERN, description="slug; equals the file stem")
    name: str = Field(min_length=1)
    unit: str = Field(min_length=1, description="singular display unit, e.g. event")
    currency: Currency
    model: Model
    package_size: PackageSize | None = None
    sources: tuple[SourceSpec, ...] | None = Field(
        None,
        max_length=MAX_SOURCES,
        description='the metered events it counts; default [{event = "<key>"}]',
    )
    where: dict[PropertyName, tuple[FilterValue, ...]] | None = Field(
        None,
        max_length=10,
        description="only events whose property is one of these values (every property "
        "named must match)",
    )
    aggregation: Literal["sum", "count", "max", "unique_count", "latest"] = Field(
        "sum",
        description="how a period's events make its quantity: sum of quantities (default), "
        "count of events, max quantity, unique_count of a property's values, latest quantity",
    )
    unique_property: PropertyName | None = Field(
        None, description="unique_count: the property whose distinct values are counted"
    )
    dimensions: tuple[PropertyName, ...] | None = Field(
        None,
        max_length=MAX_DIMENSIONS,
        description="up to 3 event properties its lines are broken down by, e.g. project",
    )
    max_dimension_values: Annotated[
        int,
        BeforeValidator(_whole(1)),
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_DIMENSION_VALUES}),
    ] = Field(
        1000,
        le=MAX_DIMENSION_VALUES,
        description="distinct breakdown values kept per customer, product and period; "
        'beyond it usage folds into "(other)"',
    )
    versions: tuple[VersionSpec, ...]


class BracketSpec(BaseModel):
    """From `min_credit` of annual credit on a `years` term, `discount_percent` off."""

    model_config = FROZEN
    years: Years
    min_credit: Amount
    discount_percent: Percent


class DiscountsFile(BaseModel):
    """pricing_tiers/discounts.toml: the self-serve commitment schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Commitment discounts file")
    currency: Currency
    min_purchase: Amount
    release: Release = Release.MONTHLY
    rollover_percent: Share = Decimal(0)
    topup_months: Months = 0
    brackets: tuple[BracketSpec, ...]


class LateUsageSpec(BaseModel):
    """How events for a closed billing period are treated (docs/metering.md, "Late usage")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: Literal["reject", "amend"] = Field(
        "reject",
        description="reject: period_closed; amend: accepted within window_days of the period's "
        "end and billed as an adjustment on the next invoice",
    )
    window_days: int = Field(0, ge=0, le=366, description="days after a period ends (amend)")


class SettingsFile(BaseModel):
    """pricing_tiers/settings.toml: billing rules reviewed with the prices (optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Billing settings file")
    late_usage: LateUsageSpec = LateUsageSpec()
    properties: tuple[PropertyName, ...] | None = Field(
        None,
        max_length=100,
        description="the event properties the product files may name (where, dimensions, "
        "unique_property); when listed, any other name there is an error (a typo caught "
        "before it selects nothing)",
    )


class OverrideSpec(BaseModel):
    """One product's negotiated tier table for one customer, in force from `effective_from`
    (inclusive) until `effective_to` (exclusive; none: open-ended)."""

    model_config = FROZEN
    key: str = Field(pattern=SLUG_PATTERN, description="the product key it re-prices")
    effective_from: EffectiveDate
    effective_to: EffectiveDate | None = Field(
        None, description="the first day it is no longer in force (exclusive)"
    )
    tiers: tuple[TierSpec, ...]


class OverrideFile(BaseModel):
    """pricing_tiers/overrides/<customer>.toml: one customer's negotiated prices."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Customer override file")
    customer: str = Field(
        pattern=CUSTOMER_PATTERN, description="the customer id; equals the file stem"
    )
    products: tuple[OverrideSpec, ...] = Field(min_length=1, max_length=MAX_OVERRIDES)
