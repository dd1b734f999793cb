"""Helpers shared by the SNAP tests (no tests here)."""

from __future__ import annotations

from typing import Any

from node.signatures import sha256
from node.snap import (
    BilateralLedger,
    Effect,
    Input,
    NotifyFinal,
    NotifyRefused,
    PersistRecord,
    ReceiveMessages,
    Record,
    SendMessages,
    record_from_wire,
)
from node.wire import SnapMessage, pack, unpack

NOW_MS = 1_700_000_000_000
USD = "1E-2 USD"
EUR = "1E0 EUR"
FRAME = b"signed frame bytes"


def preimage_of(n: int) -> bytes:
    return sha256(b"preimage %d" % n)


def condition_of(n: int) -> bytes:
    return sha256(preimage_of(n))


def check_order(effects: list[Effect]) -> None:
    """Every PersistRecord comes before the (single, last) SendMessages."""
    sends = [i for i, e in enumerate(effects) if isinstance(e, SendMessages)]
    assert len(sends) <= 1
    if sends:
        assert sends[0] == len(effects) - 1
        assert effects[-1].messages  # type: ignore[union-attr]


def run(ledger: BilateralLedger, input: Input, now_ms: int = NOW_MS) -> list[Effect]:
    effects = ledger.handle(input, now_ms)
    check_order(effects)
    return effects


def receive(ledger: BilateralLedger, *messages: SnapMessage, now_ms: int = NOW_MS) -> list[Effect]:
    return run(ledger, ReceiveMessages(messages, FRAME), now_ms)


def records(effects: list[Effect]) -> list[Record]:
    return [e.record for e in effects if isinstance(e, PersistRecord)]


def record_kinds(effects: list[Effect]) -> list[str]:
    return [type(r).__name__ for r in records(effects)]


def sent(effects: list[Effect]) -> list[SnapMessage]:
    return [m for e in effects if isinstance(e, SendMessages) for m in e.messages]


def refusals(effects: list[Effect]) -> list[str]:
    return [e.reason for e in effects if isinstance(e, NotifyRefused)]


def finals(effects: list[Effect]) -> list[NotifyFinal]:
    return [e for e in effects if isinstance(e, NotifyFinal)]


def through_msgpack(value: Any) -> Any:
    return unpack(pack(value), 1 << 30)


def replayed(
    records_so_far: list[Record], ledger: BilateralLedger, **kwargs: Any
) -> BilateralLedger:
    """A ledger rebuilt from the log (through the records' wire form)."""
    units = kwargs.pop("units", {USD: None})
    rebuilt = BilateralLedger(units, **kwargs)
    for record in records_so_far:
        rebuilt.apply(record_from_wire(through_msgpack(record.to_wire())))
    assert rebuilt.to_snapshot() == ledger.to_snapshot()
    return rebuilt
