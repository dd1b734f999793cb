"""Decisions on exchange offers in a validator's Books: reservations, takes, fills.

Rules:
- An ``Offer`` signed by one of our customers reserves ``sell_amount +
  max_fee`` of its ``sell_uai`` (one of our assets) on the maker's chain: the
  balance drops, the reservation holds it until an ``OfferClose`` returns the
  rest. Checks, in order: bad-instruction, bad-amount, unknown-user,
  bad-signature, duplicate-offer, replay, unknown-asset, frozen, expired
  (expires_ms <= now), insufficient-funds, offer-limit.
- A ``Take`` whose maker banks here is the whole exchange in one record: the
  taker pays ``pay`` of ``buy_uai`` to the maker and gets ``amount`` of
  ``sell_uai`` out of the reservation. After the usual instruction checks:
  self-take, unknown-offer, offer-closed, wrong-offer (maker or assets
  differ), expired, too-much (amount > left), too-small (below min_fill and
  not all that is left), price (pay < pay_for), unknown-asset (buy_uai not
  ours), frozen (taker or maker), kyc (each side's level below the asset it
  receives), insufficient-funds (the taker's pay).
- A ``Take`` whose maker banks elsewhere holds ``pay + max_fee`` of
  ``buy_uai`` on the taker's chain as the payment ``take_id.hex()``, ended by
  Settle or Release like a cross transfer's. Only the taker's side is
  checked here: wrong-offer (the sell asset is not the maker's validator's),
  unknown-asset, frozen, insufficient-funds, duplicate-payment; the offer
  itself is the maker's validator's to check (``maker_side_refusal``).
- What the validator does with a reservation, signed by our key: an
  ``OfferFill`` carves ``amount + fee_budget`` into a hold on the maker's
  chain (unknown-offer, offer-closed, wrong-offer, expired, frozen,
  too-much, too-small, duplicate-payment); an ``OfferUnfill`` puts an open
  carved hold back (unknown-hold, offer-closed); an ``OfferClose`` returns
  exactly what is left (unknown-offer, offer-closed, wrong-offer,
  wrong-amount, and "filled" only with nothing left to sell, "expired" only
  from expires_ms on: not-expired). A carved hold's Release returns it to the
  maker's balance (the way out once the offer is closed).
- Pure: decisions read the state and return a refusal or None.
"""

from __future__ import annotations

from collections.abc import Callable

from node.ledger.chain import same_validator
from node.ledger.codec import domain_of, issuer_of
from node.ledger.events import OfferView, Refusal
from node.ledger.signed import (
    AssetDefinition,
    Instruction,
    Offer,
    OfferClose,
    OfferFill,
    OfferUnfill,
    SignedInstruction,
    Take,
    pay_for,
)
from node.ledger.state import BooksState, OfferState
from node.limits import OFFERS_OPEN_PER_USER_MAX

Refused = tuple[Refusal, str]
Assets = Callable[[str], AssetDefinition | None]
"""Our definition of a uai, or None."""


def amounts_of(instruction: Instruction) -> tuple[int, ...]:
    """The amounts of an instruction that must each be 1..AMOUNT_MAX."""
    if isinstance(instruction, Offer):
        return (instruction.sell_amount, instruction.buy_amount)
    if isinstance(instruction, Take):
        return (instruction.amount, instruction.pay)
    if isinstance(instruction, OfferFill):
        return (instruction.amount,)
    if isinstance(instruction, OfferUnfill):
        return (instruction.held,)
    if isinstance(instruction, OfferClose):
        return ()  # returned may be 0
    return (getattr(instruction, "amount", 0),)


def offer_view(offer_id: bytes, reservation: OfferState) -> OfferView:
    return OfferView(
        offer_id,
        reservation.instruction,
        reservation.left,
        reservation.fee_left,
        reservation.status,
        reservation.reason,
    )


