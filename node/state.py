"""The whole node's state: one SNAP bilateral ledger per peer, the node's invoices,
and its customers' books (account chains, users, assets).

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
a SNAP record, ``{"t": "ledger", "r": record}`` for a customer-books record
(complete with the validator's signatures), or ``{"t": "invoice", "preimage":
bytes, "amount": int, "unit": str, "created_ms": int}`` for an invoice the
node made, ``{"t": "payment", "r": record}`` for a record of the payment core
(``node.payments.records``), ``{"t": "exchange", "r": record}`` for a record of
the offers and exchange desks (``node.exchange_state``).

The snapshot holds the payment records that rebuild the payment state as
retention keeps it (``PaymentState.snapshot_records``, docs/PAYMENTS.md
"Retention of ended payments"), and restoring replays them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.codec import map_header
from node.exchange_state import ExchangeState, exchange_record_from_wire
from node.ledger.books import Books
from node.ledger.records import Record as LedgerRecord
from node.ledger.records import record_bytes
from node.ledger.records import record_from_wire as ledger_record_from_wire
from node.limits import (
    AMOUNT_MAX,
    HASH_BYTES,
    PUBLIC_KEY_BYTES,
    SNAPSHOT_BYTES_MAX,
    UNIT_LENGTH_MAX,
)
from node.payments.events import Record as PaymentRecord
from node.payments.records import RECORD_TYPES as PAYMENT_RECORD_TYPES
from node.payments.records import record_from_wire as payment_record_from_wire
from node.payments.records import record_to_wire as payment_record_to_wire
from node.payments.state import PaymentState
from node.signatures import sha256
from node.snap.events import Effect, Input
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

SNAPSHOT_VERSION = 4


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


def ledger_log_record(record: LedgerRecord) -> bytes:
    """``pack({"t": "ledger", "r": record.to_wire()})``, reusing the entries' bytes."""
    return _LEDGER_RECORD_PREFIX + record_bytes(record)


_LEDGER_RECORD_PREFIX = map_header(2) + pack("t") + pack("ledger") + pack("r")


def payment_log_record(record: PaymentRecord) -> bytes:
    return pack({"t": "payment", "r": payment_record_to_wire(record)})


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


def decode_log_record(
    payload: bytes,
) -> tuple[bytes, Record] | Invoice | LedgerRecord | PaymentRecord | dict[str, Any]:
    """Decode one log record strictly: (peer, SNAP record), an Invoice, a books record
    or a payment record."""
    fields = unpack(payload, len(payload))
    if type(fields) is not dict:
        raise DecodeError("malformed", "a log record must be a map")
    kind = fields.get("t")
    if kind == "snap":
        check_fields(fields, frozenset({"t", "peer", "r"}), frozenset())
        peer_key = require_bytes(fields["peer"], "peer", PUBLIC_KEY_BYTES)
        return peer_key, record_from_wire(fields["r"])
    if kind == "payment":
        check_fields(fields, frozenset({"t", "r"}), frozenset())
        return payment_record_from_wire(fields["r"])
    if kind == "ledger":
        check_fields(fields, frozenset({"t", "r"}), frozenset())
        return ledger_record_from_wire(fields["r"])
    if kind == "exchange":
        check_fields(fields, frozenset({"t", "r"}), frozenset())
        return exchange_record_from_wire(fields["r"])
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
    if isinstance(decoded, PAYMENT_RECORD_TYPES):
        return {"type": "payment", **_hex(payment_record_to_wire(decoded))}
    if isinstance(decoded, dict):
        return {"type": "exchange", **_hex(decoded)}
    if not isinstance(decoded, tuple):
        return {"type": "ledger", **_hex(decoded.to_wire())}
    peer_key, record = decoded
    wire = record.to_wire()
    return {
        "type": "snap",
        "peer": peer_key.hex(),
        **{k: (v.hex() if isinstance(v, bytes) else v) for k, v in wire.items()},
    }


def _hex(value: Any) -> Any:
    """JSON-ready: bytes as hex, all the way down."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _hex(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hex(item) for item in value]
    return value


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is, for its books."""

    name: str
    public_key: bytes
    daily_limits: Mapping[str, int]


class NodeState:
    """Every bilateral ledger of the node, keyed by the peer's public key, and its books."""

    def __init__(
        self, peer_units: Mapping[bytes, Mapping[str, int]], identity: NodeIdentity
    ) -> None:
        self._peer_units = {key: dict(units) for key, units in peer_units.items()}
        self.identity = identity
        self.ledgers: dict[bytes, BilateralLedger] = {}
        self.invoices: dict[bytes, Invoice] = {}
        self.books = Books(identity.name, identity.public_key, identity.daily_limits)
        self.payments = PaymentState()
        self.exchange = ExchangeState()
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
        if isinstance(decoded, PAYMENT_RECORD_TYPES):
            self.payments.apply(decoded)
        elif isinstance(decoded, Invoice):
            self.add_invoice(decoded)
        elif isinstance(decoded, dict):
            self.exchange.apply(decoded)
        elif isinstance(decoded, tuple):
            peer_key, record = decoded
            self.ledger(peer_key).apply(record)
        else:
            self.books.apply(decoded)

    # --- snapshots -----------------------------------------------------------

    def to_snapshot(self) -> bytes:
        data = pack(
            {
                "v": SNAPSHOT_VERSION,
                "ledgers": [[key, ledger.to_snapshot()] for key, ledger in self.ledgers.items()],
                "invoices": [
                    [i.preimage, i.amount, i.unit, i.created_ms] for i in self.invoices.values()
                ],
                "books": self.books.to_snapshot(),
                # What rebuilds the payment state as retention keeps it (docs/PAYMENTS.md).
                "payments": [payment_record_to_wire(r) for r in self.payments.snapshot_records()],
                "exchange": self.exchange.records,
            }
        )
        return data  # the engine skips one above SNAPSHOT_BYTES_MAX

    @classmethod
    def from_snapshot(
        cls, data: bytes, peer_units: Mapping[bytes, Mapping[str, int]], identity: NodeIdentity
    ) -> NodeState:
        fields = unpack(data, SNAPSHOT_BYTES_MAX)
        # Version 3 (before exchanges) restores as a version 4 without exchange records.
        if type(fields) is not dict or fields.get("v") not in (3, SNAPSHOT_VERSION):
            raise DecodeError("bad-version", "unknown snapshot version")
        state = cls({}, identity)
        state.books = Books.from_snapshot(
            fields["books"], identity.name, identity.public_key, identity.daily_limits
        )
        state._peer_units = {key: dict(units) for key, units in peer_units.items()}
        for key, ledger_snapshot in fields["ledgers"]:
            units = state._peer_units.get(key, {})
            state.ledgers[key] = BilateralLedger.from_snapshot(
                ledger_snapshot, units, preimage_lookup=state.preimage_for
            )
        for preimage, amount, unit, created_ms in fields["invoices"]:
            state.add_invoice(Invoice(preimage, amount, unit, created_ms))
        for payment_record in fields["payments"]:
            decoded = payment_record_from_wire(payment_record)
            state.payments.apply(decoded)
        for record in fields.get("exchange", []):
            state.exchange.apply(exchange_record_from_wire(record))
        for key in state._peer_units:
            state.ledger(key)
        return state
