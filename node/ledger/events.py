"""Inputs, effects, refusal reasons and read-only views of a validator's Books.

Rules:
- Inputs: ``Action*`` come from the validator's operator (or its shell on the
  operator's behalf), ``Receive*`` from a user. Every input is untrusted: the
  Books check it and refuse it with a stable reason code, changing nothing.
- Effects, in order: ``SignRecord`` (handle's only way to change anything: the
  shell signs ``to_sign`` with the node key and calls ``Books.apply_signed``),
  then, from ``apply_signed``, ``PersistRecord`` (make the complete record
  durable before releasing what follows) and ``Notify*`` (answers, counters).
- Everything here is a frozen dataclass; reason codes are stable strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from node.ledger.chain import ChainEntry
from node.ledger.records import Record
from node.ledger.signed import (
    Offer,
    SignedAssetDefinition,
    SignedFederationRecord,
    SignedIdentity,
    SignedInstruction,
    ToSign,
)


class Refusal(enum.StrEnum):
    """Why an input was refused. Nothing is recorded; every chain is untouched."""

    BAD_INSTRUCTION = "bad-instruction"  # not the instruction this input takes, or malformed
    BAD_SIGNATURE = "bad-signature"  # not signed, on these exact bytes, by who must sign it
    BAD_AMOUNT = "bad-amount"  # not 1..AMOUNT_MAX
    UNKNOWN_USER = "unknown-user"  # the payer or the account is not a user of ours
    UNKNOWN_PAYEE = "unknown-payee"  # the payee is not a user of ours
    UNKNOWN_ASSET = "unknown-asset"  # no definition of the uai here
    REPLAY = "replay"  # the nonce is not above the signer account's last one
    SELF_TRANSFER = "self-transfer"
    FROZEN = "frozen"  # the payer, the payee or the account is frozen
    KYC = "kyc"  # the receiving user's KYC level is below the asset's
    INSUFFICIENT_FUNDS = "insufficient-funds"
    DAILY_LIMIT = "daily-limit"  # today's (UTC) transfers of the uai would pass the limit
    MAX_SUPPLY = "max-supply"  # the deposit would put more than max_supply outstanding
    BAD_ADDRESS = "bad-address"  # a user of another domain, or malformed
    USER_EXISTS = "user-exists"  # the address is registered, differently
    BAD_KYC_LEVEL = "bad-kyc-level"
    BAD_ATTRIBUTES = "bad-attributes"
    TOO_MANY_USERS = "too-many-users"
    BAD_ASSET = "bad-asset"  # the definition's fields are out of range
    NOT_ISSUER = "not-issuer"  # a uai of another issuer
    ASSET_EXISTS = "asset-exists"  # the uai is defined, differently
    TOO_MANY_ASSETS = "too-many-assets"
    DUPLICATE_PAYMENT = "duplicate-payment"  # the payer held funds for this payment id before
    UNKNOWN_HOLD = "unknown-hold"  # no open hold of that payer, payment id and amount
    DUPLICATE_CREDIT = "duplicate-credit"  # that payer's payment id was credited before
    UNKNOWN_OFFER = "unknown-offer"  # no offer of that id here
    OFFER_CLOSED = "offer-closed"  # the offer's reservation has ended
    WRONG_OFFER = "wrong-offer"  # the maker or the assets differ from the offer's
    TOO_SMALL = "too-small"  # below the offer's min_fill, and not all that is left
    TOO_MUCH = "too-much"  # more than the offer has left (or its fee budget)
    PRICE = "price"  # pays less than the offer's price, rounded up
    SELF_TAKE = "self-take"  # the taker is the maker
    EXPIRED = "expired"  # the offer's expires_ms has passed
    NOT_EXPIRED = "not-expired"  # closed as expired before its expires_ms
    OFFER_LIMIT = "offer-limit"  # the maker has OFFERS_OPEN_PER_USER_MAX open offers
    DUPLICATE_OFFER = "duplicate-offer"  # this offer was received before
    WRONG_AMOUNT = "wrong-amount"  # a close that does not return exactly what is left


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionRegisterUser:
    """Register the user whose signed identity this is, with the KYC level and
    attributes the operator gives it."""

    identity: SignedIdentity
    kyc_level: int
    attributes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ActionDefineAsset:
    """Define one of our assets; the definition is signed by our key."""

    definition: SignedAssetDefinition


@dataclass(frozen=True, slots=True)
class ActionDeposit:
    """Emit to a user: a ``Deposit`` signed by our key, as issuer."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionWithdraw:
    """Redeem from a user: a ``Withdraw`` signed by our key, as issuer."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionFreeze:
    """Freeze (or unfreeze) a user: no money moves into or out of a frozen account."""

    address: str
    frozen: bool


@dataclass(frozen=True, slots=True)
class ReceiveTransfer:
    """A user's ``Transfer`` to another user of ours, signed by the payer."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ReceiveCrossTransfer:
    """A user's ``CrossTransfer`` to a customer of another validator, signed by
    the payer: hold ``amount + max_fee`` until the payment ends."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionSettle:
    """End a hold as a final debit: a ``Settle`` signed by our key."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionRelease:
    """End a hold by giving it back: a ``Release`` signed by our key."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionCredit:
    """Credit a customer paid over the mesh: a ``Credit`` signed by our key."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ReceiveOffer:
    """A customer's ``Offer``, signed by the maker: reserve ``sell_amount +
    max_fee`` of its ``sell_uai`` until the offer is closed."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ReceiveTake:
    """A customer's ``Take`` of an offer, signed by the taker. With the maker
    ours: the exchange, at once, on both chains. With the maker elsewhere:
    hold ``pay + max_fee`` of ``buy_uai`` as the payment ``take_id.hex()``."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionOfferFill:
    """Carve a fill's hold out of an offer's reservation: an ``OfferFill`` signed by our key."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionOfferUnfill:
    """Put a carved hold back into its reservation: an ``OfferUnfill`` signed by our key."""

    instruction: SignedInstruction


@dataclass(frozen=True, slots=True)
class ActionOfferClose:
    """End an offer's reservation, the rest to the maker: an ``OfferClose`` signed by our key."""

    instruction: SignedInstruction


