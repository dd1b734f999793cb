"""Message types and their strict msgpack encoding.

Rules:
- Every decoder takes bytes from outside and either returns a typed value or
  raises ``DecodeError`` with a reason code. No other exception escapes.
- Decoding is strict: a hard size limit, no trailing bytes, no unknown fields,
  no missing fields, exact types (a bool is not an int), integers in range.
- SNAP messages keep the field names of the SNAP write-up: ``msgId``,
  ``msgType``, ``amount``, ``unit``, ``condition``, ``expiresAt``,
  ``preimage``, ``reason``. ``ACK`` carries ``ackOf``, the type of the message
  it acknowledges, because a PROPOSE of ours and an ACCEPT of theirs can carry
  the same ``msgId``.
- Peer messages travel in frames: many messages under one ed25519 signature of
  the sender's node key, addressed to one receiver, so a frame is evidence of
  what its sender said and cannot be replayed to another node.
- ``expiresAt`` is milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from node import signatures as crypto
from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    FEDERATION_BYTES_MAX,
    FRAME_BYTES_MAX,
    HASH_BYTES,
    MESSAGES_PER_FRAME_MAX,
    PUBLIC_KEY_BYTES,
    REASON_LENGTH_MAX,
    RESOLVE_HOPS_MAX,
    SIGNATURE_BYTES,
    UNIT_LENGTH_MAX,
)

WIRE_VERSION = 1
MSG_ID_MAX = 2**63 - 1
TIME_MS_MAX = 2**53  # far beyond any real date; keeps JSON exact


class DecodeError(Exception):
    """Raised when bytes or a JSON object from outside are not a valid message.

    ``reason`` is a short stable code (``too-large``, ``malformed``,
    ``trailing-bytes``, ``unknown-type``, ``missing-field``, ``unknown-field``,
    ``bad-field``, ``bad-signature``...); ``detail`` says more for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MsgType(enum.StrEnum):
    PROPOSE = "PROPOSE"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ACK = "ACK"


@dataclass(frozen=True, slots=True)
class Propose:
    msg_id: int
    amount: int
    unit: str
    condition: bytes | None = None
    expires_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Accept:
    msg_id: int
    preimage: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    msg_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    msg_id: int
    ack_of: MsgType


SnapMessage = Propose | Accept | Reject | Ack


@dataclass(frozen=True, slots=True)
class Resolve:
    """Federation: who is ``address``? Relayed through trusted validators, ``hops`` left."""

    req_id: int
    address: str
    hops: int


@dataclass(frozen=True, slots=True)
class Resolved:
    """Federation: the answer to a Resolve. ``record`` is the owner validator's signed
    federation record (opaque here, decoded by the federation core), or None with
    an ``error`` code."""

    req_id: int
    record: bytes | None
    error: str | None


FederationMessage = Resolve | Resolved
PeerMessage = SnapMessage | FederationMessage

_HEX_PATTERN = re.compile(f"[0-9a-fA-F]{{{HASH_BYTES * 2}}}")
_UNIT_PATTERN = re.compile(r"^1E-?[0-9]{1,2} [A-Z0-9][A-Za-z0-9._-]{0,19}$")


def valid_unit(unit: str) -> bool:
    """A SNAP unit: a power of ten and a code, e.g. ``1E-2 USD``."""
    return len(unit) <= UNIT_LENGTH_MAX and _UNIT_PATTERN.match(unit) is not None


# --- encoding ------------------------------------------------------------------


