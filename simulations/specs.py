"""Parsing what people type on the command line: durations, ranges, topologies, workloads.

Rules:
- Every parser takes the text as typed and returns a typed value, or raises
  ``SimulationError`` with a one-line message that names the flag and shows a
  valid example. Nothing here touches randomness or the clock.
- Durations are ``120``, ``120s``, ``250ms``, ``2m`` or ``1h``; they come back in
  milliseconds. A delay is one duration or a range ``5..200ms`` (the unit of the
  right end applies to both ends when the left has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulations.errors import SimulationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
TOPOLOGY_KINDS = ("ring", "line", "full", "star", "random")
WORKLOAD_KINDS = ("transfers", "offers")


def parse_duration_ms(text: str, flag: str, *, default_unit: str = "s") -> int:
    """``90`` (in ``default_unit``), ``90s``, ``250ms``, ``2m``, ``1h`` -> milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise SimulationError(f"{flag} {text!r} is not a duration like 90s, 250ms, 2m or 1h")
    unit = match.group(2) or default_unit
    return round(float(match.group(1)) * _UNIT_MS[unit])


def parse_delay_ms(text: str, flag: str = "--delay") -> tuple[int, int]:
    """``5..200ms`` -> (5, 200); ``50ms`` -> (50, 50). The right end's unit is the default."""
    low_text, separator, high_text = text.partition("..")
    if not separator:
        value = parse_duration_ms(text, flag, default_unit="ms")
        return value, value
    high_match = _DURATION.match(high_text)
    unit = (high_match.group(2) if high_match else None) or "ms"
    low = parse_duration_ms(low_text, flag, default_unit=unit)
    high = parse_duration_ms(high_text, flag, default_unit=unit)
    if low > high:
        raise SimulationError(f"{flag} {text!r}: the low end is above the high end")
    return low, high


def parse_seed_range(text: str, flag: str = "--seeds") -> list[int]:
    """``1..500`` -> [1, ..., 500]; ``7`` -> [7]."""
    low_text, separator, high_text = text.partition("..")
    try:
        low = int(low_text)
        high = int(high_text) if separator else low
    except ValueError:
        raise SimulationError(f"{flag} {text!r} is not a range like 1..500") from None
    if low < 0 or high < low:
        raise SimulationError(f"{flag} {text!r}: need 0 <= low <= high")
    return list(range(low, high + 1))


