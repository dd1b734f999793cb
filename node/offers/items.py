"""Offers as gossip items: the maker's signed offer and its validator's status.

Rules:
- An offer travels as a gossip item of kind ``offer``: origin = the maker's
  validator key, id = offer_id (SHA-256 of the offer's signed payload), seq =
  the status seq, expiry = the offer's. Body: ``[signed offer wire, status
  payload bytes, status signature]``; the validator signs the status under
  KIND_OFFER_STATUS, the maker signed the offer.
- A status says what is left of the offer and whether it is ``live``,
  ``cancelled`` (then it carries the maker's signed OfferCancel) or
  ``filled`` (nothing left, or less than one minimum fill). A newer status is
  a newer seq of the same item; cancelled and filled items stay in gossip as
  tombstones until they expire, so an old live status never comes back, but
  they leave the book.
- ``offer_item_problem`` is the gossip verify callback of kind ``offer``: the
  body decodes strictly; ids, seq, expiry and origin match it; the origin is
  an accepted validator key (``Trust``) bound to the status's domain, which
  is the maker's domain and the sold asset's issuer; the state is
  consistent; the maker's and the validator's signatures verify. Reasons are
  short stable codes.
- Pure: the shell signs (``OfferStatus.signing_request``); this module verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    decode_canonical,
    pack,
    require_bytes,
    require_int,
    require_map,
    unpack,
)
from node.gossip import Declined, GossipItem
from node.ledger.codec import ToSign, domain_of, issuer_of, require_domain
from node.ledger.signed import (
    Offer,
    OfferCancel,
    SignedInstruction,
    signed_instruction_from_wire,
)
from node.limits import (
    AMOUNT_MAX,
    GOSSIP_ITEM_BYTES_MAX,
    HASH_BYTES,
    OFFER_STATUS_BYTES_MAX,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
)
from node.offers.book import BookChange, BookEntry, BookRefusal, OrderBook
from node.offers.endorsements import Trust
from node.signatures import KIND_OFFER_STATUS, verify

OFFER_KIND = "offer"  # the gossip kind of offers
OFFER_STATES = ("live", "cancelled", "filled")


class OfferItemTooLarge(ValueError):
    """Raised by ``offer_item`` when the body would exceed GOSSIP_ITEM_BYTES_MAX
    (only with very long names): such an offer cannot be gossiped."""


@dataclass(frozen=True, slots=True)
class OfferStatus:
    """Signed by the maker's validator: what is left of ``offer_id`` as of ``seq``."""

    offer_id: bytes
    validator: str  # domain
    validator_key: bytes
    seq: int
    left: int  # of the offer's sell_amount
    state: str  # one of OFFER_STATES
    cancel: SignedInstruction | None  # the maker's OfferCancel, when cancelled
    issued_ms: int

    TYPE = "offer-status"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "offer_id": self.offer_id,
            "validator": self.validator,
            "validator_key": self.validator_key,
            "seq": self.seq,
            "left": self.left,
            "state": self.state,
            "cancel": None if self.cancel is None else self.cancel.to_wire(),
            "issued_ms": self.issued_ms,
        }

    def to_sign(self) -> bytes:
        return pack(self.to_wire())

    def signing_request(self) -> ToSign:
        """What the validator signs: ``NodeKey.sign(request.kind, request.payload)``."""
        return ToSign(KIND_OFFER_STATUS, self.to_sign())


_STATUS_FIELDS = frozenset(OfferStatus(b"", "", b"", 0, 0, "", None, 0).to_wire())


def status_from_wire(obj: object) -> OfferStatus:
    fields = require_map(obj, "offer status", _STATUS_FIELDS)
    if fields["type"] != OfferStatus.TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    if fields["state"] not in OFFER_STATES:
        raise DecodeError("bad-field", f"state must be one of {', '.join(OFFER_STATES)}")
    cancel = None
    if fields["cancel"] is not None:
        cancel = signed_instruction_from_wire(fields["cancel"])
        if not isinstance(cancel.instruction, OfferCancel):
            raise DecodeError("bad-field", "cancel must be an offer-cancel")
    return OfferStatus(
        require_bytes(fields["offer_id"], "offer_id", HASH_BYTES),
        require_domain(fields["validator"], "validator"),
        require_bytes(fields["validator_key"], "validator_key", PUBLIC_KEY_BYTES),
        require_int(fields["seq"], "seq", 0, MSG_ID_MAX),
        require_int(fields["left"], "left", 0, AMOUNT_MAX),
        fields["state"],
        cancel,
        require_int(fields["issued_ms"], "issued_ms", 0, TIME_MS_MAX),
    )


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """One offer item's content: the signed offer, its status, the status's signature."""

    signed_offer: SignedInstruction
    status: OfferStatus
    status_signature: bytes

    @property
    def offer(self) -> Offer:
        offer = self.signed_offer.instruction
        assert isinstance(offer, Offer)
        return offer

    @property
    def offer_id(self) -> bytes:
        return self.status.offer_id

    @property
    def live(self) -> bool:
        return self.status.state == "live"

    def to_body(self) -> bytes:
        return pack([self.signed_offer.to_wire(), self.status.to_sign(), self.status_signature])

    def entry(self) -> BookEntry:
        """The book's view of this offer."""
        offer, status = self.offer, self.status
        return BookEntry(
            offer_id=status.offer_id,
            maker=offer.maker,
            validator=status.validator,
            sell_uai=offer.sell_uai,
            buy_uai=offer.buy_uai,
            sell_amount=offer.sell_amount,
            buy_amount=offer.buy_amount,
            left=status.left,
            min_fill=offer.min_fill,
            expires_ms=offer.expires_ms,
            seq=status.seq,
        )


