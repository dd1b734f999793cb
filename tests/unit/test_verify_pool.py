"""verify_all: a batch checked on several threads gets the answers one thread would."""

from __future__ import annotations

import dataclasses

from node.ledger.signed import SignedInstruction, Transfer
from node.limits import VERIFY_POOL_BATCH_MIN
from node.signatures import verify
from node.verify_pool import verify_all
from tests.unit.test_ledger_support import sign_instruction, user_key

ALICE = "alice@bank-a.test"


def batch(count: int) -> list[SignedInstruction]:
    key = user_key(ALICE)
    items: list[SignedInstruction] = []
    for nonce in range(1, count + 1):
        signed = sign_instruction(
            key, Transfer(ALICE, "bob@bank-a.test", "bank-a.test/USD", 1, nonce, 0)
        )
        if nonce % 7 == 0:  # a signature of another instruction
            signed = dataclasses.replace(signed, signature=items[0].signature)
        items.append(signed)
    return items


def truth(item: SignedInstruction) -> bool:
    return verify(item.signer_key, item.instruction.KIND, item.payload(), item.signature)


def test_many_signatures_checked_in_parallel_match_one_by_one() -> None:
    for count in (
        1,
        VERIFY_POOL_BATCH_MIN - 1,
        VERIFY_POOL_BATCH_MIN,
        5 * VERIFY_POOL_BATCH_MIN + 3,
    ):
        items = batch(count)
        verify_all(items)
        outcomes = [item._verified for item in items]
        assert outcomes == [truth(item) for item in items]
        assert outcomes.count(False) == count // 7  # the forged ones, and only them
