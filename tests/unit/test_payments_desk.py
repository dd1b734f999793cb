"""The payments desk's defaults for the operator API."""

from __future__ import annotations

from node.limits import AMOUNT_MAX
from node.payments_desk import max_fee_of


def test_max_fee_defaults_to_one_percent_rounded_up() -> None:
    assert max_fee_of({"amount": 10_000}) == 100
    assert max_fee_of({"amount": 10_001}) == 101
    assert max_fee_of({"amount": 1}) == 1
    assert max_fee_of({"amount": AMOUNT_MAX}) <= AMOUNT_MAX


def test_an_explicit_max_fee_wins_even_zero() -> None:
    assert max_fee_of({"amount": 10_000, "max_fee": 0}) == 0
    assert max_fee_of({"amount": 10_000, "max_fee": 5_000}) == 5_000
