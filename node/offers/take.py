"""Messages of the take protocol across validators (docs/OFFERS.md, section 4).

Rules:
- TAKE goes from the taker's validator T along ``path`` (T first, the maker's
  validator M last), relayed hop by hop like an invoice request: the taker's
  signed Take, the condition h = SHA-256(s) of T's secret, T's domain, and T's
  signature over ``pack([take_id, h, T])`` (KIND_TAKE_FORWARD), so no relay
  can swap the condition or claim the take for another validator.
- TAKE_ANSWER goes back along the same path: M's signed Acceptance or an
  error code (with a human ``detail``), never both.
- An Acceptance is M's promise, signed under KIND_OFFER_ACCEPTANCE: it accepts
  take ``take_id`` of ``amount`` for ``pay`` against condition h, and
  ``filled`` is the offer's cumulative accepted amount, this take included.
  Acceptances of one offer whose amounts add up to more than the offer holds
  prove M's fraud (``node.offers.evidence``).
- A LegAHeld receipt is M's second signature (KIND_OFFER_LEG_A_HELD), made
  when leg A's parts add up at M and before leg B leaves: "take ``take_id``'s
  leg A of ``held`` is held here under condition h until
  ``leg_a_expires_ms``; leg B is mine to pay". It is what makes the taker's
  claim sound: without it T could claim against an M it never paid. It
  travels back to T in a TAKE_ANSWER with the acceptance (``held``).
- An acceptance binds M until ``settlement_horizon_ms``: leg A's parts may
  live that long, so M keeps expecting it (and a late reveal) until then. Past
  it (and the clock skew), M either knows the secret, because the taker was
  credited, or did not settle (``node.offers.unsettled``).
- Decoding is strict and raises DecodeError only; verifying is a separate
  step (``take_problem``, ``acceptance_problem``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import (
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
)
from node.ledger.codec import ToSign, domain_of, require_address, require_domain
from node.ledger.signed import SignedInstruction, Take, signed_instruction_from_wire
from node.limits import (
    ACCEPTANCE_BYTES_MAX,
    AMOUNT_MAX,
    EXCHANGE_CLAIM_MARGIN_MS,
    EXCHANGE_LEG_A_FINAL_DELTA_MS,
    EXCHANGE_TAKE_TIMEOUT_MS,
    HASH_BYTES,
    PAYMENT_DEADLINE_MS_DEFAULT,
    PAYMENT_EXPIRY_MS_MAX,
    PAYMENT_HOPS_MAX,
    PUBLIC_KEY_BYTES,
    REASON_LENGTH_MAX,
    SIGNATURE_BYTES,
)
from node.signatures import (
    KIND_OFFER_ACCEPTANCE,
    KIND_OFFER_LEG_A_HELD,
    KIND_TAKE_FORWARD,
    verify,
)

# --- the acceptance ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acceptance:
    """Signed by the maker's validator: it accepts one take of one offer."""

    offer_id: bytes
    take_id: bytes
    validator: str  # the maker's validator, M
    validator_key: bytes
    taker: str  # address
    taker_validator: str  # T
    amount: int  # of the offer's sell asset
    pay: int  # of its buy asset
    condition: bytes  # h
    filled: int  # the offer's cumulative accepted amount, this take included
    leg_deadline_ms: int
    issued_ms: int

    TYPE = "offer-acceptance"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "offer_id": self.offer_id,
            "take_id": self.take_id,
            "validator": self.validator,
            "validator_key": self.validator_key,
            "taker": self.taker,
            "taker_validator": self.taker_validator,
            "amount": self.amount,
            "pay": self.pay,
            "condition": self.condition,
            "filled": self.filled,
            "leg_deadline_ms": self.leg_deadline_ms,
            "issued_ms": self.issued_ms,
        }

    def to_sign(self) -> bytes:
        return pack(self.to_wire())

    def signing_request(self) -> ToSign:
        """What M signs: ``NodeKey.sign(request.kind, request.payload)``."""
        return ToSign(KIND_OFFER_ACCEPTANCE, self.to_sign())


