"""Records: the only way the state of a bilateral ledger changes.

Rules:
- Every state change is one of these frozen records. The live path decides,
  emits the record and applies it; recovery applies the same records from the
  log, so the state after a replay is exactly the state before the crash.
- A record holds the outcome of a decision (preimage, reason, the ``late``
  flag), never the inputs to one: replay never re-decides, so a credit limit
  changed in the config since cannot rewrite the past.
- ``to_wire`` gives a msgpack-able map (str, int, bytes, bool, None, list,
  dict); ``record_from_wire`` is strict and raises ``DecodeError`` on anything
  that ``to_wire`` could not have written.
- Times are milliseconds since the Unix epoch, as the caller's ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from node.limits import (
    AMOUNT_MAX,
    FRAME_BYTES_MAX,
    HASH_BYTES,
    REASON_LENGTH_MAX,
    UNIT_LENGTH_MAX,
)
from node.payments.messages import Route, route_from_wire, route_to_wire
from node.wire import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    Accept,
    DecodeError,
    Propose,
    Reject,
    check_fields,
    require_bytes,
    require_int,
    require_str,
    snap_from_json,
    valid_unit,
)

KIND_FIELD = "record"
_PROPOSED_FIELDS = ("msg_id", "amount", "unit", "condition", "expires_at_ms")


def _optional_bytes(value: object, name: str) -> bytes | None:
    return None if value is None else require_bytes(value, name, HASH_BYTES)


def _optional_str(value: object, name: str) -> str | None:
    return None if value is None else require_str(value, name, REASON_LENGTH_MAX)


def _require_bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise DecodeError("bad-field", f"{name} must be a boolean")
    return value


def _msg_id(fields: dict[str, Any]) -> int:
    return require_int(fields["msg_id"], "msg_id", 0, MSG_ID_MAX)


def _time_ms(value: object, name: str) -> int:
    return require_int(value, name, 0, TIME_MS_MAX)


@dataclass(frozen=True, slots=True)
class _Proposed:
    """A proposal entered a list: ours (outgoing) or the peer's (incoming)."""

    msg_id: int
    amount: int
    unit: str
    condition: bytes | None
    expires_at_ms: int | None
    route: Route = ()  # payments: written only when non-empty

    KIND: ClassVar[str] = ""

    def to_wire(self) -> dict[str, Any]:
        out = {KIND_FIELD: self.KIND, **{name: getattr(self, name) for name in _PROPOSED_FIELDS}}
        if self.route:
            out["route"] = route_to_wire(self.route)
        return out

    def to_message(self) -> Propose:
        return Propose(
            self.msg_id, self.amount, self.unit, self.condition, self.expires_at_ms, self.route
        )

    @staticmethod
    def route_from_record(fields: dict[str, Any], condition: bytes | None) -> Route:
        if "route" not in fields:
            return ()
        route = route_from_wire(fields["route"])
        if not route or condition is None:
            raise DecodeError("bad-field", "a route is non-empty and only with a condition")
        return route

    @staticmethod
    def fields_from_wire(fields: dict[str, Any]) -> tuple[int, int, str, bytes | None, int | None]:
        unit = require_str(fields["unit"], "unit", UNIT_LENGTH_MAX)
        if not valid_unit(unit):
            raise DecodeError("bad-field", f"unit {unit!r}")
        condition = _optional_bytes(fields["condition"], "condition")
        expires = fields["expires_at_ms"]
        expires_at_ms = None if expires is None else _time_ms(expires, "expires_at_ms")
        if (condition is None) != (expires_at_ms is None):
            raise DecodeError("bad-field", "condition and expires_at_ms come together")
        amount = require_int(fields["amount"], "amount", 1, AMOUNT_MAX)
        return _msg_id(fields), amount, unit, condition, expires_at_ms


