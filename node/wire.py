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

from node import signatures as crypto
from node.codec import (
    MSG_ID_MAX as MSG_ID_MAX,
)
from node.codec import (
    TIME_MS_MAX as TIME_MS_MAX,
)
from node.codec import (
    DecodeError as DecodeError,
)
from node.codec import (
    check_fields as check_fields,
)
from node.codec import (
    pack as pack,
)
from node.codec import (
    require_bytes as require_bytes,
)
from node.codec import (
    require_int as require_int,
)
from node.codec import (
    require_str as require_str,
)
from node.codec import (
    unpack as unpack,
)
from node.codec import (
    valid_unit as valid_unit,
)
from node.gossip import (
    GOSSIP_MSG_TYPES,
    GossipDigest,
    GossipHave,
    GossipItems,
    GossipMessage,
    GossipWant,
    gossip_from_wire,
)
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
from node.offers.take import (
    TAKE_MESSAGE_TYPES,
    TakeAnswer,
    TakeRequest,
    TakeReveal,
    take_message_bytes_bound,
    take_message_from_wire,
)
from node.payments.messages import (
    InvoiceAnswer,
    InvoiceMessage,
    InvoiceRequest,
    Route,
    invoice_from_wire,
    route_from_wire,
    route_to_wire,
)

WIRE_VERSION = 1


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
    route: Route = ()  # payments: the hops after the receiver; only with a condition


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
PeerMessage = (
    SnapMessage
    | FederationMessage
    | GossipMessage
    | InvoiceMessage
    | TakeRequest
    | TakeAnswer
    | TakeReveal
)

_HEX_PATTERN = re.compile(f"[0-9a-fA-F]{{{HASH_BYTES * 2}}}")


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
        if message.route:
            out["route"] = route_to_wire(message.route)
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
    if isinstance(message, GossipItems | GossipDigest | GossipHave | GossipWant):
        return message.to_wire()
    if isinstance(message, InvoiceRequest | InvoiceAnswer | TakeRequest | TakeAnswer | TakeReveal):
        return message.to_wire()
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
    if type(fields) is dict:
        msg_type = fields.get("msgType")
        if msg_type in ("RESOLVE", "RESOLVED"):
            return _federation_from_wire(fields)
        if msg_type in GOSSIP_MSG_TYPES:
            return gossip_from_wire(fields)
        if msg_type in ("INVOICE_REQUEST", "INVOICE"):
            return invoice_from_wire(fields)
        if msg_type in TAKE_MESSAGE_TYPES:
            return take_message_from_wire(fields)
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


def _hex(value: Any) -> Any:
    """JSON-ready: bytes as lowercase hex, all the way down."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _hex(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hex(item) for item in value]
    return value


def message_to_json(message: PeerMessage) -> dict[str, Any]:
    """The JSON rendering of a peer message: bytes as lowercase hex."""
    rendered: dict[str, Any] = _hex(message_to_wire(message))
    return rendered


def snap_to_json(message: SnapMessage) -> dict[str, Any]:
    """The JSON rendering of a SNAP message: bytes as lowercase hex."""
    rendered: dict[str, Any] = _hex(snap_to_wire(message))
    return rendered


# --- strict field access -----------------------------------------------------


_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # msgType: (required fields, optional fields)
    "PROPOSE": (
        frozenset({"msgType", "msgId", "amount", "unit"}),
        frozenset({"condition", "expiresAt", "route"}),
    ),
    "ACCEPT": (frozenset({"msgType", "msgId"}), frozenset({"preimage"})),
    "REJECT": (frozenset({"msgType", "msgId", "reason"}), frozenset()),
    "ACK": (frozenset({"msgType", "msgId", "ackOf"}), frozenset()),
}


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
        return Propose(msg_id, amount, unit, condition, expires_at, _route(fields, condition))
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


def _route(fields: dict[str, Any], condition: bytes | None) -> Route:
    """A PROPOSE's ``route``: absent means empty; present, it is non-empty and conditional."""
    if "route" not in fields:
        return ()
    route = route_from_wire(fields["route"])
    if not route or condition is None:
        raise DecodeError("bad-field", "a route is non-empty and only with a condition")
    return route


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
    them (a PROPOSE with condition and expiry packs to about 170). Variable
    parts (reasons, addresses, routes, paths, gossip bodies) are added with a
    margin for their msgpack headers.
    """
    if isinstance(message, GossipItems):
        return 64 + sum(len(item.body) + 256 for item in message.items)
    if isinstance(message, GossipDigest):
        return 64 + 128 * (len(message.entries) + 2)
    if isinstance(message, GossipHave):
        return 64 + 128 * len(message.entries)
    if isinstance(message, GossipWant):
        return 64 + 128 * len(message.names)
    if isinstance(message, InvoiceRequest | InvoiceAnswer):
        texts = [message.payment_id, *message.path]
        if isinstance(message, InvoiceRequest):
            texts.append(message.payee)
        elif message.error is not None:
            texts.append(message.error)
        return 256 + sum(len(text.encode()) + 8 for text in texts)
    if isinstance(message, TakeRequest | TakeAnswer | TakeReveal):
        return take_message_bytes_bound(message)
    if isinstance(message, Propose):
        return 200 + sum(len(hop.domain.encode()) + 32 for hop in message.route)
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