_ACCEPTANCE_FIELDS = frozenset(Acceptance(b"", b"", "", b"", "", "", 0, 0, b"", 0, 0, 0).to_wire())


def acceptance_from_wire(obj: object) -> Acceptance:
    fields = require_map(obj, "acceptance", _ACCEPTANCE_FIELDS)
    if fields["type"] != Acceptance.TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    amount = require_int(fields["amount"], "amount", 1, AMOUNT_MAX)
    return Acceptance(
        require_bytes(fields["offer_id"], "offer_id", HASH_BYTES),
        require_bytes(fields["take_id"], "take_id", HASH_BYTES),
        require_domain(fields["validator"], "validator"),
        require_bytes(fields["validator_key"], "validator_key", PUBLIC_KEY_BYTES),
        require_address(fields["taker"], "taker"),
        require_domain(fields["taker_validator"], "taker_validator"),
        amount,
        require_int(fields["pay"], "pay", 1, AMOUNT_MAX),
        require_bytes(fields["condition"], "condition", HASH_BYTES),
        require_int(fields["filled"], "filled", amount, AMOUNT_MAX),
        require_int(fields["leg_deadline_ms"], "leg_deadline_ms", 0, TIME_MS_MAX),
        require_int(fields["issued_ms"], "issued_ms", 0, TIME_MS_MAX),
    )


@dataclass(frozen=True, slots=True)
class SignedAcceptance:
    acceptance: Acceptance
    signature: bytes

    def verifies(self, validator_key: bytes) -> bool:
        return self.acceptance.validator_key == validator_key and verify(
            validator_key, KIND_OFFER_ACCEPTANCE, self.acceptance.to_sign(), self.signature
        )

    def to_wire(self) -> list[Any]:
        return [self.acceptance.to_sign(), self.signature]


def _payload_and_signature(obj: object, what: str) -> tuple[Any, bytes]:
    """M's signed documents travel as [canonical payload, signature]. Raises DecodeError."""
    if type(obj) is not list or len(obj) != 2:
        raise DecodeError("malformed", f"a signed {what} is [payload, signature]")
    return obj[0], require_bytes(obj[1], "signature", SIGNATURE_BYTES)


def signed_acceptance_from_wire(obj: object) -> SignedAcceptance:
    payload, signature = _payload_and_signature(obj, "acceptance")
    acceptance = decode_canonical(
        payload, ACCEPTANCE_BYTES_MAX, acceptance_from_wire, Acceptance.to_wire
    )
    return SignedAcceptance(acceptance, signature)


# --- the receipt of leg A ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegAHeld:
    """Signed by the maker's validator M when leg A of a take it accepted is held at
    it: the taker's validator paid its part; leg B is M's to pay."""

    offer_id: bytes
    take_id: bytes
    validator: str  # M
    validator_key: bytes
    condition: bytes  # h, as in the acceptance
    held: int  # leg A's parts held at M, in the offer's buy asset
    leg_a_expires_ms: int  # the earliest expiry among them: M may claim leg A until then
    leg_b_latest_ms: int  # leg B's first transfers expire no later than this
    issued_ms: int

    TYPE = "offer-leg-a-held"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "offer_id": self.offer_id,
            "take_id": self.take_id,
            "validator": self.validator,
            "validator_key": self.validator_key,
            "condition": self.condition,
            "held": self.held,
            "leg_a_expires_ms": self.leg_a_expires_ms,
            "leg_b_latest_ms": self.leg_b_latest_ms,
            "issued_ms": self.issued_ms,
        }

    def to_sign(self) -> bytes:
        return pack(self.to_wire())

    def signing_request(self) -> ToSign:
        return ToSign(KIND_OFFER_LEG_A_HELD, self.to_sign())


_LEG_A_HELD_FIELDS = frozenset(LegAHeld(b"", b"", "", b"", b"", 0, 0, 0, 0).to_wire())


