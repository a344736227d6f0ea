"""What every public answer shares: one base model, and money and quantities as strings.

An answer of the API is a pydantic model named `*Public`, defined next to its domain
(`billing/<domain>/public.py`), so the API and the pages render the same shapes and
`/docs` shows each one. Money travels as a decimal string (`"84.30"`), never a JSON
number, so no client reads an amount into a float; quantities too (`"3000000"`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DECIMAL_TEXT = r"^-?\d+(\.\d+)?$"

MoneyText = Annotated[
    str,
    Field(
        pattern=DECIMAL_TEXT,
        description="an amount of money as a decimal string, never a JSON number",
        examples=["84.30"],
    ),
]
QuantityText = Annotated[
    str,
    Field(
        pattern=DECIMAL_TEXT,
        description="a quantity as a decimal string, without exponent or trailing zeros",
        examples=["3000000"],
    ),
]
BoundText = Annotated[
    str,
    Field(
        pattern=r"^(\d+(\.\d+)?|inf)$",
        description='an inclusive upper bound as a decimal string, or "inf" for none',
        examples=["1000000", "inf"],
    ),
]
PercentText = Annotated[
    str,
    Field(pattern=DECIMAL_TEXT, description="a percentage as a decimal string", examples=["20"]),
]
Timestamp = Annotated[
    str,
    Field(
        description="an ISO 8601 date-time with its UTC offset",
        examples=["2026-11-01T00:00:00+00:00"],
    ),
]
Day = Annotated[str, Field(description="an ISO 8601 date", examples=["2026-11-01"])]
MonthLabel = Annotated[
    str, Field(pattern=r"^\d{4}-\d{2}$", description="a month, YYYY-MM", examples=["2026-11"])
]


class PublicModel(BaseModel):
    """Base of every answer: frozen, and rendered with its fields in declaration order."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)