def parse_probability(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SimulationError(f"{flag} {text!r} is not a number like 0.2") from None
    if not 0.0 <= value <= 1.0:
        raise SimulationError(f"{flag} {text!r} must be between 0 and 1")
    return value


def _parameters(text: str, flag: str) -> tuple[str, dict[str, str]]:
    """``kind:a=1,b=2`` -> ("kind", {"a": "1", "b": "2"})."""
    kind, _, rest = text.partition(":")
    parameters: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        name, equals, value = item.partition("=")
        if not equals or not name or not value:
            raise SimulationError(f"{flag} {text!r}: {item!r} is not NAME=VALUE")
        parameters[name.strip()] = value.strip()
    return kind.strip(), parameters


@dataclass(frozen=True)
class TopologySpec:
    """Which links the mesh has: ``ring``, ``line``, ``full``, ``star`` or ``random:degree=K``."""

    kind: str
    degree: int = 0

    def __str__(self) -> str:
        return f"random:degree={self.degree}" if self.kind == "random" else self.kind


def parse_topology(text: str, flag: str = "--topology") -> TopologySpec:
    kind, parameters = _parameters(text, flag)
    if kind not in TOPOLOGY_KINDS:
        raise SimulationError(
            f"{flag} {text!r}: choose one of ring, line, full, star, random:degree=K"
        )
    if kind != "random":
        if parameters:
            raise SimulationError(f"{flag} {text!r}: {kind} takes no parameters")
        return TopologySpec(kind)
    unknown = set(parameters) - {"degree"}
    if unknown:
        raise SimulationError(f"{flag} {text!r}: unknown parameter {sorted(unknown)[0]!r}")
    degree = _positive_int(parameters.get("degree", "4"), flag, "degree")
    if degree < 2:
        raise SimulationError(f"{flag} {text!r}: degree must be at least 2")
    return TopologySpec("random", degree)


def _positive_int(text: str, flag: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SimulationError(f"{flag}: {name}={text!r} is not an integer") from None
    if value <= 0:
        raise SimulationError(f"{flag}: {name} must be positive")
    return value


def _fraction(text: str, flag: str, name: str) -> float:
    return parse_probability(text, f"{flag} {name}=")


@dataclass(frozen=True)
class WorkloadSpec:
    """Transfers offered through the operator API.

    ``rate`` transfers per simulated second over the whole mesh; a fraction
    ``conditional`` are hashlocked against an invoice of the payee, and a
    fraction ``unknown`` are hashlocked against a condition nobody can open
    (they must expire and be rejected on both sides).
    """

    rate: float
    conditional: float = 0.3
    unknown: float = 0.05
    amount_max: int = 10_000

    def __str__(self) -> str:
        return (
            f"transfers:rate={self.rate:g},conditional={self.conditional:g},"
            f"unknown={self.unknown:g},amount={self.amount_max}"
        )


@dataclass(frozen=True)
class OffersSpec:
    """Exchange offers made, cancelled and taken by customers of every node.

    ``rate`` offers made per simulated second over the whole mesh; ``takes``
    takes per second (same-bank and across validators); a share ``cancel`` of
    the offers is cancelled by its maker later; ``customers`` per node;
    ``transfers`` SNAP transfers per second on top (the transfers workload).
    """

    rate: float
    takes: float
    cancel: float = 0.2
    customers: int = 3
    transfers: float = 0.0

    def __str__(self) -> str:
        return (
            f"offers:rate={self.rate:g},takes={self.takes:g},cancel={self.cancel:g},"
            f"customers={self.customers},transfers={self.transfers:g}"
        )

    @property
    def transfer_spec(self) -> WorkloadSpec:
        """The plain transfers that run alongside."""
        return WorkloadSpec(rate=self.transfers)


AnyWorkloadSpec = WorkloadSpec | OffersSpec


def _rate(parameters: dict[str, str], name: str, default: str, flag: str, text: str) -> float:
    try:
        rate = float(parameters.get(name, default))
    except ValueError:
        raise SimulationError(f"{flag} {text!r}: {name} must be a number") from None
    if not rate >= 0:
        raise SimulationError(f"{flag} {text!r}: {name} must be 0 or more")
    return rate


def parse_workload(text: str, flag: str = "--workload") -> AnyWorkloadSpec:
    kind, parameters = _parameters(text, flag)
    if kind not in WORKLOAD_KINDS:
        raise SimulationError(f"{flag} {text!r}: the workload is transfers:rate=N or offers:rate=N")
    if kind == "offers":
        return _parse_offers(text, flag, parameters)
    unknown = set(parameters) - {"rate", "conditional", "unknown", "amount"}
    if unknown:
        raise SimulationError(f"{flag} {text!r}: unknown parameter {sorted(unknown)[0]!r}")
    rate = _rate(parameters, "rate", "10", flag, text)
    spec = WorkloadSpec(
        rate=rate,
        conditional=_fraction(parameters.get("conditional", "0.3"), flag, "conditional"),
        unknown=_fraction(parameters.get("unknown", "0.05"), flag, "unknown"),
        amount_max=_positive_int(parameters.get("amount", "10000"), flag, "amount"),
    )
    if spec.conditional + spec.unknown > 1.0:
        raise SimulationError(f"{flag} {text!r}: conditional + unknown must be at most 1")
    return spec


def _parse_offers(text: str, flag: str, parameters: dict[str, str]) -> OffersSpec:
    unknown = set(parameters) - {"rate", "takes", "cancel", "customers", "transfers"}
    if unknown:
        raise SimulationError(f"{flag} {text!r}: unknown parameter {sorted(unknown)[0]!r}")
    rate = _rate(parameters, "rate", "2", flag, text)
    return OffersSpec(
        rate=rate,
        takes=_rate(parameters, "takes", f"{rate!r}", flag, text),
        cancel=_fraction(parameters.get("cancel", "0.2"), flag, "cancel"),
        customers=_positive_int(parameters.get("customers", "3"), flag, "customers"),
        transfers=_rate(parameters, "transfers", "0", flag, text),
    )
