"""Small price plans used across the pricing tests."""

from decimal import Decimal as D

from billing.pricing import Model, PricePlan, Tier

GRADUATED = PricePlan(
    Model.GRADUATED,
    (Tier(D(100), D(0)), Tier(D(1000), D("0.10"), D(5)), Tier(None, D("0.05"))),
    "USD",
)
VOLUME = PricePlan(
    Model.VOLUME,
    (Tier(D(100), D(1)), Tier(D(1000), D("0.50"), D(10)), Tier(None, D("0.25"))),
    "USD",
)
PACKAGE = PricePlan(
    Model.PACKAGE,
    (Tier(D(1), D(0)), Tier(D(10), D(2)), Tier(None, D("1.50"))),
    "USD",
    package_size=1000,
)
# The product_analytics table of docs/tier-files.md.
ANALYTICS = PricePlan(
    Model.GRADUATED,
    (
        Tier(D(1_000_000), D(0)),
        Tier(D(2_000_000), D("0.00005")),
        Tier(D(15_000_000), D("0.0000343")),
        Tier(None, D("0.0000090")),
    ),
    "USD",
)
