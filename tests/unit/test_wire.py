"""Strict decoding: every malformed input is a DecodeError with a reason, never another error."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import wire
from node.crypto import NodeKey
from node.limits import FRAME_BYTES_MAX
from node.wire import Accept, Ack, DecodeError, MsgType, Propose, Reject

ALICE = NodeKey(bytes(range(32)))
BOB = NodeKey(bytes(range(1, 33)))

MESSAGES: list[wire.SnapMessage] = [
    Propose(0, 5, "1E-6 USD"),
    Propose(1, 8, "1E0 EUR", bytes(32), 1_700_000_000_000),
    Accept(0),
    Accept(1, b"\x01" * 32),
    Reject(2, "not interested"),
    Ack(3, MsgType.ACCEPT),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_messages_round_trip_through_wire_and_json(message):
    assert wire.snap_from_wire(wire.snap_to_wire(message)) == message
    assert wire.snap_from_json(wire.snap_to_json(message)) == message


def test_wire_uses_the_snap_field_names():
    fields = wire.snap_to_wire(Propose(7, 8, "1E0 EUR", bytes(32), 99))
    assert set(fields) == {"msgType", "msgId", "amount", "unit", "condition", "expiresAt"}


def test_frame_round_trip_and_signature():
    raw = wire.encode_frame(ALICE, BOB.public_key, MESSAGES)
    frame = wire.decode_frame(raw)
    assert frame.sender == ALICE.public_key
    assert frame.receiver == BOB.public_key
    assert frame.messages == tuple(MESSAGES)


def test_frame_with_flipped_byte_is_refused():
    raw = wire.encode_frame(ALICE, BOB.public_key, MESSAGES)
    for index in range(len(raw)):
        corrupt = bytearray(raw)
        corrupt[index] ^= 0x40
        with pytest.raises(DecodeError):
            wire.decode_frame(bytes(corrupt))


def test_frame_signed_by_another_key_is_refused():
    body = wire.pack(
        {
            "v": 1,
            "from": ALICE.public_key,
            "to": BOB.public_key,
            "msgs": [{"msgType": "ACCEPT", "msgId": 1}],
        }
    )
    forged = wire.pack([body, BOB.sign(b"peer-frame", body)])
    with pytest.raises(DecodeError) as caught:
        wire.decode_frame(forged)
    assert caught.value.reason == "bad-signature"


def test_signature_of_another_kind_does_not_verify():
    body = wire.pack({"v": 1, "from": ALICE.public_key, "to": BOB.public_key, "msgs": []})
    signature = ALICE.sign(b"api-request", body)
    with pytest.raises(DecodeError):
        wire.decode_frame(wire.pack([body, signature]))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"msgType": "PAY", "msgId": 1}, "unknown-type"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": 5}, "missing-field"),
        ({"msgType": "ACCEPT", "msgId": 1, "extra": 1}, "unknown-field"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": 0, "unit": "1E0 EUR"}, "bad-field"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": -5, "unit": "1E0 EUR"}, "bad-field"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": 2**63, "unit": "1E0 EUR"}, "bad-field"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": True, "unit": "1E0 EUR"}, "bad-field"),
        ({"msgType": "PROPOSE", "msgId": 1, "amount": 5, "unit": "euros"}, "bad-field"),
        ({"msgType": "PROPOSE", "msgId": -1, "amount": 5, "unit": "1E0 EUR"}, "bad-field"),
        (
            {"msgType": "PROPOSE", "msgId": 1, "amount": 5, "unit": "1E0 EUR", "condition": b"x"},
            "bad-field",
        ),
        (
            {"msgType": "PROPOSE", "msgId": 1, "amount": 5, "unit": "1E0 EUR", "expiresAt": 5},
            "bad-field",
        ),
        ({"msgType": "ACCEPT", "msgId": 1, "preimage": "00" * 32}, "bad-field"),
        ({"msgType": "REJECT", "msgId": 1, "reason": "x" * 1000}, "bad-field"),
        ({"msgType": "ACK", "msgId": 1, "ackOf": "ACK"}, "bad-field"),
        ([1, 2, 3], "malformed"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(fields, reason):
    with pytest.raises(DecodeError) as caught:
        wire.snap_from_wire(fields)
    assert caught.value.reason == reason


def test_trailing_bytes_and_oversize_are_refused():
    raw = wire.encode_frame(ALICE, BOB.public_key, MESSAGES)
    with pytest.raises(DecodeError) as caught:
        wire.decode_frame(raw + b"\x00")
    assert caught.value.reason == "trailing-bytes"
    with pytest.raises(DecodeError) as caught:
        wire.decode_frame(b"\x00" * (FRAME_BYTES_MAX + 1))
    assert caught.value.reason == "too-large"


def test_frames_split_below_the_limit():
    messages: list[wire.SnapMessage] = [Reject(i, "é" * 200) for i in range(400)]
    messages += [Accept(i) for i in range(2000)]
    groups = wire.split_into_frames(messages)
    assert [m for group in groups for m in group] == messages
    for group in groups:
        assert len(wire.encode_frame(ALICE, BOB.public_key, group)) <= FRAME_BYTES_MAX


@given(st.binary(max_size=600))
def test_any_bytes_decode_or_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        wire.decode_frame(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=6)
        ),
        max_leaves=20,
    )
)
def test_any_msgpack_value_decodes_or_raises_decode_error(value):
    with contextlib.suppress(DecodeError):
        wire.snap_from_wire(value)
    try:
        packed = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    with contextlib.suppress(DecodeError):
        wire.decode_frame(packed)
