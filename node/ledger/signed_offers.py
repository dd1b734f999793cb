"""Signed instructions of exchange offers: what a maker, a taker and their
validators sign (docs/OFFERS.md). ``node.ledger.signed`` decodes them among
the other instructions; import them from there.

Rules:
- A maker signs an ``Offer`` (sell ``sell_amount`` of ``sell_uai``, an asset of
  its validator, for ``buy_amount`` of ``buy_uai``) and may sign an
  ``OfferCancel``; a taker signs a ``Take`` of part or all of one offer.
- The maker's validator signs what it does with the offer's reservation: an
  ``OfferFill`` carves a hold out of it for a fill paid across validators, an
  ``OfferUnfill`` puts such a hold back, an ``OfferClose`` ends the
  reservation and returns the rest to the maker.
- ``offer_id`` and ``take_id`` are SHA-256 of the signed body bytes: one
  offer, one id, whoever relays it. Across validators the payment id of both
  legs of a take is ``take_id.hex()``.
- Price: a take of ``amount`` pays at least ``pay_for(offer, amount)``, the
  offer's price rounded up in the maker's favour.
- Decoding is strict (the rules of ``node.ledger.signed``); sums that a
  validator holds or reserves never exceed AMOUNT_MAX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.codec import TIME_MS_MAX, DecodeError, pack, require_bytes, require_int
from node.ledger.codec import (
    ToSign,
    require_address,
    require_map,
    require_payment_id,
    require_uai,
)
from node.limits import AMOUNT_MAX, HASH_BYTES, NONCE_MAX
from node.signatures import (
    KIND_OFFER,
    KIND_OFFER_CANCEL,
    KIND_OFFER_CLOSE,
    KIND_OFFER_FILL,
    KIND_OFFER_TAKE,
    KIND_OFFER_UNFILL,
    sha256,
)

CLOSE_REASONS = ("cancelled", "expired", "filled")


@dataclass(frozen=True, slots=True)
class Offer:
    """Signed by the maker: sell ``sell_amount`` of ``sell_uai`` for
    ``buy_amount`` of ``buy_uai``, in takes of at least ``min_fill`` (but the
    last), paying at most ``max_fee`` in mesh fees for fills across
    validators, until ``expires_ms``. Its validator reserves
    ``sell_amount + max_fee`` (``reserved``)."""

    maker: str
    sell_uai: str
    sell_amount: int
    buy_uai: str
    buy_amount: int
    min_fill: int
    max_fee: int
    expires_ms: int
    nonce: int
    created_ms: int

    TYPE = "offer"
    KIND = KIND_OFFER

    @property
    def reserved(self) -> int:
        return self.sell_amount + self.max_fee

    @property
    def offer_id(self) -> bytes:
        return sha256(self.signing_request().payload)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "maker": self.maker,
            "sell_uai": self.sell_uai,
            "sell_amount": self.sell_amount,
            "buy_uai": self.buy_uai,
            "buy_amount": self.buy_amount,
            "min_fill": self.min_fill,
            "max_fee": self.max_fee,
            "expires_ms": self.expires_ms,
            "nonce": self.nonce,
            "created_ms": self.created_ms,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


def pay_for(offer: Offer, amount: int) -> int:
    """The least a take of ``amount`` (sell units) pays: ceil(amount * buy / sell)."""
    return -(-amount * offer.buy_amount // offer.sell_amount)


@dataclass(frozen=True, slots=True)
class OfferCancel:
    """Signed by the maker: withdraw the offer ``offer_id``."""

    maker: str
    offer_id: bytes
    nonce: int

    TYPE = "offer-cancel"
    KIND = KIND_OFFER_CANCEL

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "maker": self.maker,
            "offer_id": self.offer_id,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class Take:
    """Signed by the taker: get ``amount`` of the offer's ``sell_uai`` for ``pay``
    of its ``buy_uai``, paying at most ``max_fee`` in mesh fees for the leg
    to the maker's validator (0 at the same validator). Across validators the
    taker's validator holds ``pay + max_fee`` (``held``)."""

    taker: str
    offer_id: bytes
    maker: str
    sell_uai: str
    buy_uai: str
    amount: int
    pay: int
    max_fee: int
    nonce: int
    created_ms: int

    TYPE = "take"
    KIND = KIND_OFFER_TAKE

    @property
    def held(self) -> int:
        return self.pay + self.max_fee

    @property
    def take_id(self) -> bytes:
        return sha256(self.signing_request().payload)

    @property
    def payment_id(self) -> str:
        """The payment id of both legs across validators."""
        return self.take_id.hex()

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "taker": self.taker,
            "offer_id": self.offer_id,
            "maker": self.maker,
            "sell_uai": self.sell_uai,
            "buy_uai": self.buy_uai,
            "amount": self.amount,
            "pay": self.pay,
            "max_fee": self.max_fee,
            "nonce": self.nonce,
            "created_ms": self.created_ms,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class OfferFill:
    """Signed by the maker's validator: carve ``amount + fee_budget`` (``held``)
    of ``uai`` out of the reservation of ``offer_id`` into a hold on the
    maker's chain keyed ``payment_id``, for a fill paid to ``taker``."""

    maker: str
    offer_id: bytes
    payment_id: str
    uai: str
    amount: int
    fee_budget: int
    taker: str
    nonce: int

    TYPE = "offer-fill"
    KIND = KIND_OFFER_FILL

    @property
    def held(self) -> int:
        return self.amount + self.fee_budget

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "maker": self.maker,
            "offer_id": self.offer_id,
            "payment_id": self.payment_id,
            "uai": self.uai,
            "amount": self.amount,
            "fee_budget": self.fee_budget,
            "taker": self.taker,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class OfferUnfill:
    """Signed by the maker's validator: the carved hold ``payment_id`` (``held``)
    goes back to the reservation of ``offer_id``."""

    maker: str
    offer_id: bytes
    payment_id: str
    uai: str
    held: int
    nonce: int

    TYPE = "offer-unfill"
    KIND = KIND_OFFER_UNFILL

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "maker": self.maker,
            "offer_id": self.offer_id,
            "payment_id": self.payment_id,
            "uai": self.uai,
            "held": self.held,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class OfferClose:
    """Signed by the maker's validator: the reservation of ``offer_id`` ends;
    ``returned`` (all that was left of it) goes back to the maker."""

    maker: str
    offer_id: bytes
    uai: str
    returned: int
    reason: str
    nonce: int

    TYPE = "offer-close"
    KIND = KIND_OFFER_CLOSE

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "maker": self.maker,
            "offer_id": self.offer_id,
            "uai": self.uai,
            "returned": self.returned,
            "reason": self.reason,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