@dataclass(frozen=True, slots=True)
class OutgoingProposed(_Proposed):
    """We proposed; the msgId is the next of our list. ``ref``: the caller's local
    name for it (payments), written only when set."""

    ref: int | None = None

    KIND: ClassVar[str] = "outgoing-proposed"

    def to_wire(self) -> dict[str, Any]:
        out = _Proposed.to_wire(self)
        if self.ref is not None:
            out["ref"] = self.ref
        return out


@dataclass(frozen=True, slots=True)
class IncomingProposed(_Proposed):
    """The peer proposed; the msgId is the next of their list."""

    KIND: ClassVar[str] = "incoming-proposed"


@dataclass(frozen=True, slots=True)
class IncomingDecided:
    """We decided a proposal of the peer: accepted (with the preimage if it is
    conditional) or rejected with a reason."""

    msg_id: int
    accepted: bool
    preimage: bytes | None
    reason: str | None
    decided_at_ms: int

    KIND: ClassVar[str] = "incoming-decided"

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "msg_id": self.msg_id,
            "accepted": self.accepted,
            "preimage": self.preimage,
            "reason": self.reason,
            "decided_at_ms": self.decided_at_ms,
        }

    def to_message(self) -> Accept | Reject:
        if self.accepted:
            return Accept(self.msg_id, self.preimage)
        assert self.reason is not None
        return Reject(self.msg_id, self.reason)


@dataclass(frozen=True, slots=True)
class OutgoingDecided:
    """The peer decided our proposal. ``late``: an ACCEPT that came after
    expiresAt plus the allowed clock skew; applied (the decider decides) and
    kept as evidence for an out-of-band dispute."""

    msg_id: int
    accepted: bool
    preimage: bytes | None
    reason: str | None
    late: bool
    received_at_ms: int

    KIND: ClassVar[str] = "outgoing-decided"

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "msg_id": self.msg_id,
            "accepted": self.accepted,
            "preimage": self.preimage,
            "reason": self.reason,
            "late": self.late,
            "received_at_ms": self.received_at_ms,
        }


@dataclass(frozen=True, slots=True)
class OutgoingProposeAcked:
    """The peer has our PROPOSE: stop repeating it."""

    msg_id: int

    KIND: ClassVar[str] = "outgoing-propose-acked"

    def to_wire(self) -> dict[str, Any]:
        return {KIND_FIELD: self.KIND, "msg_id": self.msg_id}


@dataclass(frozen=True, slots=True)
class IncomingDecisionAcked:
    """The peer has our ACCEPT/REJECT: stop repeating it."""

    msg_id: int

    KIND: ClassVar[str] = "incoming-decision-acked"

    def to_wire(self) -> dict[str, Any]:
        return {KIND_FIELD: self.KIND, "msg_id": self.msg_id}


@dataclass(frozen=True, slots=True)
class EvidenceKept:
    """A message of the peer worth keeping (``contradiction``, ``late-accept``):
    the message as JSON and the signed frame that carried it."""

    reason: str
    message: dict[str, Any]
    frame_raw: bytes
    received_at_ms: int

    KIND: ClassVar[str] = "evidence-kept"

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "reason": self.reason,
            "message": dict(self.message),
            "frame_raw": self.frame_raw,
            "received_at_ms": self.received_at_ms,
        }


Record = (
    OutgoingProposed
    | IncomingProposed
    | IncomingDecided
    | OutgoingDecided
    | OutgoingProposeAcked
    | IncomingDecisionAcked
    | EvidenceKept
)


# --- strict decoding -------------------------------------------------------------


def _decision_fields(fields: dict[str, Any]) -> tuple[bool, bytes | None, str | None]:
    accepted = _require_bool(fields["accepted"], "accepted")
    preimage = _optional_bytes(fields["preimage"], "preimage")
    reason = _optional_str(fields["reason"], "reason")
    if accepted and reason is not None:
        raise DecodeError("bad-field", "an acceptance has no reason")
    if not accepted and (reason is None or preimage is not None):
        raise DecodeError("bad-field", "a rejection has a reason and no preimage")
    return accepted, preimage, reason


