"""SNAP units and amounts as people write them.

Rules:
- A unit is ``1E<exponent> <CODE>``, e.g. ``1E-2 USD``: amounts on the wire are
  integers of that unit. A bare code (``USD``) on the command line means the
  unit configured for that code, or ``1E-2 CODE`` when defining a new one.
- People type and read decimals in the currency (``12.50``); a decimal that
  is not a whole number of units is refused, never rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from node.limits import AMOUNT_MAX
from node.wire import valid_unit

DEFAULT_EXPONENT = -2


class AmountError(ValueError):
    """Raised when a unit or an amount typed by a person is not valid."""


def unit_exponent(unit: str) -> int:
    assert valid_unit(unit), unit
    return int(unit.split(" ", 1)[0][2:])


def unit_code(unit: str) -> str:
    return unit.split(" ", 1)[1]


def normalize_unit(text: str) -> str:
    """``USD`` -> ``1E-2 USD``; a full unit is checked and returned."""
    text = text.strip()
    unit = text if " " in text else f"1E{DEFAULT_EXPONENT} {text}"
    if not valid_unit(unit):
        raise AmountError(f"unit {text!r} is not like 'USD' or '1E-2 USD'")
    return unit


def resolve_unit(text: str, known: list[str]) -> str:
    """Find the configured unit meant by ``text`` (a full unit or a bare code)."""
    if " " in text:
        unit = normalize_unit(text)
        if unit not in known:
            raise AmountError(f"unit {unit!r} is not configured (known: {', '.join(known)})")
        return unit
    matches = [unit for unit in known if unit_code(unit) == text]
    if len(matches) != 1:
        raise AmountError(
            f"unit {text!r} matches {len(matches)} configured units "
            f"(known: {', '.join(known) or 'none'})"
        )
    return matches[0]


def parse_amount(text: str, unit: str) -> int:
    """``"12.50"`` in ``1E-2 USD`` -> 1250. Refuses fractions of a unit, zero, negatives."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise AmountError(f"amount {text!r} is not a number")
    scaled = value.scaleb(-unit_exponent(unit))
    if scaled != scaled.to_integral_value():
        raise AmountError(f"amount {text} is finer than the unit {unit}")
    amount = int(scaled)
    if not 0 < amount <= AMOUNT_MAX:
        raise AmountError(f"amount {text} must be positive and at most {AMOUNT_MAX} units")
    return amount


def format_amount(amount: int, unit: str) -> str:
    """1250 in ``1E-2 USD`` -> ``"12.50"``."""
    exponent = unit_exponent(unit)
    if exponent >= 0:
        return str(amount * 10**exponent)
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(-exponent + 1, "0")
    return f"{sign}{digits[:exponent]}.{digits[exponent:]}"
