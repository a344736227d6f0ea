"""A product's quota in one customer's billing period: its terms, its state, and the rules
that move it. Pure: no I/O (docs/spend-caps.md).

The state (`QuotaState`) is kept on the period's running-totals row, which metering owns and
maps to and from this type in one place (metering/store.py); every change to it goes
through the functions here:

- `reprice` brings the state's limit in line with the terms now in force (a new cap, a
  discount, a new period's first event), exactly once per change;
- `admit` decides a run of events in order;
- `alerts_due` lists the alerts the state has reached that have not fired yet, and
  `with_alerts` records them.

The arithmetic under them:

- `limit_for` moves a period's `limit_quantity` when the cap (or the discount it is
  measured after) changes: it becomes the new `q_max`, except that it never drops below what
  the period has already billed. One rule covers raising (the new q_max is above the billed
  quantity), lowering below the accrued usage (the limit freezes at the billed quantity, so
  accrued usage stays billed and nothing more is accepted) and a new period (nothing billed
  yet: the limit is q_max).
- `admits` decides one event: accepted while the accepted quantity is below the limit; the
  event that crosses it is accepted too; later ones are over the limit.
- `alerts_due` lists the alerts a period's state calls for that have not fired yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from billing.customers.periods import Period
from billing.money import EXACT, HUNDRED, ZERO, display_amount, group_quantity
from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import charge
from billing.pricing.discounts import line_figures
from billing.pricing.plan import PricePlan

FREE_ALLOWANCE = "free_allowance"
# Recorded once a period when a product becomes limited by its cap, whatever the customer's
# thresholds: the spend_cap.reached event (no alert of its own; docs/webhooks.md).
CAP_REACHED = "limited"
DEFAULT_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))


def cap_alert(threshold: Decimal) -> str:
    """The kind of the alert at `threshold` percent of a cap: cap_50, cap_80, cap_100."""
    return f"cap_{threshold.normalize():f}"


def billed_quantity(accepted: Decimal, limit: Decimal | None) -> Decimal:
    """What a period bills: min(accepted, limit_quantity)."""
    return accepted if limit is None or accepted <= limit else limit


def limit_for(
    plan: PricePlan,
    cap: Decimal | None,
    discount_percent: Decimal,
    accepted: Decimal,
    current_limit: Decimal | None,
) -> Decimal | None:
    """The period's new limit_quantity after its cap or discount changed (None: no limit)."""
    if cap is None:
        return None
    q_max = max_quantity_within_cap(plan, cap, discount_percent)
    if q_max is None:
        return None
    return max(q_max, billed_quantity(accepted, current_limit))


def admits(accepted: Decimal, limit: Decimal | None) -> bool:
    """Whether the next event is accepted, given the quantity accepted so far."""
    return limit is None or accepted < limit


def is_limited(accepted: Decimal, limit: Decimal | None) -> bool:
    """True once nothing more is accepted this period."""
    return limit is not None and accepted >= limit


def line_total(plan: PricePlan, quantity: Decimal, discount_percent: Decimal) -> Decimal:
    """The product's line total for `quantity`: rounded, after the percentage discount."""
    return line_figures(charge(plan, quantity).amount, discount_percent, plan.currency).total


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaTerms:
    """What one product's period is held to: the plan it is priced at, its cap (in the
    catalogue's currency, after the discount; None: no cap) and the percentage discount."""

    product_name: str
    plan: PricePlan
    cap: Decimal | None
    discount_percent: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaState:
    """A product's quota in one period, as stored on its running-totals row.

    `accepted` is the quantity accepted so far (in the product's units); `limit_quantity`
    the quantity past which nothing more is accepted (None: unlimited), computed from
    `cap_amount` and `cap_discount`, which record the terms it was computed from;
    over-limit events are counted apart and never billed; `alerts_fired` holds the kinds
    of alert already fired this period.
    """

    accepted: Decimal = ZERO
    cap_amount: Decimal | None = None
    cap_discount: Decimal | None = None
    limit_quantity: Decimal | None = None
    over_limit_events: int = 0
    over_limit_quantity: Decimal = ZERO
    alerts_fired: frozenset[str] = frozenset()

    def moved(
        self, *, accepted: Decimal, over_limit_events: int, over_limit_quantity: Decimal
    ) -> QuotaState:
        """The state after a run of events: these three changed, the rest kept. (What
        `dataclasses.replace` does, for about 60 % of its cost: admission builds one per running
        total of a batch. tests/caps/test_quota_state.py checks that it keeps every field.)"""
        return QuotaState(
            accepted=accepted,
            cap_amount=self.cap_amount,
            cap_discount=self.cap_discount,
            limit_quantity=self.limit_quantity,
            over_limit_events=over_limit_events,
            over_limit_quantity=over_limit_quantity,
            alerts_fired=self.alerts_fired,
        )

    @property
    def limited(self) -> bool:
        """True once nothing more is accepted this period."""
        return is_limited(self.accepted, self.limit_quantity)

    @property
    def billed(self) -> Decimal:
        """The quantity the period bills: min(accepted, limit_quantity)."""
        return billed_quantity(self.accepted, self.limit_quantity)


