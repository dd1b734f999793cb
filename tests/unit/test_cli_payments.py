"""The payment CLI's parsing of what the operator types."""

from __future__ import annotations

import pytest

from node.cli_payments import parse_fee
from node.units import AmountError

UNIT = "1E-2 USD"


def test_a_fee_bound_may_be_zero() -> None:
    assert parse_fee("0", UNIT) == 0
    assert parse_fee("0.00", UNIT) == 0


def test_a_fee_bound_is_an_amount_in_the_currency() -> None:
    assert parse_fee("0.10", UNIT) == 10
    for bad in ("-1", "0.001", "ten", "nan"):
        with pytest.raises(AmountError):
            parse_fee(bad, UNIT)
