"""QuotaState.moved, admission's fast copy, keeps every field it is not given: a field added
to QuotaState and forgotten there fails here."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from billing.caps.quota import QuotaState

CHANGED = {"accepted", "over_limit_events", "over_limit_quantity"}


def test_moved_is_replace_of_the_three_fields():
    values = {
        "accepted": Decimal("12.5"),
        "cap_amount": Decimal("100"),
        "cap_discount": Decimal("10"),
        "limit_quantity": Decimal("400"),
        "over_limit_events": 3,
        "over_limit_quantity": Decimal("7"),
        "alerts_fired": frozenset({"cap_50"}),
    }
    assert set(values) == {field.name for field in dataclasses.fields(QuotaState)}
    state = QuotaState(**values)
    for field in dataclasses.fields(QuotaState):  # every field differs from its default
        assert values[field.name] != field.default, field.name
    changes = {"accepted": Decimal(20), "over_limit_events": 4, "over_limit_quantity": Decimal(8)}
    assert state.moved(**changes) == dataclasses.replace(state, **changes)
    assert set(changes) == CHANGED
