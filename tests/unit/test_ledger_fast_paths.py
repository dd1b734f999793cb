"""What the ledger keeps to go fast changes nothing a customer or a reader sees.

A decoded instruction keeps the bytes it came from and skips the second
strict decode; records keep their signed entries. These tests pin that the
kept bytes are the ones signed and written, that equality ignores them, and
that an instruction built in memory is still checked field by field.
"""

from __future__ import annotations

import dataclasses

from node.ledger import (
    ReceiveTransfer,
    Transfer,
    decode_instruction,
    encode_signed,
    record_from_wire,
)
from node.ledger.signed import signed_instruction_from_wire
from node.wire import pack
from tests.unit.test_ledger_support import (
    NOW_MS,
    USD,
    appended,
    bank_with_users,
    refusals,
    sign_instruction,
    through_msgpack,
    user_key,
)

ALICE = "alice@bank-a.test"
BOB = "bob@bank-a.test"


def test_a_decoded_instruction_is_its_bytes_and_equals_the_one_built_in_memory() -> None:
    built = sign_instruction(user_key(ALICE), Transfer(ALICE, BOB, USD, 5, 1, NOW_MS))
    raw = encode_signed(built)
    decoded = decode_instruction(raw)
    assert decoded == built and hash(decoded) == hash(built)
    assert decoded.decoded and not built.decoded
    assert decoded.payload() == built.payload() == pack(built.instruction.to_wire())
    assert encode_signed(decoded) == raw
    assert decoded.verifies() and built.verifies()


def test_a_transfer_decoded_from_bytes_gives_the_entries_of_one_built_in_memory() -> None:
    results = []
    for from_bytes in (False, True):
        shell = bank_with_users(ALICE, BOB, funds=100)
        signed = shell.transfer_instruction(ALICE, BOB, 7)
        if from_bytes:
            signed = signed_instruction_from_wire(through_msgpack(signed.to_wire()))
        effects = shell.run(ReceiveTransfer(signed))
        entries = appended(effects)
        record = shell.log[-1]
        assert record_from_wire(through_msgpack(record.to_wire())) == record
        results.append(([pack(entry.to_wire()) for entry in entries], pack(record.to_wire())))
        shell.rebuilt()
    assert results[0] == results[1]


def test_a_malformed_instruction_built_in_memory_is_refused_after_its_bytes_were_packed() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    # A payee that is no address: only the strict decoder says so.
    transfer = Transfer(ALICE, "Bob@bank-a.test", USD, 1, 1, NOW_MS)
    signed = sign_instruction(user_key(ALICE), transfer)
    signed.payload()  # packed and kept, never decoded
    assert refusals(shell.run(ReceiveTransfer(signed))) == ["bad-instruction"]
    assert shell.books.chain_length(ALICE) == 1  # the deposit only


def test_a_copy_with_another_instruction_forgets_the_kept_bytes() -> None:
    decoded = decode_instruction(
        encode_signed(sign_instruction(user_key(ALICE), Transfer(ALICE, BOB, USD, 5, 1, NOW_MS)))
    )
    other = dataclasses.replace(decoded, instruction=Transfer(ALICE, BOB, USD, 6, 1, NOW_MS))
    assert not other.decoded
    assert other.payload() == pack(other.instruction.to_wire()) != decoded.payload()
    assert not other.verifies()  # the signature was of the first instruction
