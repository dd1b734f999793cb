"""verify remembers valid signatures by their bytes: same answers, bounded memory."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from node import signatures
from node.signatures import KIND_PEER_FRAME, NodeKey, verify

KEY = NodeKey(b"\x05" * 32)
OTHER = NodeKey(b"\x06" * 32)


def test_a_remembered_signature_never_vouches_for_other_bytes() -> None:
    signature = KEY.sign(KIND_PEER_FRAME, b"pay 10")
    assert verify(KEY.public_key, KIND_PEER_FRAME, b"pay 10", signature)
    assert verify(KEY.public_key, KIND_PEER_FRAME, b"pay 10", signature)  # remembered
    assert not verify(KEY.public_key, KIND_PEER_FRAME, b"pay 99", signature)
    assert not verify(OTHER.public_key, KIND_PEER_FRAME, b"pay 10", signature)
    assert not verify(KEY.public_key, b"api-request", b"pay 10", signature)
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(KEY.public_key, KIND_PEER_FRAME, b"pay 10", forged)
    assert not verify(KEY.public_key, KIND_PEER_FRAME, b"pay 10", forged)  # refusals too


def test_the_memory_is_bounded_and_forgets_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signatures, "VERIFIED_SIGNATURES_REMEMBERED", 3)
    monkeypatch.setattr(signatures, "_verified", OrderedDict())
    signed = [(bytes([i]), KEY.sign(KIND_PEER_FRAME, bytes([i]))) for i in range(5)]
    for payload, signature in signed:
        assert verify(KEY.public_key, KIND_PEER_FRAME, payload, signature)
    assert [key[2] for key in signatures._verified] == [b"\x02", b"\x03", b"\x04"]
    payload, signature = signed[0]
    assert verify(KEY.public_key, KIND_PEER_FRAME, payload, signature)  # checked again