def offer_refusal(
    state: BooksState, signed: SignedInstruction, assets: Assets, now_ms: int
) -> Refused | None:
    """Why the offer ``signed`` (well formed, signature and nonce checked) may
    not be reserved, or None."""
    offer = signed.instruction
    assert isinstance(offer, Offer)
    if assets(offer.sell_uai) is None:
        return Refusal.UNKNOWN_ASSET, f"no asset {offer.sell_uai} here"
    if state.users[offer.maker].frozen:
        return Refusal.FROZEN, f"{offer.maker} is frozen"
    if offer.expires_ms <= now_ms:
        return Refusal.EXPIRED, f"the offer expired at {offer.expires_ms}"
    balance = state.balance(offer.maker, offer.sell_uai)
    if balance < offer.reserved:
        return Refusal.INSUFFICIENT_FUNDS, (
            f"balance {balance} < {offer.sell_amount} + max fee {offer.max_fee}"
        )
    if state.open_offers.get(offer.maker, 0) >= OFFERS_OPEN_PER_USER_MAX:
        return Refusal.OFFER_LIMIT, f"{OFFERS_OPEN_PER_USER_MAX} open offers"
    return None


def _open_offer(
    state: BooksState, offer_id: bytes, maker: str, sell_uai: str
) -> tuple[OfferState, None] | tuple[None, Refused]:
    reservation = state.offers.get(offer_id)
    if reservation is None:
        return None, (Refusal.UNKNOWN_OFFER, f"no offer {offer_id.hex()} here")
    if reservation.status != "open":
        return None, (Refusal.OFFER_CLOSED, f"the offer is {reservation.reason}")
    offer = reservation.offer
    if (offer.maker, offer.sell_uai) != (maker, sell_uai):
        return None, (Refusal.WRONG_OFFER, "the maker or the asset differ from the offer's")
    return reservation, None


def _fill_size_refusal(reservation: OfferState, amount: int, now_ms: int) -> Refused | None:
    offer = reservation.offer
    if offer.expires_ms <= now_ms:
        return Refusal.EXPIRED, f"the offer expired at {offer.expires_ms}"
    if amount > reservation.left:
        return Refusal.TOO_MUCH, f"{amount} > {reservation.left} left"
    if amount < offer.min_fill and amount != reservation.left:
        return Refusal.TOO_SMALL, f"{amount} < min fill {offer.min_fill}"
    return None


def maker_side_refusal(state: BooksState, take: Take, now_ms: int) -> Refused | None:
    """Why the maker's validator (us) may not fill ``take`` from the offer's
    reservation, or None: the checks of a take that concern the offer."""
    if take.taker == take.maker:
        return Refusal.SELF_TAKE, "the taker is the maker"
    reservation, refused = _open_offer(state, take.offer_id, take.maker, take.sell_uai)
    if reservation is None:
        return refused
    offer = reservation.offer
    if offer.buy_uai != take.buy_uai:
        return Refusal.WRONG_OFFER, f"the offer buys {offer.buy_uai}"
    refused = _fill_size_refusal(reservation, take.amount, now_ms)
    if refused is not None:
        return refused
    if take.pay < pay_for(offer, take.amount):
        return Refusal.PRICE, f"pay {take.pay} < {pay_for(offer, take.amount)}"
    if state.users[take.maker].frozen:
        return Refusal.FROZEN, f"{take.maker} is frozen"
    return None


def take_refusal(
    state: BooksState, signed: SignedInstruction, assets: Assets, now_ms: int
) -> Refused | None:
    """Why the take ``signed`` (well formed, signature and nonce checked) may
    not be made here, or None."""
    take = signed.instruction
    assert isinstance(take, Take)
    if not same_validator(take):
        return _cross_take_refusal(state, take, assets)
    refused = maker_side_refusal(state, take, now_ms)
    if refused is not None:
        return refused
    buy, sell = assets(take.buy_uai), assets(take.sell_uai)
    if buy is None or sell is None:
        return Refusal.UNKNOWN_ASSET, f"no asset {take.buy_uai} here"
    taker, maker = state.users[take.taker], state.users[take.maker]
    if taker.frozen:
        return Refusal.FROZEN, f"{take.taker} is frozen"
    if taker.federation.record.kyc_level < sell.kyc_level:
        return Refusal.KYC, f"{take.taker} is below KYC level {sell.kyc_level}"
    if maker.federation.record.kyc_level < buy.kyc_level:
        return Refusal.KYC, f"{take.maker} is below KYC level {buy.kyc_level}"
    balance = state.balance(take.taker, take.buy_uai)
    if balance < take.pay:
        return Refusal.INSUFFICIENT_FUNDS, f"balance {balance} < {take.pay}"
    return None


