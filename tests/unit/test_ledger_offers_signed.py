"""The signed instructions of exchange offers: ids, prices, strict encodings."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.ledger.signed import (
    Offer,
    OfferCancel,
    OfferClose,
    OfferFill,
    OfferUnfill,
    SignedInstruction,
    Take,
    decode_instruction,
    encode_signed,
    instruction_from_payload,
    pay_for,
)
from node.limits import AMOUNT_MAX
from node.signatures import (
    KIND_OFFER,
    KIND_OFFER_CANCEL,
    KIND_OFFER_CLOSE,
    KIND_OFFER_FILL,
    KIND_OFFER_TAKE,
    KIND_OFFER_UNFILL,
    sha256,
)
from node.wire import DecodeError, pack
from tests.unit.test_ledger_support import NOW_MS, USD, VALIDATOR_KEY, sign_instruction, user_key

ALICE = "alice@bank-a.test"
CAROL = "carol@bank-b.test"
EUR = "bank-b.test/EUR"

OFFER = Offer(ALICE, USD, 1_000, EUR, 900, 100, 20, NOW_MS + 60_000, 1, NOW_MS)
OFFER_ID = OFFER.offer_id
TAKE = Take(CAROL, OFFER_ID, ALICE, USD, EUR, 100, 90, 5, 1, NOW_MS)
FILL = OfferFill(ALICE, OFFER_ID, TAKE.take_id.hex(), USD, 100, 3, CAROL, 7)
UNFILL = OfferUnfill(ALICE, OFFER_ID, TAKE.take_id.hex(), USD, 103, 8)
CLOSE = OfferClose(ALICE, OFFER_ID, USD, 917, "cancelled", 9)
CANCEL = OfferCancel(ALICE, OFFER_ID, 2)

SIGNED: list[SignedInstruction] = [
    sign_instruction(user_key(ALICE), OFFER),
    sign_instruction(user_key(ALICE), CANCEL),
    sign_instruction(user_key(CAROL), TAKE),
    sign_instruction(VALIDATOR_KEY, FILL),
    sign_instruction(VALIDATOR_KEY, UNFILL),
    sign_instruction(VALIDATOR_KEY, CLOSE),
]


def body_of(document: SignedInstruction) -> dict[str, Any]:
    return msgpack.unpackb(document.to_wire()[0], raw=False)  # type: ignore[no-any-return]


def reencoded(document: SignedInstruction, body: dict[str, Any]) -> bytes:
    return pack([pack(body), *document.to_wire()[1:]])


@pytest.mark.parametrize("document", SIGNED, ids=lambda d: d.instruction.TYPE)
def test_offer_instructions_round_trip_and_verify(document: SignedInstruction) -> None:
    decoded = decode_instruction(encode_signed(document))
    assert decoded == document
    assert decoded.verifies()


@pytest.mark.parametrize("document", SIGNED, ids=lambda d: d.instruction.TYPE)
def test_offer_instruction_bodies_are_strict(document: SignedInstruction) -> None:
    body = body_of(document)
    with pytest.raises(DecodeError, match="unknown-field"):
        decode_instruction(reencoded(document, {**body, "memo": "hi"}))
    for name in body:
        with pytest.raises(DecodeError):
            decode_instruction(reencoded(document, {k: v for k, v in body.items() if k != name}))
    with pytest.raises(DecodeError, match="non-canonical"):
        decode_instruction(reencoded(document, dict(reversed(body.items()))))
    with pytest.raises(DecodeError, match="trailing"):
        decode_instruction(encode_signed(document) + b"\xc0")


def test_each_kind_signs_its_own_bytes() -> None:
    kinds = [document.instruction.signing_request().kind for document in SIGNED]
    assert kinds == [
        KIND_OFFER,
        KIND_OFFER_CANCEL,
        KIND_OFFER_TAKE,
        KIND_OFFER_FILL,
        KIND_OFFER_UNFILL,
        KIND_OFFER_CLOSE,
    ]
    fill = SIGNED[3]
    as_unfill_kind = dataclasses.replace(
        fill, signature=VALIDATOR_KEY.sign(KIND_OFFER_UNFILL, fill.payload())
    )
    assert fill.verifies() and not as_unfill_kind.verifies()


def test_ids_are_the_hash_of_the_signed_body() -> None:
    assert sha256(SIGNED[0].payload()) == OFFER_ID and len(OFFER_ID) == 32
    assert TAKE.take_id == sha256(SIGNED[2].payload())
    assert TAKE.payment_id == TAKE.take_id.hex() and len(TAKE.payment_id) == 64
    assert dataclasses.replace(OFFER, nonce=2).offer_id != OFFER_ID
    assert OFFER.reserved == 1_020 and TAKE.held == 95 and FILL.held == 103


@pytest.mark.parametrize(
    ("document", "changes"),
    [
        (SIGNED[0], {"min_fill": 1_001}),  # above sell_amount
        (SIGNED[0], {"min_fill": 0}),
        (SIGNED[0], {"buy_uai": USD}),  # sells an asset for itself
        (SIGNED[0], {"sell_amount": AMOUNT_MAX, "min_fill": 1}),  # + max_fee overflows
        (SIGNED[0], {"max_fee": -1}),
        (SIGNED[0], {"buy_amount": 0}),
        (SIGNED[0], {"maker": "alice"}),
        (SIGNED[1], {"offer_id": OFFER_ID[:31]}),
        (SIGNED[1], {"offer_id": OFFER_ID.hex()}),
        (SIGNED[2], {"pay": AMOUNT_MAX}),  # + max_fee overflows
        (SIGNED[2], {"amount": 0}),
        (SIGNED[2], {"sell_uai": EUR}),
        (SIGNED[3], {"payment_id": "not a payment id"}),
        (SIGNED[3], {"fee_budget": AMOUNT_MAX}),
        (SIGNED[4], {"held": 0}),
        (SIGNED[5], {"reason": "bored"}),
        (SIGNED[5], {"returned": -1}),
        (SIGNED[5], {"nonce": 0}),
    ],
)
def test_out_of_range_fields_are_refused(
    document: SignedInstruction, changes: dict[str, Any]
) -> None:
    with pytest.raises(DecodeError, match="bad-field"):
        decode_instruction(reencoded(document, {**body_of(document), **changes}))


def test_a_close_may_return_nothing() -> None:
    closed = OfferClose(ALICE, OFFER_ID, USD, 0, "filled", 10)
    assert instruction_from_payload(closed.signing_request().payload) == closed


def test_pay_for_rounds_up_in_the_makers_favour() -> None:
    offer = dataclasses.replace(OFFER, sell_amount=3, buy_amount=2, min_fill=1)
    assert [pay_for(offer, amount) for amount in (1, 2, 3)] == [1, 2, 2]
    assert pay_for(OFFER, 1_000) == 900 and pay_for(OFFER, 1) == 1


@given(
    sell=st.integers(1, 10**12),
    buy=st.integers(1, 10**12),
    amount=st.integers(1, 10**12),
)
def test_pay_for_is_the_least_pay_at_the_offers_price(sell: int, buy: int, amount: int) -> None:
    offer = dataclasses.replace(OFFER, sell_amount=sell, buy_amount=buy, min_fill=1)
    pay = pay_for(offer, amount)
    assert pay * sell >= amount * buy > (pay - 1) * sell
