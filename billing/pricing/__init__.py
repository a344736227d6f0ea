"""Pure pricing arithmetic: tier tables, charge models, cap inversion, discounts, quotes.

Nothing here touches a database, the web, Stripe or the clock: every function takes
numbers and returns numbers (with the working shown), so it can be tested with tables.
"""

from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import ChargeResult, charge
from billing.pricing.commitments import (
    Bracket,
    CommitmentOption,
    CommitmentQuote,
    CommitmentSchedule,
    commitment_options,
    quote_commitment,
)
from billing.pricing.discounts import LineFigures, line_figures
from billing.pricing.plan import Model, PricePlan, Tier, TierCharge
from billing.pricing.quote import Quote, QuoteLine, build_quote

__all__ = [
    "Bracket",
    "ChargeResult",
    "CommitmentOption",
    "CommitmentQuote",
    "CommitmentSchedule",
    "LineFigures",
    "Model",
    "PricePlan",
    "Quote",
    "QuoteLine",
    "Tier",
    "TierCharge",
    "build_quote",
    "charge",
    "commitment_options",
    "line_figures",
    "max_quantity_within_cap",
    "quote_commitment",
]