OfferInstruction = Offer | OfferCancel | Take | OfferFill | OfferUnfill | OfferClose
OFFER_TYPES = frozenset(
    {Offer.TYPE, OfferCancel.TYPE, Take.TYPE, OfferFill.TYPE, OfferUnfill.TYPE, OfferClose.TYPE}
)


# --- strict decoding ------------------------------------------------------------------


def _amount(value: object, name: str, least: int = 1) -> int:
    return require_int(value, name, least, AMOUNT_MAX)


def _nonce(value: object) -> int:
    return require_int(value, "nonce", 1, NONCE_MAX)


def _time(value: object, name: str) -> int:
    return require_int(value, name, 0, TIME_MS_MAX)


def _offer_id(value: object) -> bytes:
    return require_bytes(value, "offer_id", HASH_BYTES)


def _sum_within(a: int, b: int, what: str) -> None:
    if a + b > AMOUNT_MAX:
        raise DecodeError("bad-field", f"{what} above {AMOUNT_MAX}")


def _two_assets(sell_uai: object, buy_uai: object) -> tuple[str, str]:
    sell, buy = require_uai(sell_uai, "sell_uai"), require_uai(buy_uai, "buy_uai")
    if sell == buy:
        raise DecodeError("bad-field", "an offer sells one asset for another")
    return sell, buy


_OFFER_FIELDS = frozenset(Offer("", "", 0, "", 0, 0, 0, 0, 0, 0).to_wire())
_CANCEL_FIELDS = frozenset({"type", "maker", "offer_id", "nonce"})
_TAKE_FIELDS = frozenset(Take("", b"", "", "", "", 0, 0, 0, 0, 0).to_wire())
_FILL_FIELDS = frozenset(OfferFill("", b"", "", "", 0, 0, "", 0).to_wire())
_UNFILL_FIELDS = frozenset(OfferUnfill("", b"", "", "", 0, 0).to_wire())
_CLOSE_FIELDS = frozenset(OfferClose("", b"", "", 0, "", 0).to_wire())


