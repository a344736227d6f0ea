"""Re-pricing closed periods under two catalogues, and the report of what moves. Pure.

A record is priced the way the close priced it (billing/invoicing/close.py): billed units are
min(accepted, limit) and never more than what the period's cap buys at its discount; the
line total is the exact charge rounded half-up, minus its rounded discount. Under the new
catalogue the cap buys a different quantity: when it bound at close, the units it turned away
(`over_limit`) count as demand, so billed = min(accepted + over_limit, what the cap buys at
the new price); a product whose plan is unchanged prices as before.
Amounts are line totals after the percentage discount and before prepaid credit (credit
pays a bill, it does not price it), in major units of the catalogue's currency.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from billing.backtest.records import UsageRecord
from billing.catalog import Catalog
from billing.money import round_to_billing_unit
from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import charge_amount
from billing.pricing.commitments import Bracket
from billing.pricing.discounts import line_amounts
from billing.pricing.plan import PricePlan
from billing.pricing.recommend import Recommender

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT_OF_PERCENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Priced:
    """A record priced under one catalogue: units billed, line total (None: the product or a
    price for the period does not exist in that catalogue), what the cap buys (None: no cap,
    or no limit binds)."""

    billed: Decimal
    total: Decimal | None
    cap_quantity: Decimal | None
    subtotal: Decimal | None = None  # the line at list price (before the discount)


class Prices:
    """One catalogue's plans and cap inversions, each computed once per backtest: thousands
    of records share a product's plan and a handful of cap amounts and discounts."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._plans: dict[tuple[str, dt.datetime, str | None], PricePlan | None] = {}
        self._bought: dict[tuple[int, Decimal, Decimal], Decimal | None] = {}

    def plan(
        self, product: str, start: dt.datetime, customer: str | None = None
    ) -> PricePlan | None:
        """The plan of the period starting at `start`, for `customer` (their override wins:
        docs/pricing-changes.md, "Customer overrides"); None when the product is absent."""
        who = customer if customer is not None and customer in self.catalog.overrides else None
        key = (product, start, who)
        if key not in self._plans:
            found = product in self.catalog.products
            self._plans[key] = self.catalog.plan_for_period(product, start, who) if found else None
        return self._plans[key]

    def bought(self, plan: PricePlan, cap: Decimal, discount: Decimal) -> Decimal | None:
        """What `cap` buys under `plan` at `discount` (max_quantity_within_cap)."""
        key = (id(plan), cap, discount)
        if key not in self._bought:
            self._bought[key] = max_quantity_within_cap(plan, cap, discount)
        return self._bought[key]


# A record's figures on one side: billed units, line total, what the cap buys, subtotal
# (the fields of Priced, in its order); a plain tuple, so the backtest's loop builds no
# object per record.
_Line = tuple[Decimal, Decimal | None, Decimal | None, Decimal | None]


def price_old(catalog: Catalog | Prices, record: UsageRecord) -> Priced:
    """The record as the close priced it under `catalog` (the one its invoices used)."""
    prices = catalog if isinstance(catalog, Prices) else Prices(catalog)
    return Priced(*_old_line(prices, record))


def _old_line(prices: Prices, record: UsageRecord) -> _Line:
    """`price_old`'s figures, as a `_Line`."""
    plan = prices.plan(record.product, record.period_start, record.customer)
    billed = record.accepted if record.limit is None else min(record.accepted, record.limit)
    if plan is None:
        return billed, None, None, None
    bought = None
    if record.cap is not None:
        bought = prices.bought(plan, record.cap, record.discount_percent)
        if bought is not None:
            billed = min(billed, bought)
    discount = record.discount_percent
    subtotal, total = line_amounts(charge_amount(plan, billed), discount, plan.currency)
    return billed, total, bought, subtotal


def price_new(catalog: Catalog | Prices, record: UsageRecord, before: Priced) -> Priced:
    """The record priced under `catalog` (a proposed change), `before` being its old side
    (`price_old`). Units billed start from what the close billed: min(accepted, limit).
    When the cap bound at close (it bought no more than was billed), the units it turned
    away (`over_limit`) are demand too, and the cap buys what it buys at the new price; a
    cap that did not bind (raised later in the period) turned nothing away at close."""
    prices = catalog if isinstance(catalog, Prices) else Prices(catalog)
    return Priced(*_new_line(prices, record, before.billed, before.cap_quantity))


