"""The Recommender's shortcut makes the choice commitment_options makes (docs/discounts.md)."""

from decimal import Decimal as D

from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.pricing import Bracket, CommitmentSchedule, commitment_options
from billing.pricing.commitments import Release
from billing.pricing.recommend import Recommender, recommended_bracket

SHIPPED = CommitmentSchedule(
    currency="USD",
    min_purchase=D(3000),
    release=Release.MONTHLY,
    rollover_percent=D(50),
    topup_months=3,
    brackets=tuple(
        Bracket(years, D(credit), D(percent))
        for years, offset in ((1, 0), (2, 5), (3, 10))
        for credit, percent in (
            (3000, 10 + offset),
            (20000, 20 + offset),
            (60000, 25 + offset),
            (100000, 35 + offset),
        )
    ),
)


def _expected(schedule, monthly):
    chosen = [o.quote.bracket for o in commitment_options(schedule, monthly) if o.recommended]
    return chosen[0] if chosen else None


@st.composite
def schedules(draw):
    currency = draw(st.sampled_from(["USD", "JPY", "KWD"]))
    digits = {"USD": 2, "JPY": 0, "KWD": 2}[currency]
    amounts = st.integers(0, 200_000).map(lambda n: D(n * 50))
    percents = st.integers(0, 10_000).map(lambda n: D(n).scaleb(-2))
    brackets = draw(
        st.lists(st.builds(Bracket, st.integers(1, 3), amounts, percents), min_size=1, max_size=8)
    )
    return (
        CommitmentSchedule(
            currency=currency,
            min_purchase=draw(amounts),
            release=Release.MONTHLY,
            rollover_percent=D(50),
            topup_months=3,
            brackets=tuple(brackets),
        ),
        digits,
    )


@settings(max_examples=300)
@given(schedules(), st.data())
def test_the_recommender_chooses_what_commitment_options_recommends(drawn, data):
    schedule, digits = drawn
    recommend = Recommender(schedule)
    edges = [b.min_credit for b in schedule.brackets] + [schedule.min_purchase]
    near = st.sampled_from(edges).flatmap(
        lambda credit: st.integers(-3, 3).map(
            lambda k: max(D(0), (credit / 12).quantize(D(1).scaleb(-digits)) + k)
        )
    )
    anywhere = st.integers(0, 10**9).map(lambda n: D(n).scaleb(-digits))
    for monthly in data.draw(st.lists(st.one_of(near, anywhere), min_size=1, max_size=10)):
        assert recommend(monthly) == _expected(schedule, monthly), monthly


@given(st.integers(0, 2_000_000).map(lambda n: D(n).scaleb(-2)))
@example(D("1190.00"))
@example(D("1540.00"))
@example(D("250.00"))
@example(D("1666.66"))
@example(D("1666.67"))
def test_the_shipped_schedule(monthly):
    assert recommended_bracket(SHIPPED, monthly) == _expected(SHIPPED, monthly)