def snap_to_wire(message: SnapMessage) -> dict[str, Any]:
    """The wire map of a SNAP message, with the write-up's field names."""
    if isinstance(message, Propose):
        out: dict[str, Any] = {
            "msgType": "PROPOSE",
            "msgId": message.msg_id,
            "amount": message.amount,
            "unit": message.unit,
        }
        if message.condition is not None:
            out["condition"] = message.condition
        if message.expires_at_ms is not None:
            out["expiresAt"] = message.expires_at_ms
        return out
    if isinstance(message, Accept):
        out = {"msgType": "ACCEPT", "msgId": message.msg_id}
        if message.preimage is not None:
            out["preimage"] = message.preimage
        return out
    if isinstance(message, Reject):
        return {"msgType": "REJECT", "msgId": message.msg_id, "reason": message.reason}
    return {"msgType": "ACK", "msgId": message.msg_id, "ackOf": str(message.ack_of)}


def message_to_wire(message: PeerMessage) -> dict[str, Any]:
    """The wire map of any peer message."""
    if isinstance(message, Resolve):
        return {
            "msgType": "RESOLVE",
            "reqId": message.req_id,
            "address": message.address,
            "hops": message.hops,
        }
    if isinstance(message, Resolved):
        out: dict[str, Any] = {"msgType": "RESOLVED", "reqId": message.req_id}
        if message.record is not None:
            out["record"] = message.record
        if message.error is not None:
            out["error"] = message.error
        return out
    return snap_to_wire(message)


def message_from_wire(fields: object) -> PeerMessage:
    """Decode one peer message map (already unpacked). Raises DecodeError."""
    if type(fields) is dict and fields.get("msgType") in ("RESOLVE", "RESOLVED"):
        return _federation_from_wire(fields)
    return snap_from_wire(fields)


def _federation_from_wire(fields: dict[str, Any]) -> FederationMessage:
    if fields["msgType"] == "RESOLVE":
        check_fields(fields, frozenset({"msgType", "reqId", "address", "hops"}), frozenset())
        return Resolve(
            require_int(fields["reqId"], "reqId", 0, MSG_ID_MAX),
            require_str(fields["address"], "address", ADDRESS_LENGTH_MAX),
            require_int(fields["hops"], "hops", 0, RESOLVE_HOPS_MAX),
        )
    check_fields(fields, frozenset({"msgType", "reqId"}), frozenset({"record", "error"}))
    record = fields.get("record")
    if record is not None and (type(record) is not bytes or len(record) > FEDERATION_BYTES_MAX):
        raise DecodeError("bad-field", "record must be bytes within the limit")
    error = fields.get("error")
    if error is not None:
        error = require_str(error, "error", REASON_LENGTH_MAX)
    if (record is None) == (error is None):
        raise DecodeError("bad-field", "RESOLVED carries a record or an error")
    return Resolved(require_int(fields["reqId"], "reqId", 0, MSG_ID_MAX), record, error)


def message_to_json(message: PeerMessage) -> dict[str, Any]:
    """The JSON rendering of a peer message: bytes as lowercase hex."""
    fields = message_to_wire(message)
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in fields.items()}


def snap_to_json(message: SnapMessage) -> dict[str, Any]:
    """The JSON rendering of a SNAP message: bytes as lowercase hex."""
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in snap_to_wire(message).items()}


# --- strict field access -----------------------------------------------------


_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # msgType: (required fields, optional fields)
    "PROPOSE": (
        frozenset({"msgType", "msgId", "amount", "unit"}),
        frozenset({"condition", "expiresAt"}),
    ),
    "ACCEPT": (frozenset({"msgType", "msgId"}), frozenset({"preimage"})),
    "REJECT": (frozenset({"msgType", "msgId", "reason"}), frozenset()),
    "ACK": (frozenset({"msgType", "msgId", "ackOf"}), frozenset()),
}


def require_int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise DecodeError("bad-field", f"{name} must be an integer")
    if not low <= value <= high:
        raise DecodeError("bad-field", f"{name} {value} is outside {low}..{high}")
    return value


def require_str(value: object, name: str, length_max: int) -> str:
    if type(value) is not str:
        raise DecodeError("bad-field", f"{name} must be a string")
    if len(value) > length_max:
        raise DecodeError("bad-field", f"{name} is longer than {length_max}")
    return value