def _offer(obj: dict[str, Any]) -> Offer:
    fields = require_map(obj, "offer", _OFFER_FIELDS)
    sell_uai, buy_uai = _two_assets(fields["sell_uai"], fields["buy_uai"])
    sell_amount = _amount(fields["sell_amount"], "sell_amount")
    offer = Offer(
        require_address(fields["maker"], "maker"),
        sell_uai,
        sell_amount,
        buy_uai,
        _amount(fields["buy_amount"], "buy_amount"),
        require_int(fields["min_fill"], "min_fill", 1, sell_amount),
        _amount(fields["max_fee"], "max_fee", 0),
        _time(fields["expires_ms"], "expires_ms"),
        _nonce(fields["nonce"]),
        _time(fields["created_ms"], "created_ms"),
    )
    _sum_within(offer.sell_amount, offer.max_fee, "sell_amount + max_fee")
    return offer


def _cancel(obj: dict[str, Any]) -> OfferCancel:
    fields = require_map(obj, "offer-cancel", _CANCEL_FIELDS)
    return OfferCancel(
        require_address(fields["maker"], "maker"),
        _offer_id(fields["offer_id"]),
        _nonce(fields["nonce"]),
    )


def _take(obj: dict[str, Any]) -> Take:
    fields = require_map(obj, "take", _TAKE_FIELDS)
    sell_uai, buy_uai = _two_assets(fields["sell_uai"], fields["buy_uai"])
    take = Take(
        require_address(fields["taker"], "taker"),
        _offer_id(fields["offer_id"]),
        require_address(fields["maker"], "maker"),
        sell_uai,
        buy_uai,
        _amount(fields["amount"], "amount"),
        _amount(fields["pay"], "pay"),
        _amount(fields["max_fee"], "max_fee", 0),
        _nonce(fields["nonce"]),
        _time(fields["created_ms"], "created_ms"),
    )
    _sum_within(take.pay, take.max_fee, "pay + max_fee")
    return take


def _fill(obj: dict[str, Any]) -> OfferFill:
    fields = require_map(obj, "offer-fill", _FILL_FIELDS)
    fill = OfferFill(
        require_address(fields["maker"], "maker"),
        _offer_id(fields["offer_id"]),
        require_payment_id(fields["payment_id"], "payment_id"),
        require_uai(fields["uai"], "uai"),
        _amount(fields["amount"], "amount"),
        _amount(fields["fee_budget"], "fee_budget", 0),
        require_address(fields["taker"], "taker"),
        _nonce(fields["nonce"]),
    )
    _sum_within(fill.amount, fill.fee_budget, "amount + fee_budget")
    return fill


def _unfill(obj: dict[str, Any]) -> OfferUnfill:
    fields = require_map(obj, "offer-unfill", _UNFILL_FIELDS)
    return OfferUnfill(
        require_address(fields["maker"], "maker"),
        _offer_id(fields["offer_id"]),
        require_payment_id(fields["payment_id"], "payment_id"),
        require_uai(fields["uai"], "uai"),
        _amount(fields["held"], "held"),
        _nonce(fields["nonce"]),
    )


def _close(obj: dict[str, Any]) -> OfferClose:
    fields = require_map(obj, "offer-close", _CLOSE_FIELDS)
    reason = fields["reason"]
    if reason not in CLOSE_REASONS:
        raise DecodeError("bad-field", f"reason must be one of {', '.join(CLOSE_REASONS)}")
    return OfferClose(
        require_address(fields["maker"], "maker"),
        _offer_id(fields["offer_id"]),
        require_uai(fields["uai"], "uai"),
        _amount(fields["returned"], "returned", 0),
        reason,
        _nonce(fields["nonce"]),
    )


_DECODERS: dict[str, Callable[[dict[str, Any]], OfferInstruction]] = {
    Offer.TYPE: _offer,
    OfferCancel.TYPE: _cancel,
    Take.TYPE: _take,
    OfferFill.TYPE: _fill,
    OfferUnfill.TYPE: _unfill,
    OfferClose.TYPE: _close,
}


def offer_instruction_from_wire(obj: dict[str, Any]) -> OfferInstruction:
    """Decode one of the offer instructions (``obj["type"]`` in OFFER_TYPES)."""
    return _DECODERS[obj["type"]](obj)
