"""The simulator's memory of its own signatures: the same answers as the curve maths.

While ``remembering_own_signatures`` holds, ``verify`` answers a signature this
process's ``sign`` made over exactly those bytes from memory; anything else
(a tampered payload, kind, key or signature, a foreign signature) is checked for
real, and signing the same bytes again gives the signature a real sign gives.
"""

from __future__ import annotations

from collections.abc import Iterator

import nacl.signing
import pytest

from node import signatures
from node.signatures import (
    KIND_API_REQUEST,
    KIND_PEER_FRAME,
    NodeKey,
    remembering_own_signatures,
    signed_bytes,
    verify,
)

KEY = NodeKey(b"\x15" * 32)
OTHER = NodeKey(b"\x16" * 32)
FRAME = b"frame body " * 300  # larger than the small payloads ``_verified`` keeps
REAL = nacl.signing.SigningKey(KEY.seed).sign(signed_bytes(KIND_PEER_FRAME, FRAME)).signature


class CurveCount:
    """Counts the real checks (``VerifyKey.verify``) and signatures (``SigningKey.sign``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.checks = 0
        self.signs = 0
        real_verify, real_sign = nacl.signing.VerifyKey.verify, nacl.signing.SigningKey.sign

        def counted_verify(key: nacl.signing.VerifyKey, *args: object) -> object:
            self.checks += 1
            return real_verify(key, *args)  # type: ignore[arg-type]

        def counted_sign(key: nacl.signing.SigningKey, *args: object) -> object:
            self.signs += 1
            return real_sign(key, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(nacl.signing.VerifyKey, "verify", counted_verify)
        monkeypatch.setattr(nacl.signing.SigningKey, "sign", counted_sign)


@pytest.fixture
def curve(monkeypatch: pytest.MonkeyPatch) -> Iterator[CurveCount]:
    signatures._verified.clear()  # nothing known valid from another test
    with remembering_own_signatures(16, 1 << 20):
        yield CurveCount(monkeypatch)
    signatures._verified.clear()


def test_an_own_signature_is_answered_without_the_curve_maths(curve: CurveCount) -> None:
    signature = KEY.sign(KIND_PEER_FRAME, FRAME)
    received = bytes(bytearray(FRAME))  # the receiver's own copy of the bytes
    assert verify(KEY.public_key, KIND_PEER_FRAME, received, signature)
    assert curve.checks == 0


def test_signing_the_same_bytes_again_gives_the_real_signature(curve: CurveCount) -> None:
    first = KEY.sign(KIND_PEER_FRAME, FRAME)
    again = KEY.sign(KIND_PEER_FRAME, FRAME)
    assert curve.signs == 1
    assert first == again == REAL
    assert KEY.sign(KIND_API_REQUEST, FRAME) != first  # another kind is signed afresh
    assert OTHER.sign(KIND_PEER_FRAME, FRAME) != first  # and another key
    assert curve.signs == 3


def test_tampered_bytes_miss_the_memory_and_are_refused(curve: CurveCount) -> None:
    signature = KEY.sign(KIND_PEER_FRAME, FRAME)
    tampered_payload = FRAME[:-1] + b"X"
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(KEY.public_key, KIND_PEER_FRAME, tampered_payload, signature)
    assert not verify(KEY.public_key, KIND_PEER_FRAME, FRAME, forged)
    assert not verify(KEY.public_key, KIND_API_REQUEST, FRAME, signature)
    assert not verify(OTHER.public_key, KIND_PEER_FRAME, FRAME, signature)
    assert curve.checks == 4  # each one checked for real


def test_a_foreign_signature_is_checked_for_real(curve: CurveCount) -> None:
    foreign = nacl.signing.SigningKey(b"\x17" * 32)
    signature = foreign.sign(signed_bytes(KIND_PEER_FRAME, FRAME)).signature
    assert verify(bytes(foreign.verify_key), KIND_PEER_FRAME, FRAME, signature)
    assert curve.checks == 1


def test_the_memory_is_bounded_and_checks_forgotten_ones_for_real(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    curve = CurveCount(monkeypatch)
    payloads = [bytes([n]) * 1000 for n in range(5)]
    with remembering_own_signatures(3, 10_000):
        made = [KEY.sign(KIND_PEER_FRAME, payload) for payload in payloads]
        assert [key[2] for key in signatures._own.signatures] == payloads[2:]
        assert verify(KEY.public_key, KIND_PEER_FRAME, payloads[4], made[4])
        assert curve.checks == 0
        assert verify(KEY.public_key, KIND_PEER_FRAME, payloads[0], made[0])  # forgotten
        assert curve.checks == 1
    with remembering_own_signatures(100, 2_500):  # the byte bound: two of 1,000 bytes
        for payload in payloads:
            KEY.sign(KIND_PEER_FRAME, payload)
        assert [key[2] for key in signatures._own.signatures] == payloads[3:]
        assert signatures._own.payload_bytes == 2_000


def test_after_the_run_nothing_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    with remembering_own_signatures(16, 1 << 20):
        signature = KEY.sign(KIND_PEER_FRAME, FRAME)
    assert not signatures._own.signatures and signatures._own.entries_max == 0
    curve = CurveCount(monkeypatch)
    assert verify(KEY.public_key, KIND_PEER_FRAME, FRAME, signature)
    assert KEY.sign(KIND_PEER_FRAME, FRAME) == signature
    assert (curve.checks, curve.signs) == (1, 1)
