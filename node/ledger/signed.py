"""Signed documents of the customer ledgers: identities, federation records,
asset definitions and instructions.

Rules:
- Each document is a body (a frozen dataclass) and a signature over the
  canonical msgpack of the body under its own kind (``node.signatures``), so a
  signature of one kind is never valid as another and the body's ``type``
  field names it a second time inside the signed bytes.
- Who signs what: a user signs its ``Identity`` (address + key) and its
  ``Transfer``s; the validator signs a ``FederationRecord`` (what it vouches for:
  address, key, KYC level, when, and its own key), its ``AssetDefinition``s and,
  as issuer, the ``Deposit``s and ``Withdraw``als of its assets.
- A signed document travels as ``[body bytes, signature]`` (instructions:
  ``[body bytes, signer key, signature]``); decoding is strict and canonical and
  raises ``DecodeError`` only. Verifying is a separate, explicit step.
- Amounts are integers of the asset's smallest unit, 1..AMOUNT_MAX; nonces are
  1..NONCE_MAX; times are milliseconds since the Unix epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from node.codec import TIME_MS_MAX, DecodeError, pack, require_bytes, require_int, require_str
from node.ledger.codec import ToSign as ToSign
from node.ledger.codec import (
    decode_canonical,
    require_address,
    require_domain,
    require_map,
    require_payment_id,
    require_type,
    require_uai,
)
from node.ledger.signed_offers import CLOSE_REASONS as CLOSE_REASONS
from node.ledger.signed_offers import OFFER_TYPES, offer_instruction_from_wire
from node.ledger.signed_offers import Offer as Offer
from node.ledger.signed_offers import OfferCancel as OfferCancel
from node.ledger.signed_offers import OfferClose as OfferClose
from node.ledger.signed_offers import OfferFill as OfferFill
from node.ledger.signed_offers import OfferInstruction as OfferInstruction
from node.ledger.signed_offers import OfferUnfill as OfferUnfill
from node.ledger.signed_offers import Take as Take
from node.ledger.signed_offers import pay_for as pay_for
from node.limits import (
    AMOUNT_MAX,
    ASSET_DECIMALS_MAX,
    INSTRUCTION_BYTES_MAX,
    KYC_LEVEL_MAX,
    NONCE_MAX,
    PUBLIC_KEY_BYTES,
    REASON_LENGTH_MAX,
    SIGNATURE_BYTES,
)
from node.signatures import (
    KIND_ASSET_DEFINITION,
    KIND_FEDERATION,
    KIND_LEDGER_CREDIT,
    KIND_LEDGER_CROSS_TRANSFER,
    KIND_LEDGER_DEPOSIT,
    KIND_LEDGER_RELEASE,
    KIND_LEDGER_SETTLE,
    KIND_LEDGER_TRANSFER,
    KIND_LEDGER_WITHDRAW,
    KIND_USER_IDENTITY,
    verify,
)

DOCUMENT_BYTES_MAX = INSTRUCTION_BYTES_MAX + PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 16


def _key(value: object, name: str) -> bytes:
    return require_bytes(value, name, PUBLIC_KEY_BYTES)


def _signature(value: object, name: str = "signature") -> bytes:
    return require_bytes(value, name, SIGNATURE_BYTES)


def _envelope(obj: object, length: int) -> list[Any]:
    if type(obj) is not list or len(obj) != length:
        raise DecodeError("malformed", f"a signed document is a list of {length}")
    if type(obj[0]) is not bytes:
        raise DecodeError("malformed", "a signed document's body must be bytes")
    return obj


# --- identity (signed by the user) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A user binds its key to its address."""

    address: str
    user_key: bytes

    TYPE = "user-identity"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "address": self.address, "key": self.user_key}

    def signing_request(self) -> ToSign:
        return ToSign(KIND_USER_IDENTITY, pack(self.to_wire()))


def _identity_from_wire(obj: object) -> Identity:
    fields = require_map(obj, "identity", frozenset({"type", "address", "key"}))
    require_type(fields, Identity.TYPE)
    return Identity(require_address(fields["address"], "address"), _key(fields["key"], "key"))


@dataclass(frozen=True, slots=True)
class SignedIdentity:
    identity: Identity
    signature: bytes

    def verifies(self) -> bool:
        """True when the user's own key signed this identity."""
        request = self.identity.signing_request()
        return verify(self.identity.user_key, request.kind, request.payload, self.signature)

    def to_wire(self) -> list[Any]:
        return [self.identity.signing_request().payload, self.signature]