def decode_offer_body(body: bytes) -> OfferRecord:
    """Decode an offer item's body strictly and canonically. Raises DecodeError."""
    envelope = unpack(body, GOSSIP_ITEM_BYTES_MAX)
    if type(envelope) is not list or len(envelope) != 3:
        raise DecodeError("malformed", "an offer item is [offer, status, signature]")
    signed_offer = signed_instruction_from_wire(envelope[0])
    if not isinstance(signed_offer.instruction, Offer):
        raise DecodeError("bad-field", "the first part must be an offer")
    status = decode_canonical(
        envelope[1], OFFER_STATUS_BYTES_MAX, status_from_wire, OfferStatus.to_wire
    )
    record = OfferRecord(
        signed_offer, status, require_bytes(envelope[2], "signature", SIGNATURE_BYTES)
    )
    if record.to_body() != body:
        raise DecodeError("non-canonical", "not the canonical encoding of its content")
    return record


def offer_item(
    signed_offer: SignedInstruction, status: OfferStatus, status_signature: bytes
) -> GossipItem:
    """The gossip item of an offer. Raises OfferItemTooLarge (see there)."""
    record = OfferRecord(signed_offer, status, status_signature)
    body = record.to_body()
    if len(body) > GOSSIP_ITEM_BYTES_MAX:
        raise OfferItemTooLarge(f"{len(body)} bytes > {GOSSIP_ITEM_BYTES_MAX}")
    return GossipItem(
        status.validator_key, OFFER_KIND, status.offer_id, status.seq, record.offer.expires_ms, body
    )


# --- the gossip verify callback ----------------------------------------------------------


def offer_item_problem(item: GossipItem, trust: Trust) -> str | None:
    """Why ``item`` is not an offer this node stores and forwards, or None."""
    if item.kind != OFFER_KIND:
        return "wrong-kind"
    if len(item.body) > GOSSIP_ITEM_BYTES_MAX:
        return "oversize"
    try:
        record = decode_offer_body(item.body)
    except DecodeError as error:
        return f"undecodable: {error}"
    return (
        _naming_problem(item, record)
        or _content_problem(record)
        or _trust_problem(item, record, trust)
    )


def _naming_problem(item: GossipItem, record: OfferRecord) -> str | None:
    offer, status = record.offer, record.status
    if not offer.offer_id == status.offer_id == item.item_id:
        return "mismatched-id"
    if (item.seq, item.expires_ms) != (status.seq, offer.expires_ms):
        return "mismatched-item"
    if item.origin != status.validator_key:
        return "mismatched-origin"
    if domain_of(offer.maker) != status.validator:
        return "maker-elsewhere"
    if issuer_of(offer.sell_uai) != status.validator:
        return "foreign-sell-asset"
    return None


def _trust_problem(item: GossipItem, record: OfferRecord, trust: Trust) -> str | None:
    """Checked last, once the origin's signatures verified: gossip remembers the verdict."""
    if trust.depth(item.origin) is None:
        return Declined("unendorsed-validator")
    if trust.domain_of(item.origin) != record.status.validator:
        return Declined("wrong-validator-domain")
    return None


def _content_problem(record: OfferRecord) -> str | None:
    offer, status = record.offer, record.status
    if not _consistent(offer, status):
        return "inconsistent"
    if status.state == "cancelled" and not _cancels(status.cancel, record.signed_offer):
        return "bad-cancel"
    if not record.signed_offer.verifies():
        return "bad-maker-signature"
    if not verify(
        status.validator_key, KIND_OFFER_STATUS, status.to_sign(), record.status_signature
    ):
        return "bad-status-signature"
    return None


def _consistent(offer: Offer, status: OfferStatus) -> bool:
    if status.left > offer.sell_amount or (status.cancel is None) == (status.state == "cancelled"):
        return False
    if status.state == "live":
        return status.left > 0
    if status.state == "filled":
        return status.left < offer.min_fill  # nothing left, or less than one fill
    return True


def _cancels(cancel: SignedInstruction | None, signed_offer: SignedInstruction) -> bool:
    """True when ``cancel`` is the maker's own signed cancel of this offer."""
    if cancel is None or not isinstance(cancel.instruction, OfferCancel):
        return False
    offer = signed_offer.instruction
    assert isinstance(offer, Offer)
    return (
        cancel.instruction.offer_id == offer.offer_id
        and cancel.instruction.maker == offer.maker
        and cancel.signer_key == signed_offer.signer_key
        and cancel.verifies()
    )


def apply_to_book(
    book: OrderBook, record: OfferRecord, now_ms: int
) -> tuple[list[BookChange], BookRefusal | None]:
    """Bring ``book`` up to a verified record: a live one is put, another removed."""
    if record.live:
        return book.put(record.entry(), now_ms)
    return book.remove(record.offer_id), None
