"""Take protocol messages: wire round trips, strict refusals, signature checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from node.codec import DecodeError, pack, unpack
from node.ledger.signed import Take
from node.limits import FRAME_BYTES_MAX, PAYMENT_HOPS_MAX
from node.offers.take import (
    Acceptance,
    LegAHeld,
    SignedAcceptance,
    SignedLegAHeld,
    TakeAnswer,
    TakeRequest,
    acceptance_mismatch,
    acceptance_problem,
    receipt_problem,
    take_forward_request,
    take_message_bytes_bound,
    take_message_from_wire,
    take_problem,
)
from node.signatures import NodeKey, sha256
from tests.unit.test_offers_support import (
    BUY,
    MAKER,
    MAKER_KEY,
    NOW_MS,
    SELL,
    TAKER,
    TAKER_KEY,
    key,
    make_offer,
    signed,
)

T, M = "bank-2.test", "bank-1.test"
CONDITION = sha256(b"secret")
T_KEY, M_KEY = key(2), key(1)
OFFER = make_offer()
TAKE = Take(TAKER, OFFER.offer_id, MAKER, SELL, BUY, 200, 220, 5, nonce=1, created_ms=NOW_MS)


def request(
    forwarder: NodeKey = T_KEY, path: tuple[str, ...] = (T, "bank-3.test", M), **changes: Any
) -> TakeRequest:
    forward = take_forward_request(TAKE.take_id, CONDITION, T)
    out = TakeRequest(
        signed(TAKE, TAKER_KEY), CONDITION, T, path, forwarder.sign(forward.kind, forward.payload)
    )
    return dataclasses.replace(out, **changes)


def acceptance(signer: NodeKey = M_KEY, **changes: Any) -> SignedAcceptance:
    body = Acceptance(
        OFFER.offer_id, TAKE.take_id, M, key(1).public_key, TAKER, T, 200, 220, CONDITION,
        filled=200, leg_deadline_ms=NOW_MS + 60_000, issued_ms=NOW_MS,
    )  # fmt: skip
    body = dataclasses.replace(body, **changes)
    request_to_sign = body.signing_request()
    return SignedAcceptance(body, signer.sign(request_to_sign.kind, request_to_sign.payload))


def receipt(signer: NodeKey = M_KEY, **changes: Any) -> SignedLegAHeld:
    body = LegAHeld(
        OFFER.offer_id, TAKE.take_id, M, key(1).public_key, CONDITION, 220,
        leg_a_expires_ms=NOW_MS + 400_000, leg_b_latest_ms=NOW_MS + 370_000, issued_ms=NOW_MS,
    )  # fmt: skip
    body = dataclasses.replace(body, **changes)
    to_sign = body.signing_request()
    return SignedLegAHeld(body, signer.sign(to_sign.kind, to_sign.payload))


def through_wire(message: TakeRequest | TakeAnswer) -> object:
    packed = pack(message.to_wire())
    assert len(packed) <= take_message_bytes_bound(message)
    return take_message_from_wire(unpack(packed, FRAME_BYTES_MAX))


@pytest.mark.parametrize(
    "message",
    [
        request(),
        TakeAnswer(TAKE.take_id, (T, M), acceptance(), None),
        TakeAnswer(TAKE.take_id, (T, M), None, "offer-closed", "filled at 10:02"),
        TakeAnswer(TAKE.take_id, (T, "bank-3.test", M), acceptance(), None, "", receipt()),
    ],
)
def test_round_trips(message):
    assert through_wire(message) == message


def _wire(message: TakeRequest | TakeAnswer, **changes: Any) -> dict[str, Any]:
    fields = unpack(pack(message.to_wire()), FRAME_BYTES_MAX)
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not None}


ANSWER = TakeAnswer(TAKE.take_id, (T, M), acceptance(), None)
ACCEPTANCE_WIRE = acceptance().acceptance.to_wire()
RECEIPT_WIRE = receipt().receipt.to_wire()
REFUSED = TakeAnswer(TAKE.take_id, (T, M), None, "offer-closed", "")


@pytest.mark.parametrize(
    "fields",
    [
        _wire(request(), condition=b"short"),
        _wire(request(), path=[T]),
        _wire(request(), path=[T, M, T]),
        _wire(request(), path=[f"b{n}.test" for n in range(PAYMENT_HOPS_MAX + 2)]),
        _wire(request(), path=[T, "Not A Domain"]),
        _wire(request(), take=signed(OFFER, MAKER_KEY).to_wire()),  # an offer, not a take
        _wire(request(), takerValidator=7),
        _wire(request(), extra=1),
        {k: v for k, v in _wire(request()).items() if k != "signature"},
        _wire(ANSWER, error="offer-closed"),  # both
        {k: v for k, v in _wire(ANSWER).items() if k != "acceptance"},  # neither
        _wire(ANSWER, takeId=b"x"),
        _wire(ANSWER, detail=None),
        _wire(ANSWER, acceptance=[pack({**ACCEPTANCE_WIRE, "filled": 199}), b"s" * 64]),
        _wire(ANSWER, acceptance=[pack({**ACCEPTANCE_WIRE, "type": "x"}), b"s" * 64]),
        _wire(ANSWER, acceptance=[pack(ACCEPTANCE_WIRE) + b"\x00", b"s" * 64]),
        _wire(ANSWER, acceptance=[pack(ACCEPTANCE_WIRE)]),
        _wire(REFUSED, held=receipt().to_wire()),  # a receipt without the acceptance
        _wire(ANSWER, held=[pack({**RECEIPT_WIRE, "held": 0}), b"s" * 64]),
        _wire(ANSWER, held=[pack({**RECEIPT_WIRE, "type": "offer-acceptance"}), b"s" * 64]),
        _wire(ANSWER, held=[pack(RECEIPT_WIRE), b"s" * 63]),
        _wire(ANSWER, held=acceptance().to_wire()),  # an acceptance where the receipt goes
    ],
)
def test_strict_refusals(fields):
    with pytest.raises(DecodeError):
        take_message_from_wire(fields)


def test_take_checks():
    assert take_problem(request(), key(2).public_key) is None
    assert take_problem(request(), key(3).public_key) == "bad-forward-signature"
    assert take_problem(request(path=("bank-3.test", M)), key(2).public_key) == "wrong-path"
    forged = signed(TAKE, MAKER_KEY)
    forged = dataclasses.replace(forged, signer_key=TAKER_KEY.public_key)
    assert take_problem(request(take=forged), key(2).public_key) == "bad-take-signature"
    elsewhere = dataclasses.replace(TAKE, taker="bob@bank-9.test")
    assert take_problem(request(take=signed(elsewhere, TAKER_KEY)), key(2).public_key) == (
        "taker-elsewhere"
    )


def test_acceptance_checks():
    assert acceptance_problem(acceptance(), key(1).public_key) is None
    assert acceptance_problem(acceptance(), key(2).public_key) == "wrong-validator"
    assert acceptance_problem(acceptance(signer=key(2)), key(1).public_key) == "bad-signature"


@pytest.mark.parametrize(
    "signer, changes, reason",
    [
        (M_KEY, {}, None),
        (M_KEY, {"held": 221}, None),  # more than its pay is paid in full
        (M_KEY, {"held": 219}, "underpaid"),
        (key(3), {}, "bad-receipt-signature"),
        (key(3), {"validator_key": key(3).public_key}, "bad-receipt-signature"),
        (M_KEY, {"take_id": b"x" * 32}, "other-receipt"),
        (M_KEY, {"offer_id": b"x" * 32}, "other-receipt"),
        (M_KEY, {"condition": b"c" * 32}, "other-receipt"),
        (M_KEY, {"validator": "bank-3.test"}, "other-receipt"),
    ],
)
def test_a_receipt_of_leg_a_belongs_to_its_acceptance(signer, changes, reason):
    assert receipt_problem(receipt(signer, **changes), acceptance().acceptance) == reason


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({}, None),
        ({"take_id": b"x" * 32}, "other-take"),
        ({"taker": "eve@bank-2.test"}, "other-take"),
        ({"amount": 100, "filled": 100}, "other-amounts"),
        ({"pay": 219}, "other-amounts"),
        ({"condition": b"c" * 32}, "other-condition"),
        ({"validator": "bank-3.test"}, "other-validator"),
    ],
)
def test_the_taker_validator_checks_the_acceptance_answers_its_take(changes, reason):
    answered = acceptance(**changes).acceptance
    assert acceptance_mismatch(answered, TAKE, CONDITION, T) == reason


def test_reveal_round_trips_through_a_frame_and_is_strict():
    from node import wire
    from node.offers.take import TakeReveal

    reveal = TakeReveal(sha256(b"take"), ("bank-2.test", "bank-3.test", "bank-1.test"), b"s" * 32)
    sender, receiver = NodeKey(b"a" * 32), NodeKey(b"b" * 32)
    frame = wire.decode_frame(wire.encode_frame(sender, receiver.public_key, [reveal]))
    assert frame.messages == (reveal,) or list(frame.messages) == [reveal]
    fields = reveal.to_wire()
    for broken in (
        {**fields, "preimage": b"short"},
        {**fields, "path": ["bank-2.test"]},
        {**fields, "extra": 1},
    ):
        with pytest.raises(DecodeError):
            wire.message_from_wire(broken)