def leg_a_held_from_wire(obj: object) -> LegAHeld:
    fields = require_map(obj, "receipt", _LEG_A_HELD_FIELDS)
    if fields["type"] != LegAHeld.TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    return LegAHeld(
        require_bytes(fields["offer_id"], "offer_id", HASH_BYTES),
        require_bytes(fields["take_id"], "take_id", HASH_BYTES),
        require_domain(fields["validator"], "validator"),
        require_bytes(fields["validator_key"], "validator_key", PUBLIC_KEY_BYTES),
        require_bytes(fields["condition"], "condition", HASH_BYTES),
        require_int(fields["held"], "held", 1, AMOUNT_MAX),
        require_int(fields["leg_a_expires_ms"], "leg_a_expires_ms", 0, TIME_MS_MAX),
        require_int(fields["leg_b_latest_ms"], "leg_b_latest_ms", 0, TIME_MS_MAX),
        require_int(fields["issued_ms"], "issued_ms", 0, TIME_MS_MAX),
    )


@dataclass(frozen=True, slots=True)
class SignedLegAHeld:
    receipt: LegAHeld
    signature: bytes

    def verifies(self, validator_key: bytes) -> bool:
        return self.receipt.validator_key == validator_key and verify(
            validator_key, KIND_OFFER_LEG_A_HELD, self.receipt.to_sign(), self.signature
        )

    def to_wire(self) -> list[Any]:
        return [self.receipt.to_sign(), self.signature]


def signed_leg_a_held_from_wire(obj: object) -> SignedLegAHeld:
    payload, signature = _payload_and_signature(obj, "receipt")
    receipt = decode_canonical(
        payload, ACCEPTANCE_BYTES_MAX, leg_a_held_from_wire, LegAHeld.to_wire
    )
    return SignedLegAHeld(receipt, signature)


def receipt_problem(signed: SignedLegAHeld, acceptance: Acceptance) -> str | None:
    """Why ``signed`` is not M's receipt of leg A for the take ``acceptance``
    accepted, paid in full, with times an honest M can sign, or None.

    The times bound the claim's window: M receives leg A only until the
    acceptance's horizon (its expectation expires then), a payee's transfer
    expires at most PAYMENT_EXPIRY_MS_MAX after it arrives, and leg B's latest
    expiry is leg A's minus EXCHANGE_CLAIM_MARGIN_MS."""
    receipt = signed.receipt
    if not signed.verifies(acceptance.validator_key):
        return "bad-receipt-signature"
    ours = (acceptance.offer_id, acceptance.take_id, acceptance.condition, acceptance.validator)
    if (receipt.offer_id, receipt.take_id, receipt.condition, receipt.validator) != ours:
        return "other-receipt"
    if receipt.held < acceptance.pay:
        return "underpaid"
    issued_ms, expires_ms = receipt.issued_ms, receipt.leg_a_expires_ms
    if not acceptance.issued_ms <= issued_ms <= settlement_horizon_ms(acceptance):
        return "bad-receipt-times"
    if not issued_ms < expires_ms <= issued_ms + PAYMENT_EXPIRY_MS_MAX:
        return "bad-receipt-times"
    if receipt.leg_b_latest_ms != expires_ms - EXCHANGE_CLAIM_MARGIN_MS:
        return "bad-receipt-times"
    return None


def settlement_horizon_ms(acceptance: Acceptance) -> int:
    """When the exchange of ``acceptance`` has ended either way: T pays leg A until
    its deadline (``leg_deadline_ms`` + PAYMENT_DEADLINE_MS_DEFAULT), and leg A's
    parts outlive leg B's by EXCHANGE_LEG_A_FINAL_DELTA_MS. M expects leg A (and
    the secret) until then."""
    return acceptance.leg_deadline_ms + PAYMENT_DEADLINE_MS_DEFAULT + EXCHANGE_LEG_A_FINAL_DELTA_MS


def acceptance_problem(signed: SignedAcceptance, validator_key: bytes) -> str | None:
    """Why ``signed`` is not an acceptance by ``validator_key`` (M's key as the
    reader's trust knows it), with the times an honest M signs, or None."""
    if signed.acceptance.validator_key != validator_key:
        return "wrong-validator"
    if not signed.verifies(validator_key):
        return "bad-signature"
    return acceptance_times_problem(signed.acceptance)