def _cross_take_refusal(state: BooksState, take: Take, assets: Assets) -> Refused | None:
    if issuer_of(take.sell_uai) != domain_of(take.maker):
        return Refusal.WRONG_OFFER, f"{take.maker}'s validator does not issue {take.sell_uai}"
    if assets(take.buy_uai) is None:
        return Refusal.UNKNOWN_ASSET, f"no asset {take.buy_uai} here"
    if state.users[take.taker].frozen:
        return Refusal.FROZEN, f"{take.taker} is frozen"
    balance = state.balance(take.taker, take.buy_uai)
    if balance < take.held:
        return Refusal.INSUFFICIENT_FUNDS, (
            f"balance {balance} < {take.pay} + max fee {take.max_fee}"
        )
    if (take.taker, take.payment_id) in state.holds:
        return Refusal.DUPLICATE_PAYMENT, f"payment {take.payment_id!r} was held before"
    return None


def fill_refusal(state: BooksState, signed: SignedInstruction, now_ms: int) -> Refused | None:
    """Why the fill ``signed`` (well formed, ours, nonce checked) may not be carved."""
    fill = signed.instruction
    assert isinstance(fill, OfferFill)
    reservation, refused = _open_offer(state, fill.offer_id, fill.maker, fill.uai)
    if reservation is None:
        return refused
    refused = _fill_size_refusal(reservation, fill.amount, now_ms)
    if refused is not None:
        return refused
    if fill.fee_budget > reservation.fee_left:
        return Refusal.TOO_MUCH, f"fee budget {fill.fee_budget} > {reservation.fee_left} left"
    if state.users[fill.maker].frozen:
        return Refusal.FROZEN, f"{fill.maker} is frozen"
    if (fill.maker, fill.payment_id) in state.holds:
        return Refusal.DUPLICATE_PAYMENT, f"payment {fill.payment_id!r} was held before"
    return None


def unfill_refusal(state: BooksState, signed: SignedInstruction) -> Refused | None:
    """Why the unfill ``signed`` (well formed, ours, nonce checked) may not be made."""
    unfill = signed.instruction
    assert isinstance(unfill, OfferUnfill)
    hold = state.open_hold(unfill.maker, unfill.payment_id)
    carved = hold is not None and isinstance(hold.instruction.instruction, OfferFill)
    if (
        not carved
        or hold is None
        or (
            (hold.transfer.offer_id, hold.transfer.uai, hold.transfer.held)
            != (unfill.offer_id, unfill.uai, unfill.held)
        )
    ):
        return Refusal.UNKNOWN_HOLD, f"no open fill {unfill.payment_id!r} of that offer"
    if state.offers[unfill.offer_id].status != "open":
        return Refusal.OFFER_CLOSED, "the offer is closed: release the hold"
    return None


def close_refusal(state: BooksState, signed: SignedInstruction, now_ms: int) -> Refused | None:
    """Why the close ``signed`` (well formed, ours, nonce checked) may not be made."""
    close = signed.instruction
    assert isinstance(close, OfferClose)
    reservation, refused = _open_offer(state, close.offer_id, close.maker, close.uai)
    if reservation is None:
        return refused
    rest = reservation.left + reservation.fee_left
    if close.returned != rest:
        return Refusal.WRONG_AMOUNT, f"returns {close.returned}, {rest} is left"
    if close.reason == "filled" and reservation.left:
        return Refusal.WRONG_AMOUNT, f"{reservation.left} is left to sell"
    if close.reason == "expired" and now_ms < reservation.offer.expires_ms:
        return Refusal.NOT_EXPIRED, f"the offer expires at {reservation.offer.expires_ms}"
    return None