def require_bytes(value: object, name: str, length: int) -> bytes:
    if type(value) is not bytes:
        raise DecodeError("bad-field", f"{name} must be bytes")
    if len(value) != length:
        raise DecodeError("bad-field", f"{name} must be {length} bytes, not {len(value)}")
    return value


def check_fields(
    fields: dict[str, Any], required: frozenset[str], optional: frozenset[str]
) -> None:
    missing = required - fields.keys()
    if missing:
        raise DecodeError("missing-field", ", ".join(sorted(missing)))
    unknown = fields.keys() - required - optional
    if unknown:
        raise DecodeError("unknown-field", ", ".join(sorted(map(str, unknown))))


def snap_from_wire(fields: object) -> SnapMessage:
    """Decode one SNAP message map (already unpacked). Raises DecodeError."""
    if type(fields) is not dict:
        raise DecodeError("malformed", "a message must be a map")
    msg_type = fields.get("msgType")
    if type(msg_type) is not str or msg_type not in _FIELDS:
        raise DecodeError("unknown-type", f"msgType {msg_type!r}")
    required, optional = _FIELDS[msg_type]
    check_fields(fields, required, optional)
    msg_id = require_int(fields["msgId"], "msgId", 0, MSG_ID_MAX)
    if msg_type == "PROPOSE":
        amount = require_int(fields["amount"], "amount", 1, AMOUNT_MAX)
        unit = require_str(fields["unit"], "unit", UNIT_LENGTH_MAX)
        if not valid_unit(unit):
            raise DecodeError("bad-field", f"unit {unit!r} is not like '1E-2 USD'")
        condition = fields.get("condition")
        if condition is not None:
            condition = require_bytes(condition, "condition", HASH_BYTES)
        expires_at = fields.get("expiresAt")
        if expires_at is not None:
            expires_at = require_int(expires_at, "expiresAt", 0, TIME_MS_MAX)
        if (condition is None) != (expires_at is None):
            raise DecodeError("bad-field", "condition and expiresAt come together")
        return Propose(msg_id, amount, unit, condition, expires_at)
    if msg_type == "ACCEPT":
        preimage = fields.get("preimage")
        if preimage is not None:
            preimage = require_bytes(preimage, "preimage", HASH_BYTES)
        return Accept(msg_id, preimage)
    if msg_type == "REJECT":
        return Reject(msg_id, require_str(fields["reason"], "reason", REASON_LENGTH_MAX))
    ack_of = fields["ackOf"]
    if ack_of not in ("PROPOSE", "ACCEPT", "REJECT"):
        raise DecodeError("bad-field", f"ackOf {ack_of!r}")
    return Ack(msg_id, MsgType(ack_of))


def snap_from_json(fields: dict[str, Any]) -> SnapMessage:
    """Decode the JSON rendering (bytes as hex) of a SNAP message."""
    converted = dict(fields)
    for name in ("condition", "preimage"):
        value = converted.get(name)
        if isinstance(value, str):
            if _HEX_PATTERN.fullmatch(value) is None:
                raise DecodeError("bad-field", f"{name} is not {HASH_BYTES * 2} hex digits")
            converted[name] = bytes.fromhex(value)
    return snap_from_wire(converted)


# --- msgpack -----------------------------------------------------------------


