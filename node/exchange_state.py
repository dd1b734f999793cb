"""What the offers and exchange desks must not forget: their log records.

Rules:
- A record is a msgpack map ``{"k": kind, ...}`` inside the node's log record
  ``{"t": "exchange", "r": record}``. The state changes only by ``apply``, on
  the live path and in replay alike, so recovery is exact.
- ``cancel``: a maker's signed cancellation (the tombstone's proof, signed
  again after a restart).
- ``take``: at the taker's validator, a take of another validator's offer was
  sent: the signed take, the secret of its condition, the maker's validator
  and the path; and (``offer``, optional: older records lack it) the maker's
  signed offer as gossip held it then, for the taker's claim should M accept
  and never settle (``node.offers.unsettled``). ``answer``: the maker's
  validator answered it (the signed acceptance, the taker's proof, or an
  error).
- ``accept``: at the maker's validator, a take was accepted: the signed take
  and our signed acceptance (in the log before the answer leaves), and
  (``path``, optional: older records lack it) the take's path, along which
  the receipt of leg A goes back.
- ``held``: M's signed receipt of a take's leg A (``node.offers.take``
  LegAHeld), logged by M before leg B or the receipt leaves, and by T when it
  arrives: the taker's claim needs it.
- ``end``: an exchange ended, ``settled`` or ``failed`` with a reason.
- Snapshots hold the records themselves (like payments), replayed on restore.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.codec import DecodeError, check_fields, require_bytes, require_int, require_str
from node.ledger.signed import SignedInstruction, Take, signed_instruction_from_wire
from node.limits import HASH_BYTES, NAME_LENGTH_MAX, PAYMENT_HOPS_MAX, REASON_LENGTH_MAX
from node.offers.evidence import signed_offer_from_wire
from node.wire import TIME_MS_MAX, pack

_FIELDS: dict[str, frozenset[str]] = {
    "cancel": frozenset({"k", "offer", "i"}),
    "take": frozenset({"k", "i", "preimage", "maker_validator", "path", "ms"}),
    "answer": frozenset({"k", "take_id", "acceptance", "error"}),
    "accept": frozenset({"k", "i", "acceptance", "ms"}),
    "held": frozenset({"k", "take_id", "receipt"}),
    "end": frozenset({"k", "take_id", "state", "reason"}),
}
_OPTIONAL: dict[str, frozenset[str]] = {"take": frozenset({"offer"}), "accept": frozenset({"path"})}


@dataclass(slots=True)
class Exchange:
    """One cross-validator take, as this node sees it (taker's or maker's side)."""

    take: SignedInstruction
    side: str  # "taker" (we are T) or "maker" (we are M)
    started_ms: int
    preimage: bytes | None = None  # T's secret
    maker_validator: str = ""
    path: tuple[str, ...] = ()
    acceptance: bytes | None = None  # the signed acceptance, encoded
    error: str | None = None
    state: str = "open"  # open | settled | failed
    reason: str | None = None
    offer: SignedInstruction | None = None  # T: the maker's signed offer, if gossip had it
    held: bytes | None = None  # M's signed receipt of leg A, encoded

    @property
    def terms(self) -> Take:
        take = self.take.instruction
        assert isinstance(take, Take)
        return take


@dataclass(slots=True)
class ExchangeState:
    cancels: dict[bytes, SignedInstruction] = field(default_factory=dict)
    exchanges: dict[bytes, Exchange] = field(default_factory=dict)  # by take id
    records: list[dict[str, Any]] = field(default_factory=list)  # for the snapshot
    open_ids: dict[bytes, None] = field(default_factory=dict)  # open ones, oldest first

    def apply(self, record: dict[str, Any]) -> None:
        kind = record["k"]
        if kind == "cancel":
            self.cancels[record["offer"]] = signed_instruction_from_wire(record["i"])
        elif kind == "take":
            signed = signed_instruction_from_wire(record["i"])
            take = signed.instruction
            assert isinstance(take, Take)
            self.exchanges[take.take_id] = Exchange(
                signed,
                "taker",
                record["ms"],
                record["preimage"],
                record["maker_validator"],
                tuple(record["path"]),
                offer=_offer_of(record),
            )
            self.open_ids[take.take_id] = None
        elif kind == "answer":
            exchange = self.exchanges[record["take_id"]]
            exchange.acceptance = record["acceptance"]
            exchange.error = record["error"]
        elif kind == "accept":
            signed = signed_instruction_from_wire(record["i"])
            take = signed.instruction
            assert isinstance(take, Take)
            self.exchanges[take.take_id] = Exchange(
                signed,
                "maker",
                record["ms"],
                path=tuple(record.get("path", ())),
                acceptance=record["acceptance"],
            )
            self.open_ids[take.take_id] = None
        elif kind == "held":
            self.exchanges[record["take_id"]].held = record["receipt"]
        else:
            exchange = self.exchanges[record["take_id"]]
            exchange.state = record["state"]
            exchange.reason = record["reason"]
            self.open_ids.pop(record["take_id"], None)
        self.records.append(record)

    def open_exchanges(self) -> list[Exchange]:
        """The exchanges still open, oldest first (from the index: the clock's work
        is what is open, not the node's history)."""
        return [self.exchanges[take_id] for take_id in self.open_ids]


def exchange_log_record(record: dict[str, Any]) -> bytes:
    return pack({"t": "exchange", "r": record})


def exchange_record_from_wire(value: object) -> dict[str, Any]:
    """Check a record strictly (shape and sizes); DecodeError if it is not one."""
    if type(value) is not dict:
        raise DecodeError("malformed", "an exchange record must be a map")
    kind = value.get("k")
    if kind not in _FIELDS:
        raise DecodeError("unknown-type", f"exchange record {kind!r}")
    check_fields(value, _FIELDS[kind], _OPTIONAL.get(kind, frozenset()))
    if kind == "cancel":
        require_bytes(value["offer"], "offer", HASH_BYTES)
        signed_instruction_from_wire(value["i"])
    elif kind == "take":
        signed_instruction_from_wire(value["i"])
        require_bytes(value["preimage"], "preimage", HASH_BYTES)
        require_str(value["maker_validator"], "maker_validator", NAME_LENGTH_MAX)
        _path_of(value)
        require_int(value["ms"], "ms", 0, TIME_MS_MAX)
        _offer_of(value)
    elif kind == "answer":
        require_bytes(value["take_id"], "take_id", HASH_BYTES)
        if value["acceptance"] is not None and type(value["acceptance"]) is not bytes:
            raise DecodeError("bad-field", "acceptance")
        if value["error"] is not None:
            require_str(value["error"], "error", REASON_LENGTH_MAX)
    elif kind == "accept":
        signed_instruction_from_wire(value["i"])
        if type(value["acceptance"]) is not bytes:
            raise DecodeError("bad-field", "acceptance")
        require_int(value["ms"], "ms", 0, TIME_MS_MAX)
        if "path" in value:
            _path_of(value)
    elif kind == "held":
        require_bytes(value["take_id"], "take_id", HASH_BYTES)
        if type(value["receipt"]) is not bytes:
            raise DecodeError("bad-field", "receipt")
    else:
        require_bytes(value["take_id"], "take_id", HASH_BYTES)
        if value["state"] not in ("settled", "failed"):
            raise DecodeError("bad-field", "state")
        if value["reason"] is not None:
            require_str(value["reason"], "reason", REASON_LENGTH_MAX)
    return value


def _offer_of(record: dict[str, Any]) -> SignedInstruction | None:
    """A take record's signed offer, if it holds one. Raises DecodeError."""
    return signed_offer_from_wire(record["offer"]) if "offer" in record else None


def _path_of(record: dict[str, Any]) -> None:
    """A record's take path is 2..PAYMENT_HOPS_MAX + 1 domain names. Raises DecodeError."""
    path = record["path"]
    if type(path) is not list or not 2 <= len(path) <= PAYMENT_HOPS_MAX + 1:
        raise DecodeError("bad-field", "path")
    for hop in path:
        require_str(hop, "path", NAME_LENGTH_MAX)