def _incoming_decided(fields: dict[str, Any]) -> IncomingDecided:
    accepted, preimage, reason = _decision_fields(fields)
    decided_at_ms = _time_ms(fields["decided_at_ms"], "decided_at_ms")
    return IncomingDecided(_msg_id(fields), accepted, preimage, reason, decided_at_ms)


def _outgoing_decided(fields: dict[str, Any]) -> OutgoingDecided:
    accepted, preimage, reason = _decision_fields(fields)
    late = _require_bool(fields["late"], "late")
    if late and not accepted:
        raise DecodeError("bad-field", "only an acceptance can be late")
    received_at_ms = _time_ms(fields["received_at_ms"], "received_at_ms")
    return OutgoingDecided(_msg_id(fields), accepted, preimage, reason, late, received_at_ms)


def _evidence_kept(fields: dict[str, Any]) -> EvidenceKept:
    reason = require_str(fields["reason"], "reason", REASON_LENGTH_MAX)
    message = fields["message"]
    if type(message) is not dict:
        raise DecodeError("bad-field", "message must be a map")
    snap_from_json(message)  # raises DecodeError unless it is a SNAP message
    frame_raw = fields["frame_raw"]
    if type(frame_raw) is not bytes or len(frame_raw) > FRAME_BYTES_MAX:
        raise DecodeError("bad-field", "frame_raw must be bytes within the frame limit")
    received_at_ms = _time_ms(fields["received_at_ms"], "received_at_ms")
    return EvidenceKept(reason, message, frame_raw, received_at_ms)


_OPTIONAL_FIELDS: dict[str, frozenset[str]] = {
    OutgoingProposed.KIND: frozenset({"route", "ref"}),
    IncomingProposed.KIND: frozenset({"route"}),
}

_FIELDS: dict[str, frozenset[str]] = {
    OutgoingProposed.KIND: frozenset(_PROPOSED_FIELDS),
    IncomingProposed.KIND: frozenset(_PROPOSED_FIELDS),
    IncomingDecided.KIND: frozenset({"msg_id", "accepted", "preimage", "reason", "decided_at_ms"}),
    OutgoingDecided.KIND: frozenset(
        {"msg_id", "accepted", "preimage", "reason", "late", "received_at_ms"}
    ),
    OutgoingProposeAcked.KIND: frozenset({"msg_id"}),
    IncomingDecisionAcked.KIND: frozenset({"msg_id"}),
    EvidenceKept.KIND: frozenset({"reason", "message", "frame_raw", "received_at_ms"}),
}


def record_from_wire(obj: object) -> Record:
    """Decode a record written by ``to_wire``. Raises DecodeError on anything else."""
    if type(obj) is not dict:
        raise DecodeError("malformed", "a record must be a map")
    kind = obj.get(KIND_FIELD)
    if type(kind) is not str or kind not in _FIELDS:
        raise DecodeError("unknown-type", f"record {kind!r}")
    check_fields(obj, _FIELDS[kind] | {KIND_FIELD}, _OPTIONAL_FIELDS.get(kind, frozenset()))
    if kind == OutgoingProposed.KIND:
        fields = _Proposed.fields_from_wire(obj)
        ref = None if "ref" not in obj else require_int(obj["ref"], "ref", 0, MSG_ID_MAX)
        return OutgoingProposed(*fields, _Proposed.route_from_record(obj, fields[3]), ref)
    if kind == IncomingProposed.KIND:
        fields = _Proposed.fields_from_wire(obj)
        return IncomingProposed(*fields, _Proposed.route_from_record(obj, fields[3]))
    if kind == IncomingDecided.KIND:
        return _incoming_decided(obj)
    if kind == OutgoingDecided.KIND:
        return _outgoing_decided(obj)
    if kind == OutgoingProposeAcked.KIND:
        return OutgoingProposeAcked(_msg_id(obj))
    if kind == IncomingDecisionAcked.KIND:
        return IncomingDecisionAcked(_msg_id(obj))
    return _evidence_kept(obj)