def pack(value: object) -> bytes:
    """Canonical msgpack: maps keep insertion order, which our encoders fix."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes, size_max: int) -> Any:
    """Strictly unpack one msgpack value of at most ``size_max`` bytes."""
    if len(data) > size_max:
        raise DecodeError("too-large", f"{len(data)} bytes > {size_max}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
    except msgpack.ExtraData:
        raise DecodeError("trailing-bytes") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        raise DecodeError("malformed", type(error).__name__) from None


# --- signed peer frames ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerFrame:
    """Messages from ``sender`` to ``receiver``, signed by ``sender``.

    ``raw`` is the signed envelope as received, kept as evidence.
    """

    sender: bytes
    receiver: bytes
    messages: tuple[PeerMessage, ...]
    raw: bytes


def encode_frame(key: crypto.NodeKey, receiver: bytes, messages: Sequence[PeerMessage]) -> bytes:
    assert 0 < len(messages) <= MESSAGES_PER_FRAME_MAX
    body = pack(
        {
            "v": WIRE_VERSION,
            "from": key.public_key,
            "to": receiver,
            "msgs": [message_to_wire(m) for m in messages],
        }
    )
    signature = key.sign(crypto.KIND_PEER_FRAME, body)
    raw = pack([body, signature])
    assert len(raw) <= FRAME_BYTES_MAX, "callers split messages into frames below the limit"
    return raw


def decode_frame(raw: bytes) -> PeerFrame:
    """Decode and verify a signed frame. Raises DecodeError, never anything else."""
    envelope = unpack(raw, FRAME_BYTES_MAX)
    if type(envelope) is not list or len(envelope) != 2:
        raise DecodeError("malformed", "a frame is [body, signature]")
    body, signature = envelope
    if type(body) is not bytes:
        raise DecodeError("malformed", "frame body must be bytes")
    signature = require_bytes(signature, "signature", SIGNATURE_BYTES)
    fields = unpack(body, FRAME_BYTES_MAX)
    if type(fields) is not dict:
        raise DecodeError("malformed", "frame body must be a map")
    check_fields(fields, frozenset({"v", "from", "to", "msgs"}), frozenset())
    if fields["v"] != WIRE_VERSION or type(fields["v"]) is not int:
        raise DecodeError("bad-version", f"version {fields['v']!r}")
    sender = require_bytes(fields["from"], "from", PUBLIC_KEY_BYTES)
    receiver = require_bytes(fields["to"], "to", PUBLIC_KEY_BYTES)
    wire_messages = fields["msgs"]
    if type(wire_messages) is not list or not 0 < len(wire_messages) <= MESSAGES_PER_FRAME_MAX:
        raise DecodeError("bad-field", "msgs must be a non-empty list within the limit")
    if not crypto.verify(sender, crypto.KIND_PEER_FRAME, body, signature):
        raise DecodeError("bad-signature", "frame signature does not verify")
    messages = tuple(message_from_wire(m) for m in wire_messages)
    return PeerFrame(sender, receiver, messages, raw)


def frame_to_json(frame: PeerFrame) -> dict[str, Any]:
    return {
        "from": frame.sender.hex(),
        "to": frame.receiver.hex(),
        "msgs": [message_to_json(m) for m in frame.messages],
    }


def message_bytes_bound(message: PeerMessage) -> int:
    """An upper bound of a message's size inside a frame, cheap enough for every message.

    Every field but a REJECT's reason has a fixed maximum size; 200 bytes covers
    them (a PROPOSE with condition and expiry packs to about 170).
    """
    if isinstance(message, Reject):
        return 200 + len(message.reason.encode())
    if isinstance(message, Resolve):
        return 200 + len(message.address.encode())
    if isinstance(message, Resolved):
        return 200 + len(message.record or b"") + len((message.error or "").encode())
    return 200


def split_into_frames(messages: Sequence[PeerMessage]) -> list[list[PeerMessage]]:
    """Split messages into groups that each fit one frame."""
    budget = FRAME_BYTES_MAX - FRAME_OVERHEAD_BYTES
    groups: list[list[PeerMessage]] = []
    group: list[PeerMessage] = []
    used = 0
    for message in messages:
        size = message_bytes_bound(message)
        if group and (used + size > budget or len(group) == MESSAGES_PER_FRAME_MAX):
            groups.append(group)
            group, used = [], 0
        group.append(message)
        used += size
    if group:
        groups.append(group)
    return groups


# Fixed overhead of a frame around its messages (keys, signature, headers).
FRAME_OVERHEAD_BYTES = 2 * PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 64