def acceptance_times_problem(acceptance: Acceptance) -> str | None:
    """An honest M gives the taker's validator EXCHANGE_TAKE_TIMEOUT_MS from when it
    accepted: any other deadline would move the claim's window at M's will."""
    if acceptance.leg_deadline_ms != acceptance.issued_ms + EXCHANGE_TAKE_TIMEOUT_MS:
        return "bad-acceptance-times"
    return None


def acceptance_mismatch(
    acceptance: Acceptance, take: Take, condition: bytes, taker_validator: str
) -> str | None:
    """Why ``acceptance`` does not answer T's take (``take`` sent by ``taker_validator``
    with ``condition``), or None: every field ``evidence check`` holds M to."""
    ours = (take.offer_id, take.take_id, take.taker, taker_validator)
    theirs = (acceptance.offer_id, acceptance.take_id, acceptance.taker, acceptance.taker_validator)
    if ours != theirs:
        return "other-take"
    if (acceptance.amount, acceptance.pay) != (take.amount, take.pay):
        return "other-amounts"
    if acceptance.condition != condition:
        return "other-condition"
    if acceptance.validator != domain_of(take.maker):
        return "other-validator"
    return None


# --- TAKE and TAKE_ANSWER ------------------------------------------------------------------


def take_forward_request(take_id: bytes, condition: bytes, taker_validator: str) -> ToSign:
    """What T signs to send a take towards M."""
    return ToSign(KIND_TAKE_FORWARD, pack([take_id, condition, taker_validator]))


def _path(value: object) -> tuple[str, ...]:
    hops = require_list(value, "path", PAYMENT_HOPS_MAX + 1)
    path = tuple(require_domain(hop, "path") for hop in hops)
    if len(path) < 2 or len(set(path)) != len(path):
        raise DecodeError("bad-field", "a path names two or more distinct domains")
    return path


@dataclass(frozen=True, slots=True)
class TakeRequest:
    """Peer message TAKE: T asks M (``path[-1]``) to accept the taker's take."""

    take: SignedInstruction  # of a Take
    condition: bytes
    taker_validator: str
    path: tuple[str, ...]
    signature: bytes  # T's, over take_forward_request(take_id, condition, taker_validator)

    @property
    def take_instruction(self) -> Take:
        take = self.take.instruction
        assert isinstance(take, Take)
        return take

    @property
    def take_id(self) -> bytes:
        return self.take_instruction.take_id

    def to_wire(self) -> dict[str, Any]:
        return {
            "msgType": "TAKE",
            "take": self.take.to_wire(),
            "condition": self.condition,
            "takerValidator": self.taker_validator,
            "path": list(self.path),
            "signature": self.signature,
        }


@dataclass(frozen=True, slots=True)
class TakeAnswer:
    """Peer message TAKE_ANSWER: M's acceptance, or an ``error`` code and ``detail``."""

    take_id: bytes
    path: tuple[str, ...]
    acceptance: SignedAcceptance | None
    error: str | None
    detail: str = ""
    held: SignedLegAHeld | None = None  # M's receipt of leg A, with the acceptance

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"msgType": "TAKE_ANSWER", "takeId": self.take_id}
        out["path"] = list(self.path)
        if self.acceptance is not None:
            out["acceptance"] = self.acceptance.to_wire()
        if self.held is not None:
            out["held"] = self.held.to_wire()
        if self.error is not None:
            out["error"] = self.error
        out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class TakeReveal:
    """Peer message TAKE_REVEAL: T accepted leg B, so here is its secret, sent to M
    along the take's path too (leg B's own path may be cut). Anyone can check it:
    it hashes to the acceptance's condition."""

    take_id: bytes
    path: tuple[str, ...]
    preimage: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "msgType": "TAKE_REVEAL",
            "takeId": self.take_id,
            "path": list(self.path),
            "preimage": self.preimage,
        }