def recorded_terms(
    cap: Decimal | None, discount_percent: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """What a state records of the terms its limit was worked out under, as
    (`cap_amount`, `cap_discount`): the discount only with a cap (an uncapped limit does
    not depend on it)."""
    return cap, (discount_percent if cap is not None else None)


def reprice(state: QuotaState, terms: QuotaTerms) -> QuotaState:
    """The state with its limit in line with `terms` (the same state if already in line).

    A capped period's limit is worked out again from its terms each time (`limit_for`):
    with the same cap, discount and plan it is the limit already stored (the limit is
    max(what the cap buys, what was already accepted within the old limit)), and a change
    made since is applied at once — a new cap or discount, a new period's first event, or
    a new plan for the period (a customer override deployed after the period began:
    docs/pricing-changes.md). An uncapped period that stays uncapped is not touched.
    """
    if terms.cap is None and state.cap_amount is None:
        return state
    _, discount = recorded_terms(terms.cap, terms.discount_percent)
    limit = limit_for(
        terms.plan, terms.cap, terms.discount_percent, state.accepted, state.limit_quantity
    )
    if (state.cap_amount, state.cap_discount, state.limit_quantity) == (terms.cap, discount, limit):
        return state
    return replace(state, limit_quantity=limit, cap_amount=terms.cap, cap_discount=discount)


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The state after a run of events, and for each event (in order) whether it was
    accepted (True) or stored as over the limit (False)."""

    state: QuotaState
    accepted: tuple[bool, ...]


def admit(state: QuotaState, quantities: Sequence[Decimal], *, rule: str = "sum") -> Admission:
    """Decide a run of events of one product's period, in the order given; `rule` is how an
    accepted event moves the period's quantity: "sum" adds it (the aggregations sum, count
    and unique_count, whose events bring 1 or 0), "max" keeps the largest
    (docs/tier-files.md, "Aggregations").

    NOTE: PostHog-style, an event is accepted while the accepted quantity is below the
    limit, so the event that crosses it is accepted too (a customer never loses half an
    event); later ones are over the limit. The rule is the same for every aggregation. Sums
    run in the EXACT context: sums of 10^15-sized quantities need more than 28 digits.
    """
    accepted, limit = state.accepted, state.limit_quantity
    over_events, over_quantity = state.over_limit_events, state.over_limit_quantity
    add = EXACT.add if rule == "sum" else max
    flags: list[bool] = []
    for quantity in quantities:
        if limit is None or accepted < limit:
            accepted = add(accepted, quantity)
            flags.append(True)
        else:
            over_events += 1
            over_quantity = add(over_quantity, quantity)
            flags.append(False)
    moved = state.moved(
        accepted=accepted, over_limit_events=over_events, over_limit_quantity=over_quantity
    )
    return Admission(state=moved, accepted=tuple(flags))


def admit_latest(
    state: QuotaState,
    readings: Sequence[tuple[Decimal, dt.datetime]],
    latest_at: dt.datetime | None,
) -> tuple[Admission, dt.datetime | None]:
    """Decide a run of readings (quantity, when) of a product aggregated by "latest": the
    period's quantity is the reading with the latest time (an earlier reading arriving late
    changes nothing; of two at the same time, the one that arrived last). The crossing
    rule of `admit` holds: a reading is accepted while the quantity is below the limit.
    Also returns the time of the reading that now stands."""
    accepted, limit = state.accepted, state.limit_quantity
    over_events, over_quantity = state.over_limit_events, state.over_limit_quantity
    flags: list[bool] = []
    for quantity, at in readings:
        if limit is None or accepted < limit:
            if latest_at is None or at >= latest_at:
                accepted, latest_at = quantity, at
            flags.append(True)
        else:
            over_events += 1
            over_quantity = EXACT.add(over_quantity, quantity)
            flags.append(False)
    moved = replace(
        state, accepted=accepted, over_limit_events=over_events, over_limit_quantity=over_quantity
    )
    return Admission(state=moved, accepted=tuple(flags)), latest_at


@dataclass(frozen=True, slots=True)
class AlertDue:
    """One alert to send: its kind (`cap_80`, `free_allowance`), the message people read, and
    the lower cap thresholds `passed` at the same moment, recorded as fired without an alert
    of their own (one event that jumps from 40 % to the cap sends one alert, not three)."""

    kind: str
    message: str
    passed: tuple[str, ...] = ()
    silent: bool = False  # an event only (CAP_REACHED), not an alert the customer reads


def with_alerts(state: QuotaState, due: Iterable[AlertDue]) -> QuotaState:
    """The state with the alerts `due` recorded as fired."""
    kinds = frozenset(kind for item in due for kind in (item.kind, *item.passed))
    return replace(state, alerts_fired=state.alerts_fired | kinds) if kinds else state


def alerts_due(
    state: QuotaState,
    terms: QuotaTerms,
    *,
    thresholds: Iterable[Decimal],
    free_allowance_alert: bool,
) -> list[AlertDue]:
    """Alerts the period's state has reached that have not fired yet, in threshold order.

    A threshold below 100 % fires when the billed line total reaches that share of the cap;
    100 % fires when it reaches the cap or when the product is limited (the line total at
    q_max is usually a little under the cap). A cap of 0 fires only its 100 % alert.
    """
    plan, product_name, cap = terms.plan, terms.product_name, terms.cap
    fired = state.alerts_fired
    due: list[AlertDue] = []
    billed = state.billed
    allowance = plan.free_allowance
    if (
        free_allowance_alert
        and FREE_ALLOWANCE not in fired
        and allowance is not None
        and allowance > 0
        and billed >= allowance
    ):
        due.append(
            AlertDue(
                FREE_ALLOWANCE,
                f"{product_name}: the free allowance of {group_quantity(allowance)} units "
                "is used up",
            )
        )
    if cap is None:
        return due
    limited = state.limited
    shown_cap = display_amount(cap, plan.currency)
    if limited and CAP_REACHED not in fired:
        text = f"{product_name}: the spend cap of {shown_cap} is reached"
        due.append(AlertDue(CAP_REACHED, text, silent=True))
    pending = [t for t in sorted(set(thresholds)) if cap_alert(t) not in fired]
    if not pending:
        return due
    total = line_total(plan, billed, terms.discount_percent)
    shown_total = display_amount(total, plan.currency)
    reached: list[Decimal] = []
    for threshold in pending:
        share = EXACT.divide(EXACT.multiply(cap, threshold), HUNDRED)
        if (cap > ZERO and total >= share) or (threshold >= HUNDRED and limited):
            reached.append(threshold)
    if not reached:
        return due
    highest = reached[-1]  # `pending` is sorted: the others are passed on the way
    if highest >= HUNDRED and limited:
        text = (
            f"{product_name}: the spend cap of {shown_cap} is reached; "
            "further usage is not accepted this period"
        )
    else:
        text = (
            f"{product_name}: {highest.normalize():f}% of the spend cap of {shown_cap} "
            f"is used ({shown_total})"
        )
    passed = tuple(cap_alert(t) for t in reached[:-1])
    due.append(AlertDue(cap_alert(highest), text, passed))
    return due


@dataclass(frozen=True, slots=True)
class ProductQuota:
    """One product's quota in one period, as the caps and quota views show it: the state as
    the next event will find it (repriced under the terms in force)."""

    product: str
    period: Period
    cap: Decimal | None
    discount_percent: Decimal
    q_max: Decimal | None
    limit_quantity: Decimal | None
    accepted: Decimal
    billed: Decimal
    accrued: Decimal  # the line total of the billed quantity, after the discount
    over_limit_events: int
    over_limit_quantity: Decimal
    alerts_fired: tuple[str, ...]

    @property
    def limited(self) -> bool:
        return is_limited(self.accepted, self.limit_quantity)

    @property
    def status(self) -> str:
        if self.limited:
            return "limited"
        if self.cap is not None and any(k.startswith("cap_") for k in self.alerts_fired):
            return "alerted"
        return "ok"


def view(state: QuotaState, terms: QuotaTerms, product: str, period: Period) -> ProductQuota:
    """How `state` reads under `terms`: repriced first, as the next event would find it."""
    shown = reprice(state, terms)
    q_max = None
    if terms.cap is not None:
        q_max = max_quantity_within_cap(terms.plan, terms.cap, terms.discount_percent)
    return ProductQuota(
        product=product,
        period=period,
        cap=terms.cap,
        discount_percent=terms.discount_percent,
        q_max=q_max,
        limit_quantity=shown.limit_quantity,
        accepted=shown.accepted,
        billed=shown.billed,
        accrued=line_total(terms.plan, shown.billed, terms.discount_percent),
        over_limit_events=shown.over_limit_events,
        over_limit_quantity=shown.over_limit_quantity,
        alerts_fired=tuple(sorted(shown.alerts_fired)),
    )