def signed_identity_from_wire(obj: object) -> SignedIdentity:
    body, signature = _envelope(obj, 2)
    identity = decode_canonical(body, DOCUMENT_BYTES_MAX, _identity_from_wire, Identity.to_wire)
    return SignedIdentity(identity, _signature(signature))


# --- federation record (signed by the validator) -------------------------------------


@dataclass(frozen=True, slots=True)
class FederationRecord:
    """What a validator vouches for about one of its users. Never balances."""

    address: str
    user_key: bytes
    kyc_level: int
    issued_at_ms: int
    validator_key: bytes

    TYPE = "federation"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "address": self.address,
            "key": self.user_key,
            "kyc_level": self.kyc_level,
            "issued_at_ms": self.issued_at_ms,
            "validator_key": self.validator_key,
        }

    def signing_request(self) -> ToSign:
        return ToSign(KIND_FEDERATION, pack(self.to_wire()))


_FEDERATION_FIELDS = frozenset(
    {"type", "address", "key", "kyc_level", "issued_at_ms", "validator_key"}
)


def _federation_from_wire(obj: object) -> FederationRecord:
    fields = require_map(obj, "federation record", _FEDERATION_FIELDS)
    require_type(fields, FederationRecord.TYPE)
    return FederationRecord(
        require_address(fields["address"], "address"),
        _key(fields["key"], "key"),
        require_int(fields["kyc_level"], "kyc_level", 0, KYC_LEVEL_MAX),
        require_int(fields["issued_at_ms"], "issued_at_ms", 0, TIME_MS_MAX),
        _key(fields["validator_key"], "validator_key"),
    )


@dataclass(frozen=True, slots=True)
class SignedFederationRecord:
    record: FederationRecord
    signature: bytes

    def verifies(self, validator_key: bytes) -> bool:
        """True when ``validator_key`` (a key the reader trusts) issued this record."""
        request = self.record.signing_request()
        return self.record.validator_key == validator_key and verify(
            validator_key, request.kind, request.payload, self.signature
        )

    def to_wire(self) -> list[Any]:
        return [self.record.signing_request().payload, self.signature]


def signed_federation_from_wire(obj: object) -> SignedFederationRecord:
    body, signature = _envelope(obj, 2)
    record = decode_canonical(
        body, DOCUMENT_BYTES_MAX, _federation_from_wire, FederationRecord.to_wire
    )
    return SignedFederationRecord(record, _signature(signature))


# --- asset definition (signed by the issuer) ------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetDefinition:
    """A UAI's rules. ``max_supply`` None: up to AMOUNT_MAX outstanding."""

    uai: str
    decimals: int
    kyc_level: int
    max_supply: int | None

    TYPE = "asset-definition"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "uai": self.uai,
            "decimals": self.decimals,
            "kyc_level": self.kyc_level,
            "max_supply": self.max_supply,
        }

    def signing_request(self) -> ToSign:
        return ToSign(KIND_ASSET_DEFINITION, pack(self.to_wire()))

    @property
    def supply_max(self) -> int:
        return AMOUNT_MAX if self.max_supply is None else self.max_supply


def _asset_from_wire(obj: object) -> AssetDefinition:
    fields = require_map(
        obj, "asset definition", frozenset({"type", "uai", "decimals", "kyc_level", "max_supply"})
    )
    require_type(fields, AssetDefinition.TYPE)
    max_supply = fields["max_supply"]
    return AssetDefinition(
        require_uai(fields["uai"], "uai"),
        require_int(fields["decimals"], "decimals", 0, ASSET_DECIMALS_MAX),
        require_int(fields["kyc_level"], "kyc_level", 0, KYC_LEVEL_MAX),
        None if max_supply is None else require_int(max_supply, "max_supply", 1, AMOUNT_MAX),
    )


@dataclass(frozen=True, slots=True)
class SignedAssetDefinition:
    definition: AssetDefinition
    signature: bytes

    def verifies(self, issuer_key: bytes) -> bool:
        request = self.definition.signing_request()
        return verify(issuer_key, request.kind, request.payload, self.signature)

    def to_wire(self) -> list[Any]:
        return [self.definition.signing_request().payload, self.signature]


def signed_asset_from_wire(obj: object) -> SignedAssetDefinition:
    body, signature = _envelope(obj, 2)
    definition = decode_canonical(
        body, DOCUMENT_BYTES_MAX, _asset_from_wire, AssetDefinition.to_wire
    )
    return SignedAssetDefinition(definition, _signature(signature))


