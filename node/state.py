"""The whole node's state: one SNAP bilateral ledger per peer, and the node's invoices.

Rules:
- The state changes only through log records, by ``apply_log_record``; the
  live path appends a record and applies the same record, and recovery
  replays the log through the same function, so recovery is exact.
- Decisions are made once, live, inside the cores; a record says what was
  decided, so replay never depends on the config of the day (a lowered credit
  limit does not undo yesterday's accepted transfer).
- A peer that left the config keeps its ledger (its history and balances
  stay); it just gets no new proposals.
- Pure: no I/O, no clock, no randomness. The shell supplies preimages and
  ``now_ms``.

A log record is a msgpack map: ``{"t": "snap", "peer": key, "r": record}`` for
a SNAP record, or ``{"t": "invoice", "preimage": bytes, "amount": int,
"unit": str, "created_ms": int}`` for an invoice the node made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.limits import (
    AMOUNT_MAX,
    HASH_BYTES,
    PUBLIC_KEY_BYTES,
    SNAPSHOT_BYTES_MAX,
    UNIT_LENGTH_MAX,
)
from node.signatures import sha256
from node.snap.events import Effect, Input, PersistRecord
from node.snap.ledger import BilateralLedger
from node.snap.records import Record, record_from_wire
from node.wire import (
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    pack,
    require_bytes,
    require_int,
    require_str,
    unpack,
)

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Invoice:
    preimage: bytes
    amount: int
    unit: str
    created_ms: int

    @property
    def condition(self) -> bytes:
        return sha256(self.preimage)


def snap_log_record(peer_key: bytes, record: Record) -> bytes:
    return pack({"t": "snap", "peer": peer_key, "r": record.to_wire()})


def invoice_log_record(invoice: Invoice) -> bytes:
    return pack(
        {
            "t": "invoice",
            "preimage": invoice.preimage,
            "amount": invoice.amount,
            "unit": invoice.unit,
            "created_ms": invoice.created_ms,
        }
    )


def decode_log_record(payload: bytes) -> tuple[bytes, Record] | Invoice:
    """Decode one log record strictly: (peer, SNAP record) or an Invoice."""
    fields = unpack(payload, len(payload))
    if type(fields) is not dict:
        raise DecodeError("malformed", "a log record must be a map")
    kind = fields.get("t")
    if kind == "snap":
        check_fields(fields, frozenset({"t", "peer", "r"}), frozenset())
        peer_key = require_bytes(fields["peer"], "peer", PUBLIC_KEY_BYTES)
        return peer_key, record_from_wire(fields["r"])
    if kind == "invoice":
        check_fields(
            fields, frozenset({"t", "preimage", "amount", "unit", "created_ms"}), frozenset()
        )
        return Invoice(
            preimage=require_bytes(fields["preimage"], "preimage", HASH_BYTES),
            amount=require_int(fields["amount"], "amount", 1, AMOUNT_MAX),
            unit=require_str(fields["unit"], "unit", UNIT_LENGTH_MAX),
            created_ms=require_int(fields["created_ms"], "created_ms", 0, TIME_MS_MAX),
        )
    raise DecodeError("unknown-type", f"log record type {kind!r}")


def log_record_to_json(payload: bytes) -> dict[str, Any]:
    """The JSON rendering of a log record, for ``ledgermesh log inspect``."""
    decoded = decode_log_record(payload)
    if isinstance(decoded, Invoice):
        return {
            "type": "invoice",
            "condition": decoded.condition.hex(),
            "amount": decoded.amount,
            "unit": decoded.unit,
            "created_ms": decoded.created_ms,
        }
    peer_key, record = decoded
    wire = record.to_wire()
    return {
        "type": "snap",
        "peer": peer_key.hex(),
        **{k: (v.hex() if isinstance(v, bytes) else v) for k, v in wire.items()},
    }


class NodeState:
    """Every bilateral ledger of the node, keyed by the peer's public key."""

    def __init__(self, peer_units: Mapping[bytes, Mapping[str, int]]) -> None:
        self._peer_units = {key: dict(units) for key, units in peer_units.items()}
        self.ledgers: dict[bytes, BilateralLedger] = {}
        self.invoices: dict[bytes, Invoice] = {}
        for peer_key in self._peer_units:
            self.ledger(peer_key)

    def preimage_for(self, condition: bytes) -> bytes | None:
        invoice = self.invoices.get(condition)
        return invoice.preimage if invoice is not None else None

    def ledger(self, peer_key: bytes) -> BilateralLedger:
        ledger = self.ledgers.get(peer_key)
        if ledger is None:
            units = self._peer_units.get(peer_key, {})
            ledger = BilateralLedger(units, preimage_lookup=self.preimage_for)
            self.ledgers[peer_key] = ledger
        return ledger

    def handle(self, peer_key: bytes, event: Input, now_ms: int) -> list[Effect]:
        """Run one input through a peer's ledger; its records are already applied."""
        return self.ledger(peer_key).handle(event, now_ms)

    def add_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.condition] = invoice

    def apply_log_record(self, payload: bytes) -> None:
        decoded = decode_log_record(payload)
        if isinstance(decoded, Invoice):
            self.add_invoice(decoded)
        else:
            peer_key, record = decoded
            self.ledger(peer_key).apply(record)

    # --- snapshots -----------------------------------------------------------

    def to_snapshot(self) -> bytes:
        data = pack(
            {
                "v": SNAPSHOT_VERSION,
                "ledgers": [[key, ledger.to_snapshot()] for key, ledger in self.ledgers.items()],
                "invoices": [
                    [i.preimage, i.amount, i.unit, i.created_ms] for i in self.invoices.values()
                ],
            }
        )
        assert len(data) <= SNAPSHOT_BYTES_MAX
        return data

    @classmethod
    def from_snapshot(cls, data: bytes, peer_units: Mapping[bytes, Mapping[str, int]]) -> NodeState:
        fields = unpack(data, SNAPSHOT_BYTES_MAX)
        if type(fields) is not dict or fields.get("v") != SNAPSHOT_VERSION:
            raise DecodeError("bad-version", "unknown snapshot version")
        state = cls({})
        state._peer_units = {key: dict(units) for key, units in peer_units.items()}
        for key, ledger_snapshot in fields["ledgers"]:
            units = state._peer_units.get(key, {})
            state.ledgers[key] = BilateralLedger.from_snapshot(
                ledger_snapshot, units, preimage_lookup=state.preimage_for
            )
        for preimage, amount, unit, created_ms in fields["invoices"]:
            state.add_invoice(Invoice(preimage, amount, unit, created_ms))
        for key in state._peer_units:
            state.ledger(key)
        return state


def records_of(effects: list[Effect]) -> list[Record]:
    return [effect.record for effect in effects if isinstance(effect, PersistRecord)]