def _new_line(
    prices: Prices, record: UsageRecord, billed_old: Decimal, bought_old: Decimal | None
) -> _Line:
    """`price_new`'s figures, as a `_Line`, from the old side's billed units and cap quantity."""
    plan = prices.plan(record.product, record.period_start, record.customer)
    demand = record.accepted if record.limit is None else min(record.accepted, record.limit)
    binding = bought_old is not None and billed_old >= bought_old
    if binding:
        demand = record.accepted + record.over_limit
    if plan is None:
        return demand, None, None, None
    bought = None
    billed = demand
    if record.cap is not None:
        bought = prices.bought(plan, record.cap, record.discount_percent)
        if bought is not None:
            billed = min(demand, bought)
    discount = record.discount_percent
    subtotal, total = line_amounts(charge_amount(plan, billed), discount, plan.currency)
    return billed, total, bought, subtotal


def _same_plan(old: Prices, new: Prices, record: UsageRecord) -> bool:
    """Whether the record's period has the same tier table on both sides (the plan's
    equality is its model, tiers, currency and package size). The record then prices the
    same: same billed units, same cap inversion, same line (`price_new`)."""
    plan = old.plan(record.product, record.period_start, record.customer)
    return plan is not None and plan == new.plan(
        record.product, record.period_start, record.customer
    )