# --- instructions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transfer:
    """Signed by the payer: move ``amount`` of ``uai`` from ``from_ubi`` to ``to_ubi``."""

    from_ubi: str
    to_ubi: str
    uai: str
    amount: int
    nonce: int
    created_ms: int

    TYPE = "transfer"
    KIND = KIND_LEDGER_TRANSFER

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "from": self.from_ubi,
            "to": self.to_ubi,
            "uai": self.uai,
            "amount": self.amount,
            "nonce": self.nonce,
            "created_ms": self.created_ms,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class _Issue:
    """Signed by the issuer: move ``amount`` of ``uai`` between its books and the user ``ubi``."""

    ubi: str
    uai: str
    amount: int
    nonce: int

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[bytes] = b""

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "ubi": self.ubi,
            "uai": self.uai,
            "amount": self.amount,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class Deposit(_Issue):
    """Signed by the issuer: emit ``amount`` of ``uai`` to the user ``ubi``."""

    TYPE: ClassVar[str] = "deposit"
    KIND: ClassVar[bytes] = KIND_LEDGER_DEPOSIT


@dataclass(frozen=True, slots=True)
class Withdraw(_Issue):
    """Signed by the issuer: redeem ``amount`` of ``uai`` from the user ``ubi``."""

    TYPE: ClassVar[str] = "withdraw"
    KIND: ClassVar[bytes] = KIND_LEDGER_WITHDRAW


@dataclass(frozen=True, slots=True)
class CrossTransfer:
    """Signed by the payer: pay ``amount`` of the payer's ``uai`` to ``to_address``,
    a customer of another validator, paying at most ``max_fee`` in fees. Its
    validator holds ``amount + max_fee`` (``held``) until the payment ``payment_id``
    ends: then it settles the hold (the debit is final) or releases it."""

    from_ubi: str
    to_address: str
    uai: str
    amount: int
    max_fee: int
    payment_id: str
    nonce: int
    created_ms: int

    TYPE = "cross-transfer"
    KIND = KIND_LEDGER_CROSS_TRANSFER

    @property
    def held(self) -> int:
        return self.amount + self.max_fee

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "from": self.from_ubi,
            "to": self.to_address,
            "uai": self.uai,
            "amount": self.amount,
            "max_fee": self.max_fee,
            "payment_id": self.payment_id,
            "nonce": self.nonce,
            "created_ms": self.created_ms,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class Settle:
    """Signed by the validator: the hold ``payment_id`` on ``ubi`` (``held``) ends
    as a final debit of ``debit`` (the amount and the fees paid); the rest of the
    hold returns to the payer."""

    ubi: str
    uai: str
    payment_id: str
    held: int
    debit: int
    nonce: int

    TYPE = "settle"
    KIND = KIND_LEDGER_SETTLE

    @property
    def amount(self) -> int:
        return self.debit

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "ubi": self.ubi,
            "uai": self.uai,
            "payment_id": self.payment_id,
            "held": self.held,
            "debit": self.debit,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class Release:
    """Signed by the validator: the hold ``payment_id`` on ``ubi`` returns whole
    (``held``) to the payer; ``reason`` says why the payment failed."""

    ubi: str
    uai: str
    payment_id: str
    held: int
    reason: str
    nonce: int

    TYPE = "release"
    KIND = KIND_LEDGER_RELEASE

    @property
    def amount(self) -> int:
        return self.held

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "ubi": self.ubi,
            "uai": self.uai,
            "payment_id": self.payment_id,
            "held": self.held,
            "reason": self.reason,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


@dataclass(frozen=True, slots=True)
class Credit:
    """Signed by the payee's validator: ``amount`` of its ``uai`` to its customer
    ``ubi``, paid by validator ``payer`` over the mesh as payment ``payment_id``.
    The money is the validator's position with its upstream peer."""

    ubi: str
    uai: str
    amount: int
    payer: str
    payment_id: str
    nonce: int

    TYPE = "credit"
    KIND = KIND_LEDGER_CREDIT

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "ubi": self.ubi,
            "uai": self.uai,
            "amount": self.amount,
            "payer": self.payer,
            "payment_id": self.payment_id,
            "nonce": self.nonce,
        }

    def signing_request(self) -> ToSign:
        return ToSign(self.KIND, pack(self.to_wire()))


