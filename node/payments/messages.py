"""Payment messages: route announcements, the source route of a PROPOSE, invoices.

Rules:
- A route announcement is signed by its origin validator (kind
  ``route-announcement``) and says: "I, origin, extend ``credit`` in ``unit`` to
  ``peer``; I forward what ``peer`` sends me for ``fee_base`` + ``fee_ppm``
  millionths of the amount I pass on, and I need ``expiry_delta_ms`` between
  the expiry I receive and the one I forward". So it is the edge peer -> origin.
  It travels as a gossip item (kind ``route``, id = SHA-256 of peer key + unit,
  its seq and expiry), body ``[announcement bytes, signature]``.
- A route is the list of the hops that follow the receiver of a conditional
  PROPOSE: each names the next validator's domain, the amount to propose to it
  and the expiry to give it. Empty: the receiver is the payee.
- Invoice request and answer travel hop by hop along ``path`` (payer first,
  payee last): each hop passes a request to the next domain and an answer to
  the previous one, and only from the neighbour the path names. Relays keep no
  state.
- Decoding is strict (node.wire's helpers) and raises DecodeError only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    decode_canonical,
    pack,
    require_bytes,
    require_int,
    require_list,
    require_map,
    require_str,
    unpack,
    valid_unit,
)
from node.gossip import GossipItem
from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    HASH_BYTES,
    NAME_LENGTH_MAX,
    PAYMENT_EXPIRY_DELTA_MS_MAX,
    PAYMENT_EXPIRY_DELTA_MS_MIN,
    PAYMENT_FEE_PPM_MAX,
    PAYMENT_HOPS_MAX,
    PAYMENT_ID_LENGTH_MAX,
    PUBLIC_KEY_BYTES,
    REASON_LENGTH_MAX,
    ROUTE_ANNOUNCEMENT_LIFETIME_MS_MAX,
    SIGNATURE_BYTES,
    UNIT_LENGTH_MAX,
)
from node.signatures import KIND_ROUTE_ANNOUNCEMENT, sha256, verify

ROUTE_KIND = "route"  # the gossip kind of route announcements
ANNOUNCEMENT_BYTES_MAX = 1_024


def _domain(value: object, name: str) -> str:
    domain = require_str(value, name, NAME_LENGTH_MAX)
    if not domain:
        raise DecodeError("bad-field", f"{name} is empty")
    return domain


def _unit(value: object) -> str:
    unit = require_str(value, "unit", UNIT_LENGTH_MAX)
    if not valid_unit(unit):
        raise DecodeError("bad-field", f"unit {unit!r} is not like '1E-2 USD'")
    return unit


# --- route announcements ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteAnnouncement:
    origin_domain: str
    origin_key: bytes
    peer_domain: str
    peer_key: bytes
    unit: str
    credit: int  # what origin extends to peer: the capacity of the edge peer -> origin
    fee_base: int
    fee_ppm: int
    expiry_delta_ms: int
    seq: int
    issued_ms: int
    expires_ms: int

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _ANNOUNCEMENT_FIELDS}

    def to_sign(self) -> bytes:
        """The payload the origin signs under KIND_ROUTE_ANNOUNCEMENT."""
        return pack(self.to_wire())

    def item_id(self) -> bytes:
        return announcement_item_id(self.peer_key, self.unit)


_ANNOUNCEMENT_FIELDS = (
    "origin_domain",
    "origin_key",
    "peer_domain",
    "peer_key",
    "unit",
    "credit",
    "fee_base",
    "fee_ppm",
    "expiry_delta_ms",
    "seq",
    "issued_ms",
    "expires_ms",
)


def announcement_item_id(peer_key: bytes, unit: str) -> bytes:
    return sha256(peer_key + unit.encode())


def announcement_from_wire(obj: object) -> RouteAnnouncement:
    fields = require_map(obj, "route announcement", frozenset(_ANNOUNCEMENT_FIELDS))
    issued_ms = require_int(fields["issued_ms"], "issued_ms", 0, TIME_MS_MAX)
    expires_ms = require_int(fields["expires_ms"], "expires_ms", 0, TIME_MS_MAX)
    if not issued_ms < expires_ms <= issued_ms + ROUTE_ANNOUNCEMENT_LIFETIME_MS_MAX:
        raise DecodeError("bad-field", "expires_ms must follow issued_ms within the lifetime")
    return RouteAnnouncement(
        _domain(fields["origin_domain"], "origin_domain"),
        require_bytes(fields["origin_key"], "origin_key", PUBLIC_KEY_BYTES),
        _domain(fields["peer_domain"], "peer_domain"),
        require_bytes(fields["peer_key"], "peer_key", PUBLIC_KEY_BYTES),
        _unit(fields["unit"]),
        require_int(fields["credit"], "credit", 0, AMOUNT_MAX),
        require_int(fields["fee_base"], "fee_base", 0, AMOUNT_MAX),
        require_int(fields["fee_ppm"], "fee_ppm", 0, PAYMENT_FEE_PPM_MAX),
        require_int(
            fields["expiry_delta_ms"],
            "expiry_delta_ms",
            PAYMENT_EXPIRY_DELTA_MS_MIN,
            PAYMENT_EXPIRY_DELTA_MS_MAX,
        ),
        require_int(fields["seq"], "seq", 0, MSG_ID_MAX),
        issued_ms,
        expires_ms,
    )


@dataclass(frozen=True, slots=True)
class SignedAnnouncement:
    announcement: RouteAnnouncement
    signature: bytes

    def verifies(self) -> bool:
        body = self.announcement
        return verify(body.origin_key, KIND_ROUTE_ANNOUNCEMENT, body.to_sign(), self.signature)

    def to_body(self) -> bytes:
        """The gossip item body: ``[announcement bytes, signature]``."""
        return pack([self.announcement.to_sign(), self.signature])


def signed_announcement_from_body(body: bytes) -> SignedAnnouncement:
    envelope = unpack(body, ANNOUNCEMENT_BYTES_MAX + SIGNATURE_BYTES + 16)
    if type(envelope) is not list or len(envelope) != 2:
        raise DecodeError("malformed", "a signed announcement is [body, signature]")
    announcement = decode_canonical(
        envelope[0], ANNOUNCEMENT_BYTES_MAX, announcement_from_wire, RouteAnnouncement.to_wire
    )
    return SignedAnnouncement(
        announcement, require_bytes(envelope[1], "signature", SIGNATURE_BYTES)
    )


def route_item_problem(item: GossipItem) -> str | None:
    """The gossip ``verify`` callback for kind ``route``: why ``item`` is not a
    valid announcement, or None."""
    try:
        signed = signed_announcement_from_body(item.body)
    except DecodeError as error:
        return f"undecodable announcement: {error}"
    body = signed.announcement
    if (item.origin, item.item_id, item.seq, item.expires_ms) != (
        body.origin_key,
        body.item_id(),
        body.seq,
        body.expires_ms,
    ):
        return "the item's name, seq or expiry differ from the announcement's"
    if not signed.verifies():
        return "the announcement's signature does not verify"
    return None


def announcement_item(signed: SignedAnnouncement) -> GossipItem:
    body = signed.announcement
    return GossipItem(
        body.origin_key, ROUTE_KIND, body.item_id(), body.seq, body.expires_ms, signed.to_body()
    )


# --- routes in a PROPOSE ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteHop:
    """What the receiver must propose next: to ``domain``, ``amount``, expiring then."""

    domain: str
    amount: int
    expires_at_ms: int

    def to_wire(self) -> list[Any]:
        return [self.domain, self.amount, self.expires_at_ms]


Route = tuple[RouteHop, ...]


def route_to_wire(route: Route) -> list[Any]:
    return [hop.to_wire() for hop in route]


def route_from_wire(obj: object) -> Route:
    """The ``route`` field of a PROPOSE: at most PAYMENT_HOPS_MAX - 1 hops."""
    hops = require_list(obj, "route", PAYMENT_HOPS_MAX - 1)
    decoded = []
    for hop in hops:
        if type(hop) is not list or len(hop) != 3:
            raise DecodeError("bad-field", "a route hop is [domain, amount, expiresAt]")
        decoded.append(
            RouteHop(
                _domain(hop[0], "domain"),
                require_int(hop[1], "amount", 1, AMOUNT_MAX),
                require_int(hop[2], "expiresAt", 0, TIME_MS_MAX),
            )
        )
    return tuple(decoded)


# --- invoices ----------------------------------------------------------------------


def _path(value: object) -> tuple[str, ...]:
    path = tuple(_domain(d, "path") for d in require_list(value, "path", PAYMENT_HOPS_MAX + 1))
    if len(path) < 2 or len(set(path)) != len(path):
        raise DecodeError("bad-field", "a path names two or more distinct domains")
    return path


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """Peer message INVOICE_REQUEST: the payer (path[0]) asks the payee's
    validator (path[-1]) for an invoice for ``payee`` (an address at it, or its domain)."""

    payment_id: str
    payee: str
    amount: int
    unit: str
    path: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "msgType": "INVOICE_REQUEST",
            "paymentId": self.payment_id,
            "payee": self.payee,
            "amount": self.amount,
            "unit": self.unit,
            "path": list(self.path),
        }


@dataclass(frozen=True, slots=True)
class InvoiceAnswer:
    """Peer message INVOICE: the condition to pay against, or an ``error`` code."""

    payment_id: str
    path: tuple[str, ...]
    condition: bytes | None
    amount: int
    expires_ms: int
    error: str | None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "msgType": "INVOICE",
            "paymentId": self.payment_id,
            "path": list(self.path),
            "amount": self.amount,
            "expiresAt": self.expires_ms,
        }
        if self.condition is not None:
            out["condition"] = self.condition
        if self.error is not None:
            out["error"] = self.error
        return out


InvoiceMessage = InvoiceRequest | InvoiceAnswer


def invoice_from_wire(fields: dict[str, Any]) -> InvoiceMessage:
    """Decode an INVOICE_REQUEST or INVOICE map. Raises DecodeError."""
    if fields.get("msgType") == "INVOICE_REQUEST":
        required = frozenset({"msgType", "paymentId", "payee", "amount", "unit", "path"})
        check_fields(fields, required, frozenset())
        return InvoiceRequest(
            require_str(fields["paymentId"], "paymentId", PAYMENT_ID_LENGTH_MAX),
            require_str(fields["payee"], "payee", ADDRESS_LENGTH_MAX),
            require_int(fields["amount"], "amount", 1, AMOUNT_MAX),
            _unit(fields["unit"]),
            _path(fields["path"]),
        )
    required = frozenset({"msgType", "paymentId", "path", "amount", "expiresAt"})
    check_fields(fields, required, frozenset({"condition", "error"}))
    condition = fields.get("condition")
    if condition is not None:
        condition = require_bytes(condition, "condition", HASH_BYTES)
    error = fields.get("error")
    if error is not None:
        error = require_str(error, "error", REASON_LENGTH_MAX)
    if (condition is None) == (error is None):
        raise DecodeError("bad-field", "INVOICE carries a condition or an error")
    return InvoiceAnswer(
        require_str(fields["paymentId"], "paymentId", PAYMENT_ID_LENGTH_MAX),
        _path(fields["path"]),
        condition,
        require_int(fields["amount"], "amount", 0, AMOUNT_MAX),
        require_int(fields["expiresAt"], "expiresAt", 0, TIME_MS_MAX),
        error,
    )
