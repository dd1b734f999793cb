"""Canonical, strict encodings of the signed documents, entries and records."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ledger import (
    AssetDefinition,
    Deposit,
    FederationRecord,
    SignedFederationRecord,
    Transfer,
    Withdraw,
    decode_asset_definition,
    decode_chain_file,
    decode_entry,
    decode_evidence,
    decode_federation,
    decode_identity,
    decode_instruction,
    encode_entry,
    encode_signed,
    record_from_wire,
)
from node.ledger.codec import valid_address, valid_domain, valid_uai
from node.signatures import KIND_FEDERATION, verify
from node.wire import DecodeError, pack
from tests.unit.test_ledger_support import (
    NOW_MS,
    USD,
    VALIDATOR_KEY,
    bank_with_users,
    sign_instruction,
    signed_asset,
    signed_identity,
    through_msgpack,
    user_key,
)

ALICE = "alice@bank-a.test"
BOB = "bob@bank-a.test"


def federation() -> SignedFederationRecord:
    record = FederationRecord(
        ALICE, user_key(ALICE).public_key, 2, NOW_MS, VALIDATOR_KEY.public_key
    )
    request = record.signing_request()
    return SignedFederationRecord(record, VALIDATOR_KEY.sign(request.kind, request.payload))


DOCUMENTS: list[tuple[Any, Callable[[bytes], Any]]] = [
    (signed_identity(ALICE), decode_identity),
    (federation(), decode_federation),
    (signed_asset(USD, kyc_level=1, max_supply=10**6), decode_asset_definition),
    (signed_asset(USD), decode_asset_definition),
    (
        sign_instruction(user_key(ALICE), Transfer(ALICE, BOB, USD, 5, 1, NOW_MS)),
        decode_instruction,
    ),
    (sign_instruction(VALIDATOR_KEY, Deposit(ALICE, USD, 5, 1)), decode_instruction),
    (sign_instruction(VALIDATOR_KEY, Withdraw(ALICE, USD, 5, 2)), decode_instruction),
]


@pytest.mark.parametrize(("document", "decode"), DOCUMENTS)
def test_signed_documents_round_trip(document: Any, decode: Callable[[bytes], Any]) -> None:
    assert decode(encode_signed(document)) == document


@pytest.mark.parametrize(("document", "decode"), DOCUMENTS)
def test_signed_documents_refuse_trailing_and_truncated_bytes(
    document: Any, decode: Callable[[bytes], Any]
) -> None:
    raw = encode_signed(document)
    with pytest.raises(DecodeError, match="trailing"):
        decode(raw + b"\xc0")
    with pytest.raises(DecodeError):
        decode(raw[:-1])


def body_of(document: Any) -> dict[str, Any]:
    return msgpack.unpackb(document.to_wire()[0], raw=False)  # type: ignore[no-any-return]


def reencoded(document: Any, body: dict[str, Any]) -> bytes:
    return pack([pack(body), *document.to_wire()[1:]])


@pytest.mark.parametrize(("document", "decode"), DOCUMENTS)
def test_signed_bodies_are_strict(document: Any, decode: Callable[[bytes], Any]) -> None:
    body = body_of(document)
    with pytest.raises(DecodeError, match="unknown-field"):
        decode(reencoded(document, {**body, "memo": "hi"}))
    for name in body:
        with pytest.raises(DecodeError):
            decode(reencoded(document, {k: v for k, v in body.items() if k != name}))
    with pytest.raises(DecodeError):
        decode(reencoded(document, {**body, "type": "something-else"}))
    reordered = dict(reversed(body.items()))
    with pytest.raises(DecodeError, match="non-canonical"):
        decode(reencoded(document, reordered))


def test_integers_must_be_integers_in_range_and_canonically_encoded() -> None:
    document = sign_instruction(user_key(ALICE), Transfer(ALICE, BOB, USD, 5, 1, NOW_MS))
    body = body_of(document)
    for amount in (True, 0, -1, 2**63, 5.0, "5"):
        with pytest.raises(DecodeError):
            decode_instruction(reencoded(document, {**body, "amount": amount}))
    wide = pack(body).replace(b"\xa6amount\x05", b"\xa6amount\xcf" + (5).to_bytes(8, "big"))
    assert msgpack.unpackb(wide) == body
    with pytest.raises(DecodeError, match="non-canonical"):
        decode_instruction(pack([wide, *document.to_wire()[1:]]))


def test_a_signature_of_one_kind_is_never_valid_as_another() -> None:
    identity = signed_identity(ALICE)
    payload = identity.to_wire()[0]
    assert identity.verifies()
    assert not verify(identity.identity.user_key, KIND_FEDERATION, payload, identity.signature)
    transfer = sign_instruction(VALIDATOR_KEY, Deposit(ALICE, USD, 5, 1))
    as_withdraw = dataclasses.replace(transfer, instruction=Withdraw(ALICE, USD, 5, 1))
    assert transfer.verifies() and not as_withdraw.verifies()


def test_a_federation_record_verifies_only_for_the_key_it_names() -> None:
    signed = federation()
    assert signed.verifies(VALIDATOR_KEY.public_key)
    claims_other = dataclasses.replace(
        signed, record=dataclasses.replace(signed.record, validator_key=user_key(BOB).public_key)
    )
    assert not claims_other.verifies(user_key(BOB).public_key)
    assert not claims_other.verifies(VALIDATOR_KEY.public_key)


def test_entries_and_records_round_trip_and_are_strict() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    shell.transfer(ALICE, BOB, 5)
    shell.freeze(BOB)
    entry = shell.books.chain(ALICE)[1]
    assert decode_entry(encode_entry(entry)) == entry
    kinds = {type(record).__name__ for record in shell.log}
    assert kinds == {"AssetDefined", "UserRegistered", "EntriesAppended", "UserFrozen"}
    for record in shell.log:
        wire = through_msgpack(record.to_wire())
        assert record_from_wire(wire) == record
        with pytest.raises(DecodeError, match="unknown-field"):
            record_from_wire({**wire, "extra": 1})
        for name in wire:
            with pytest.raises(DecodeError):
                record_from_wire({k: v for k, v in wire.items() if k != name})
    transfer = through_msgpack(shell.log[-2].to_wire())
    with pytest.raises(DecodeError, match="2 entries"):
        record_from_wire({**transfer, "entries": transfer["entries"][:1]})
    swapped = {**transfer, "entries": [transfer["entries"][0], transfer["entries"][0]]}
    with pytest.raises(DecodeError, match="two chains"):
        record_from_wire(swapped)
    wire = entry.to_wire()
    bad_fields: list[dict[str, Any]] = [
        {"deltas": []},
        {"deltas": [[USD, 0]], "balances": [[USD, 95]]},
        {"seq": -1},
    ]
    for bad in bad_fields:
        with pytest.raises(DecodeError):
            decode_entry(pack({**wire, **bad}))
    unsorted = [["bank-a.test/ZZZ", 1], [USD, 1]]
    with pytest.raises(DecodeError, match="sorted"):
        decode_entry(pack({**wire, "deltas": unsorted, "balances": unsorted}))


@pytest.mark.parametrize(
    ("text", "domain", "address", "uai"),
    [
        ("bank-a.test", True, False, False),
        ("alice@bank-a.test", False, True, False),
        ("bank-a.test/USD", False, False, True),
        ("Bank-A.test", False, False, False),
        ("alice@bank-a.test@x", False, False, False),
        ("-bank.test", False, False, False),
        ("bank-a.test/usd", False, False, False),
        ("bank-a.test/TOOLONGCODE13", False, False, False),
        ("", False, False, False),
        ("a" * 64 + ".test", False, False, False),
        ("a" * 64 + "@bank.test", False, True, False),
        ("a" * 65 + "@bank.test", False, False, False),
    ],
)
def test_names(text: str, domain: bool, address: bool, uai: bool) -> None:
    assert (valid_domain(text), valid_address(text), valid_uai(text)) == (domain, address, uai)


DECODERS = [
    decode_identity,
    decode_federation,
    decode_asset_definition,
    decode_instruction,
    decode_entry,
    decode_chain_file,
    decode_evidence,
]
SAMPLES = [encode_signed(document) for document, _ in DOCUMENTS]

msgpack_values = st.recursive(
    st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few bytes changed, cut or inserted."""
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["change", "cut", "insert"]))
        if action == "change":
            raw[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[position]
        else:
            raw.insert(position, draw(st.integers(0, 255)))
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(pack, msgpack_values) | mutated_samples())
def test_decoders_raise_only_decode_error(raw: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(raw)


def test_an_asset_definition_without_max_supply_allows_up_to_amount_max() -> None:
    assert AssetDefinition(USD, 2, 0, None).supply_max == 2**63 - 1
    assert AssetDefinition(USD, 2, 0, 7).supply_max == 7