Instruction = (
    Transfer
    | Deposit
    | Withdraw
    | CrossTransfer
    | Settle
    | Release
    | Credit
    | Offer
    | OfferCancel
    | Take
    | OfferFill
    | OfferUnfill
    | OfferClose
)
HoldEnd = Settle | Release
ValidatorInstruction = Deposit | Withdraw | Settle | Release | Credit
"""Instructions the validator signs as issuer (its books' nonces)."""
OfferAction = OfferFill | OfferUnfill | OfferClose
"""Instructions the maker's validator signs about an offer's reservation (its books' nonces)."""
UserInstruction = Transfer | CrossTransfer | Offer | OfferCancel | Take
"""Instructions a customer signs (its own nonces)."""

_TRANSFER_FIELDS = frozenset({"type", "from", "to", "uai", "amount", "nonce", "created_ms"})
_ISSUE_FIELDS = frozenset({"type", "ubi", "uai", "amount", "nonce"})
_CROSS_FIELDS = frozenset(
    {"type", "from", "to", "uai", "amount", "max_fee", "payment_id", "nonce", "created_ms"}
)
_SETTLE_FIELDS = frozenset({"type", "ubi", "uai", "payment_id", "held", "debit", "nonce"})
_RELEASE_FIELDS = frozenset({"type", "ubi", "uai", "payment_id", "held", "reason", "nonce"})
_CREDIT_FIELDS = frozenset({"type", "ubi", "uai", "amount", "payer", "payment_id", "nonce"})


def _amount(value: object, name: str = "amount") -> int:
    return require_int(value, name, 1, AMOUNT_MAX)


def _nonce(value: object) -> int:
    return require_int(value, "nonce", 1, NONCE_MAX)


def _cross_transfer(obj: dict[str, Any]) -> CrossTransfer:
    fields = require_map(obj, "cross-transfer", _CROSS_FIELDS)
    transfer = CrossTransfer(
        require_address(fields["from"], "from"),
        require_address(fields["to"], "to"),
        require_uai(fields["uai"], "uai"),
        _amount(fields["amount"]),
        require_int(fields["max_fee"], "max_fee", 0, AMOUNT_MAX),
        require_payment_id(fields["payment_id"], "payment_id"),
        _nonce(fields["nonce"]),
        require_int(fields["created_ms"], "created_ms", 0, TIME_MS_MAX),
    )
    if transfer.held > AMOUNT_MAX:
        raise DecodeError("bad-field", f"amount + max_fee above {AMOUNT_MAX}")
    return transfer


def _hold_end(obj: dict[str, Any], kind: object) -> Settle | Release:
    if kind == Settle.TYPE:
        fields = require_map(obj, "settle", _SETTLE_FIELDS)
        held = _amount(fields["held"], "held")
        settle = Settle(
            require_address(fields["ubi"], "ubi"),
            require_uai(fields["uai"], "uai"),
            require_payment_id(fields["payment_id"], "payment_id"),
            held,
            require_int(fields["debit"], "debit", 1, held),
            _nonce(fields["nonce"]),
        )
        return settle
    fields = require_map(obj, "release", _RELEASE_FIELDS)
    return Release(
        require_address(fields["ubi"], "ubi"),
        require_uai(fields["uai"], "uai"),
        require_payment_id(fields["payment_id"], "payment_id"),
        _amount(fields["held"], "held"),
        require_str(fields["reason"], "reason", REASON_LENGTH_MAX),
        _nonce(fields["nonce"]),
    )


def _credit(obj: dict[str, Any]) -> Credit:
    fields = require_map(obj, "credit", _CREDIT_FIELDS)
    return Credit(
        require_address(fields["ubi"], "ubi"),
        require_uai(fields["uai"], "uai"),
        _amount(fields["amount"]),
        require_domain(fields["payer"], "payer"),
        require_payment_id(fields["payment_id"], "payment_id"),
        _nonce(fields["nonce"]),
    )