Input = (
    ActionRegisterUser
    | ActionDefineAsset
    | ActionDeposit
    | ActionWithdraw
    | ActionFreeze
    | ReceiveTransfer
    | ReceiveCrossTransfer
    | ActionSettle
    | ActionRelease
    | ActionCredit
    | ReceiveOffer
    | ReceiveTake
    | ActionOfferFill
    | ActionOfferUnfill
    | ActionOfferClose
)


# --- effects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignRecord:
    """Sign each of ``to_sign`` with the node key, in order, then call
    ``Books.apply_signed(record, signatures)`` before the next ``handle``.
    ``to_sign`` may be empty: the call is the same."""

    record: Record
    to_sign: tuple[ToSign, ...]


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """Make ``record`` (complete, with its signatures) durable before releasing
    the notifications that follow it."""

    record: Record


@dataclass(frozen=True, slots=True)
class NotifyRefused:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class NotifyAppended:
    """Final, validator-signed entries of one instruction: the debited chain's
    first (the payer's, the issuer's books for a deposit, the user's for a
    withdrawal), then the credited one's."""

    entries: tuple[ChainEntry, ...]


@dataclass(frozen=True, slots=True)
class NotifyRegistered:
    """A user is registered (or already was, identically): its federation record."""

    federation: SignedFederationRecord


@dataclass(frozen=True, slots=True)
class NotifyAssetDefined:
    definition: SignedAssetDefinition


@dataclass(frozen=True, slots=True)
class NotifyFrozen:
    address: str
    frozen: bool


Effect = (
    SignRecord
    | PersistRecord
    | NotifyRefused
    | NotifyAppended
    | NotifyRegistered
    | NotifyAssetDefined
    | NotifyFrozen
)


# --- views -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserView:
    address: str
    user_key: bytes
    kyc_level: int
    attributes: Mapping[str, str]
    frozen: bool
    federation: SignedFederationRecord
    identity: SignedIdentity


@dataclass(frozen=True, slots=True)
class AssetTotals:
    """Lifetime sums of one asset. ``outstanding`` = issued - redeemed -
    paid_out + paid_in = the sum of every user's balance + ``held`` (open
    holds) + ``reserved`` (open offers' reservations) = minus the issuer's
    books balance."""

    issued: int
    redeemed: int
    paid_out: int = 0
    paid_in: int = 0
    held: int = 0
    reserved: int = 0

    @property
    def outstanding(self) -> int:
        return self.issued - self.redeemed - self.paid_out + self.paid_in


@dataclass(frozen=True, slots=True)
class OfferView:
    """An offer and its reservation: ``left`` (of the sell amount) and
    ``fee_left`` (of max_fee) are what the reservation still holds; carved
    holds and fills are out of it. ``status`` open or closed; ``reason`` why
    it closed (cancelled, expired, filled)."""

    offer_id: bytes
    signed: SignedInstruction
    left: int
    fee_left: int
    status: str
    reason: str

    @property
    def offer(self) -> Offer:
        offer = self.signed.instruction
        assert isinstance(offer, Offer)
        return offer