TakeMessage = TakeRequest | TakeAnswer | TakeReveal
TAKE_MESSAGE_TYPES = frozenset({"TAKE", "TAKE_ANSWER", "TAKE_REVEAL"})


def take_message_from_wire(fields: dict[str, Any]) -> TakeMessage:
    """Decode a TAKE, TAKE_ANSWER or TAKE_REVEAL map (``msgType`` already seen).
    Raises DecodeError."""
    if fields.get("msgType") == "TAKE_REVEAL":
        check_fields(fields, frozenset({"msgType", "takeId", "path", "preimage"}), frozenset())
        return TakeReveal(
            require_bytes(fields["takeId"], "takeId", HASH_BYTES),
            _path(fields["path"]),
            require_bytes(fields["preimage"], "preimage", HASH_BYTES),
        )
    if fields.get("msgType") == "TAKE":
        required = frozenset({"msgType", "take", "condition", "takerValidator", "path"})
        check_fields(fields, required | {"signature"}, frozenset())
        return TakeRequest(
            signed_take_from_wire(fields["take"]),
            require_bytes(fields["condition"], "condition", HASH_BYTES),
            require_domain(fields["takerValidator"], "takerValidator"),
            _path(fields["path"]),
            require_bytes(fields["signature"], "signature", SIGNATURE_BYTES),
        )
    check_fields(fields, frozenset({"msgType", "takeId", "path", "detail"}), _ANSWER_OPTIONAL)
    acceptance = fields.get("acceptance")
    error = fields.get("error")
    held = fields.get("held")
    if (acceptance is None) == (error is None):
        raise DecodeError("bad-field", "TAKE_ANSWER carries an acceptance or an error")
    if held is not None and acceptance is None:
        raise DecodeError("bad-field", "a receipt of leg A comes with the acceptance")
    return TakeAnswer(
        require_bytes(fields["takeId"], "takeId", HASH_BYTES),
        _path(fields["path"]),
        None if acceptance is None else signed_acceptance_from_wire(acceptance),
        None if error is None else require_str(error, "error", REASON_LENGTH_MAX),
        require_str(fields["detail"], "detail", REASON_LENGTH_MAX),
        None if held is None else signed_leg_a_held_from_wire(held),
    )


_ANSWER_OPTIONAL = frozenset({"acceptance", "error", "held"})


def signed_take_from_wire(value: object) -> SignedInstruction:
    """A signed Take (its signature not checked). Raises DecodeError."""
    take = signed_instruction_from_wire(value)
    if not isinstance(take.instruction, Take):
        raise DecodeError("bad-field", "take must be a take")
    return take


def take_message_bytes_bound(message: TakeMessage) -> int:
    """An upper bound of the message's packed size (for splitting frames)."""
    texts = list(message.path)
    if isinstance(message, TakeReveal):
        return 256 + sum(len(t.encode()) + 8 for t in texts)
    if isinstance(message, TakeRequest):
        texts.append(message.taker_validator)
        return 512 + len(message.take.payload()) + sum(len(t.encode()) + 8 for t in texts)
    texts += [message.error or "", message.detail]
    acceptance = 0 if message.acceptance is None else len(message.acceptance.acceptance.to_sign())
    held = 0 if message.held is None else 128 + len(message.held.receipt.to_sign())
    return 512 + acceptance + held + sum(len(t.encode()) + 8 for t in texts)


def take_problem(request: TakeRequest, taker_validator_key: bytes) -> str | None:
    """Why ``request`` is not a take its taker signed and T (``taker_validator_key``,
    as the reader's trust knows T's domain) forwards, or None."""
    take = request.take_instruction
    if request.path[0] != request.taker_validator:
        return "wrong-path"
    if domain_of(take.taker) != request.taker_validator:
        return "taker-elsewhere"
    if not request.take.verifies():
        return "bad-take-signature"
    forward = take_forward_request(request.take_id, request.condition, request.taker_validator)
    if not verify(taker_validator_key, forward.kind, forward.payload, request.signature):
        return "bad-forward-signature"
    return None