def instruction_from_wire(obj: object) -> Instruction:
    if type(obj) is not dict:
        raise DecodeError("malformed", "an instruction must be a map")
    kind = obj.get("type")
    if kind == Transfer.TYPE:
        fields = require_map(obj, "transfer", _TRANSFER_FIELDS)
        return Transfer(
            require_address(fields["from"], "from"),
            require_address(fields["to"], "to"),
            require_uai(fields["uai"], "uai"),
            _amount(fields["amount"]),
            _nonce(fields["nonce"]),
            require_int(fields["created_ms"], "created_ms", 0, TIME_MS_MAX),
        )
    if kind in (Deposit.TYPE, Withdraw.TYPE):
        fields = require_map(obj, str(kind), _ISSUE_FIELDS)
        cls = Deposit if kind == Deposit.TYPE else Withdraw
        return cls(
            require_address(fields["ubi"], "ubi"),
            require_uai(fields["uai"], "uai"),
            _amount(fields["amount"]),
            _nonce(fields["nonce"]),
        )
    if kind == CrossTransfer.TYPE:
        return _cross_transfer(obj)
    if kind in (Settle.TYPE, Release.TYPE):
        return _hold_end(obj, kind)
    if kind == Credit.TYPE:
        return _credit(obj)
    if kind in OFFER_TYPES:
        return offer_instruction_from_wire(obj)
    raise DecodeError("unknown-type", f"instruction type {kind!r}")


def _instruction_to_wire(instruction: Instruction) -> dict[str, Any]:
    return instruction.to_wire()


def instruction_from_payload(payload: bytes) -> Instruction:
    """Decode an instruction's signed body bytes, strictly and canonically."""
    return decode_canonical(
        payload, INSTRUCTION_BYTES_MAX, instruction_from_wire, _instruction_to_wire
    )


@dataclass(frozen=True, slots=True)
class SignedInstruction:
    """An instruction, the public key that signed it and the signature.

    The instruction's canonical bytes are packed once and kept (``payload``):
    verifying, hashing entries and logging them all need the same bytes. An
    instruction decoded from bytes keeps the bytes it came from (the strict
    decoder proved them canonical) and is ``decoded``: well-formed by
    construction. The outcome of checking the signature is kept too: the
    object cannot change, so neither can the answer (a shell may check a
    batch's signatures on several cores before the core asks). None of these
    is part of equality."""

    instruction: Instruction
    signer_key: bytes
    signature: bytes
    _payload: bytes | None = field(default=None, init=False, repr=False, compare=False)
    decoded: bool = field(default=False, init=False, repr=False, compare=False)
    _verified: bool | None = field(default=None, init=False, repr=False, compare=False)

    def verifies(self) -> bool:
        verified = self._verified
        if verified is None:
            verified = verify(
                self.signer_key, self.instruction.KIND, self.payload(), self.signature
            )
            object.__setattr__(self, "_verified", verified)
        return verified

    def payload(self) -> bytes:
        payload = self._payload
        if payload is None:
            payload = self.instruction.signing_request().payload
            object.__setattr__(self, "_payload", payload)
        return payload

    def to_wire(self) -> list[Any]:
        return [self.payload(), self.signer_key, self.signature]


def signed_instruction_from_parts(
    payload: object, signer_key: object, signature: object
) -> SignedInstruction:
    if type(payload) is not bytes:
        raise DecodeError("bad-field", "instruction must be bytes")
    signed = SignedInstruction(
        instruction_from_payload(payload), _key(signer_key, "signer"), _signature(signature)
    )
    object.__setattr__(signed, "_payload", payload)
    object.__setattr__(signed, "decoded", True)
    return signed


def signed_instruction_from_wire(obj: object) -> SignedInstruction:
    payload, signer_key, signature = _envelope(obj, 3)
    return signed_instruction_from_parts(payload, signer_key, signature)


# --- byte strings -----------------------------------------------------------------------


def encode_signed(
    document: SignedIdentity | SignedFederationRecord | SignedAssetDefinition | SignedInstruction,
) -> bytes:
    return pack(document.to_wire())


def decode_identity(raw: bytes) -> SignedIdentity:
    return decode_canonical(
        raw, DOCUMENT_BYTES_MAX, signed_identity_from_wire, SignedIdentity.to_wire
    )


def decode_federation(raw: bytes) -> SignedFederationRecord:
    return decode_canonical(
        raw, DOCUMENT_BYTES_MAX, signed_federation_from_wire, SignedFederationRecord.to_wire
    )


def decode_asset_definition(raw: bytes) -> SignedAssetDefinition:
    return decode_canonical(
        raw, DOCUMENT_BYTES_MAX, signed_asset_from_wire, SignedAssetDefinition.to_wire
    )


def decode_instruction(raw: bytes) -> SignedInstruction:
    return decode_canonical(
        raw, DOCUMENT_BYTES_MAX, signed_instruction_from_wire, SignedInstruction.to_wire
    )
