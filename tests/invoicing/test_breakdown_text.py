"""A usage line's tier breakdown (its stored `detail`) is the JSON of its tiers, whatever
the plan and quantity: the text is built from cached per-tier pieces, and must equal
`json.dumps` of the whole list, value for value, including equal Decimals written
differently (1000, 1E+3, 1000.000)."""

import json
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from billing.invoicing.calculate import _with_split, breakdown, read_detail
from billing.money import format_quantity
from billing.pricing import charge
from tests.pricing.strategies import plans


def _reference(result) -> str:
    return json.dumps(
        [
            {
                "from": format_quantity(t.lower),
                "up_to": None if t.up_to is None else format_quantity(t.up_to),
                "quantity": format_quantity(t.quantity),
                "unit_price": format_quantity(t.unit_price),
                "flat_fee": format_quantity(t.flat_fee),
                "amount": format_quantity(t.amount),
            }
            for t in result.tiers
        ],
        separators=(",", ":"),
    )


WRITTEN = {
    "as is": lambda q: q,
    "normalized": lambda q: q.normalize(),  # 1E+3
    "with decimals": lambda q: q.quantize(D("0.001")),  # 1000.000
}


@given(plans(), st.integers(0, 10**7), st.sampled_from(sorted(WRITTEN)))
def test_the_breakdown_is_the_json_of_its_tiers(plan, quantity, way):
    # the same quantity written another way prices and reads the same
    written = WRITTEN[way](D(quantity))
    result = charge(plan, written)
    text = breakdown(result)
    assert text == _reference(result)
    assert text == breakdown(charge(plan, D(quantity)))
    assert json.loads(text) == json.loads(_reference(charge(plan, D(quantity))))


NAMES = st.text(min_size=1, max_size=8)  # any text: non-ASCII and quotes escape alike


@given(
    plans(),
    st.integers(0, 10**7),
    st.lists(st.tuples(st.dictionaries(NAMES, NAMES, max_size=2), st.integers(1, 10**6))),
)
def test_a_line_split_by_dimension_keeps_its_tiers_text_and_is_valid_json(plan, quantity, parts):
    """The detail of a line with breakdowns is `json.dumps` of {"tiers", "breakdown"}: the
    tier text is spliced in as is, never parsed and written again."""
    result = charge(plan, D(quantity))
    split = [
        {"dimensions": names, "quantity": str(q), "amount": format_quantity(D(q) / 7)}
        for names, q in parts
    ]
    text = _with_split(breakdown(result), split)
    expected = {"tiers": json.loads(_reference(result)), "breakdown": split}
    assert text == json.dumps(expected, separators=(",", ":"))
    assert read_detail(text) == (expected["tiers"], split)