def percent(delta: Decimal, old: Decimal) -> Decimal | None:
    """delta / old as a percentage rounded half-up to 0.01; None when old is 0 (a move from
    nothing has no percentage)."""
    if old == 0:
        return None
    return (delta * HUNDRED / old).quantize(CENT_OF_PERCENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Move:
    """Old and new amounts of something (a month, a product's month, a customer, the total)."""

    old: Decimal
    new: Decimal

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    @property
    def delta_pct(self) -> Decimal | None:
        return percent(self.delta, self.old)


@dataclass(frozen=True, slots=True)
class CapMove:
    """A spend cap whose purchasing power changes: the quantity it buys (whole units of the
    product) before and after, in its latest period of the range. None: no limit binds."""

    customer: str
    product: str
    month: str
    cap: Decimal
    quantity_old: Decimal | None
    quantity_new: Decimal | None

    @property
    def drop_pct(self) -> Decimal | None:
        """How much less the cap buys, in percent (positive: a drop); None when not known."""
        if self.quantity_old is None or self.quantity_new is None:
            return None
        return percent(self.quantity_old - self.quantity_new, self.quantity_old)


@dataclass(frozen=True, slots=True)
class CommitmentMove:
    """A customer whose recommended commitment changes: the bracket the commitment options
    recommend (docs/discounts.md) for its monthly usage at list price in the range, before
    and after (None: paying as you go saves most). `monthly_old`/`monthly_new`: that usage."""

    customer: str
    monthly_old: Decimal
    monthly_new: Decimal
    bracket_old: Bracket | None
    bracket_new: Bracket | None


@dataclass(frozen=True, slots=True)
class Mismatch:
    """History and code disagree: re-pricing under the old catalogue does not give what the
    invoices billed (`invoiced`; None: nothing billed it)."""

    customer: str
    month: str
    product: str
    invoiced: Decimal | None
    repriced: Decimal | None


@dataclass(slots=True)
class Backtest:
    """The report: moves per month, per product and month, per customer and in total; the
    caps whose purchasing power changes; the mismatches of the old side; and how many
    records were re-priced (and how many were left uncompared as pending)."""

    months: dict[str, Move] = field(default_factory=dict)
    by_product: dict[tuple[str, str], Move] = field(default_factory=dict)
    customers: dict[str, Move] = field(default_factory=dict)
    total: Move = field(default_factory=lambda: Move(ZERO, ZERO))
    caps: list[CapMove] = field(default_factory=list)
    commitments: list[CommitmentMove] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    records: int = 0
    pending: int = 0


class _CustomerSums:
    """One customer's running sums: line totals old and new, the lines at list price old and
    new (for the commitment check), and the months it has records in."""

    __slots__ = ("list_new", "list_old", "months", "new", "old")

    def __init__(self) -> None:
        self.old = self.new = self.list_old = self.list_new = ZERO
        self.months: set[str] = set()


def backtest(old: Catalog, new: Catalog, records: Iterable[UsageRecord]) -> Backtest:
    """Re-price every record under `old` and `new` and sum the moves.

    The old side is proven first, record by record: its total must equal what invoices
    billed (`record.invoiced`) to the cent, else a Mismatch (pending records are not
    compared). A product absent from a catalogue prices at 0.00 on that side.
    """
    report = Backtest()
    months: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    products: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    customers: dict[str, _CustomerSums] = {}
    caps: dict[tuple[str, str], CapMove] = {}
    old_prices, new_prices = Prices(old), Prices(new)
    # NOTE: by product and period, and by customer only for customers with an override
    # on either side (the others share the list plans)
    unchanged: dict[tuple[str, dt.datetime, str | None], bool] = {}
    overridden = old.overrides.keys() | new.overrides.keys()
    # NOTE: per (product, period start): its month and the sums of that month and product
    sums_of: dict[tuple[str, dt.datetime], tuple[str, list[Decimal], list[Decimal]]] = {}
    count = pending = 0
    for record in records:
        count += 1
        billed, old_total, old_bought, old_subtotal = _old_line(old_prices, record)
        period = (record.product, record.period_start)
        plans = (*period, record.customer if record.customer in overridden else None)
        same = unchanged.get(plans)
        if same is None:
            same = unchanged[plans] = _same_plan(old_prices, new_prices, record)
        # NOTE: an unchanged plan bills the same (most products of a diff): priced once
        if same:
            new_total, new_bought, new_subtotal = old_total, old_bought, old_subtotal
        else:
            _, new_total, new_bought, new_subtotal = _new_line(
                new_prices, record, billed, old_bought
            )
        found = sums_of.get(period)
        if found is None:
            label = record.month
            found = sums_of[period] = (label, months[label], products[(record.product, label)])
        month, month_sums, product_sums = found
        old_amount = old_total if old_total is not None else ZERO
        new_amount = new_total if new_total is not None else ZERO
        if record.pending:
            pending += 1
        elif old_amount != (record.invoiced if record.invoiced is not None else ZERO):
            # NOTE: a row billed nothing (no usage, only rejected events) has no line: 0.00
            report.mismatches.append(
                Mismatch(record.customer, month, record.product, record.invoiced, old_total)
            )
        sums = customers.get(record.customer)
        if sums is None:
            sums = customers[record.customer] = _CustomerSums()
        sums.list_old += old_subtotal or ZERO
        sums.list_new += new_subtotal or ZERO
        sums.months.add(month)
        month_sums[0] += old_amount
        month_sums[1] += new_amount
        product_sums[0] += old_amount
        product_sums[1] += new_amount
        sums.old += old_amount
        sums.new += new_amount
        if record.cap is not None and old_bought != new_bought:
            key = (record.customer, record.product)
            if key not in caps or caps[key].month <= month:
                caps[key] = CapMove(
                    record.customer, record.product, month, record.cap, old_bought, new_bought
                )
    report.records, report.pending = count, pending
    report.months = {m: Move(*sums) for m, sums in sorted(months.items())}
    report.by_product = {k: Move(*sums) for k, sums in sorted(products.items())}
    ordered = sorted(customers.items())
    report.customers = {c: Move(sums.old, sums.new) for c, sums in ordered}
    report.total = Move(
        sum((m.old for m in report.months.values()), ZERO),
        sum((m.new for m in report.months.values()), ZERO),
    )
    report.caps = sorted(caps.values(), key=lambda c: (c.customer, c.product))
    report.commitments = _commitment_moves(old, new, ordered)
    return report


def _commitment_moves(
    old: Catalog, new: Catalog, customers: list[tuple[str, _CustomerSums]]
) -> list[CommitmentMove]:
    """Customers whose recommended bracket differs between the catalogues' schedules, for
    their average monthly usage at list price over the months they have records in
    (`customers` in order of their ids)."""
    moves = []
    # NOTE: one Recommender per schedule: its per-bracket constants are worked out once
    recommend_old = Recommender(old.schedule) if old.schedule is not None else None
    recommend_new = Recommender(new.schedule) if new.schedule is not None else None
    same_schedule = old.schedule == new.schedule
    for customer, sums in customers:
        count = Decimal(len(sums.months))
        monthly_old, monthly_new = (
            round_to_billing_unit(amount / count, old.currency)
            for amount in (sums.list_old, sums.list_new)
        )
        if monthly_old == monthly_new and same_schedule:
            continue  # the same usage under the same schedule: the same recommendation
        before = recommend_old(monthly_old) if recommend_old is not None else None
        after = recommend_new(monthly_new) if recommend_new is not None else None
        if before != after:
            moves.append(CommitmentMove(customer, monthly_old, monthly_new, before, after))
    return moves
