"""verify_chain: every rule of a chain, each broken once by an entry the
validator did sign, so only the rule under test can catch it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from node.codec import DecodeError
from node.ledger import (
    ChainEntry,
    Deposit,
    EntryBody,
    Transfer,
    verify_chain,
)
from node.ledger.codec import ZERO_HASH
from node.ledger.records import EntriesAppended, record_from_wire
from tests.unit.test_ledger_support import (
    OTHER_VALIDATOR_KEY,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    bank_with_users,
    resign,
    sign_instruction,
    through_msgpack,
    user_key,
)

ALICE = "alice@bank-a.test"
BOB = "bob@bank-a.test"
KEY = VALIDATOR_KEY.public_key


def busy_bank() -> Shell:
    shell = bank_with_users(ALICE, BOB)
    shell.deposit(ALICE, 100)  # alice 0
    shell.transfer(ALICE, BOB, 30)  # alice 1
    shell.deposit(BOB, 40)
    shell.transfer(BOB, ALICE, 10)  # alice 2
    shell.withdraw(ALICE, 20)  # alice 3
    shell.transfer(ALICE, BOB, 5)  # alice 4
    return shell


def relinked(bodies: list[EntryBody]) -> list[ChainEntry]:
    """Sign the bodies as the validator, fixing only the hash links."""
    entries: list[ChainEntry] = []
    for body in bodies:
        prev_hash = entries[-1].entry_hash() if entries else ZERO_HASH
        entries.append(resign(dataclasses.replace(body, prev_hash=prev_hash)))
    return entries


def test_a_real_chain_verifies_with_its_balances() -> None:
    shell = busy_bank()
    chain = shell.books.chain(ALICE)
    report = verify_chain(chain, KEY, ubi=ALICE, owner_key=user_key(ALICE).public_key)
    assert report.ok and report.problem is None
    assert (report.ubi, report.entries, report.balances) == (ALICE, 5, {USD: 55})
    assert report.head_hash == chain[-1].entry_hash()
    assert verify_chain([], KEY).ok
    assert verify_chain(relinked([e.body for e in chain]), KEY).ok  # relinking changes nothing


def problem_of(entries: list[ChainEntry], **kwargs: bytes | str) -> tuple[int | None, str]:
    report = verify_chain(entries, KEY, **kwargs)  # type: ignore[arg-type]
    assert not report.ok and report.problem is not None
    assert report.entries == report.problem.index
    return report.problem.index, report.problem.reason


def bodies() -> list[EntryBody]:
    return [entry.body for entry in busy_bank().books.chain(ALICE)]


def changed(index: int, change: Callable[[EntryBody], EntryBody]) -> list[ChainEntry]:
    items = bodies()
    items[index] = change(items[index])
    return relinked(items)


def other_transfer(body: EntryBody, key_of: str = ALICE, **fields: object) -> EntryBody:
    transfer = body.instruction.instruction
    assert isinstance(transfer, Transfer)
    instruction = sign_instruction(user_key(key_of), dataclasses.replace(transfer, **fields))  # type: ignore[arg-type]
    return dataclasses.replace(body, instruction=instruction)


def test_a_missing_or_moved_entry_is_a_seq_gap() -> None:
    chain = busy_bank().books.chain(ALICE)
    assert problem_of(chain[:2] + chain[3:]) == (2, "seq-gap")
    assert problem_of(chain[1:]) == (0, "seq-gap")


def test_a_broken_link_is_named() -> None:
    chain = busy_bank().books.chain(ALICE)
    unlinked = resign(dataclasses.replace(chain[2].body, prev_hash=bytes([7]) * 32))
    assert problem_of([*chain[:2], unlinked, *chain[3:]]) == (2, "prev-hash")


def test_entries_not_signed_by_the_validator_are_named() -> None:
    chain = busy_bank().books.chain(ALICE)
    report = verify_chain(chain, OTHER_VALIDATOR_KEY.public_key)
    assert report.problem is not None
    assert (report.problem.index, report.problem.reason) == (0, "validator-signature")
    forged = ChainEntry(chain[3].body, chain[2].validator_signature)
    assert problem_of([*chain[:3], forged, *chain[4:]]) == (3, "validator-signature")


def test_an_entry_of_another_chain_is_named() -> None:
    shell = busy_bank()
    chain = shell.books.chain(ALICE)
    assert problem_of(chain, ubi=BOB) == (0, "wrong-ubi")
    bob_body = dataclasses.replace(shell.books.chain(BOB)[1].body, seq=1)
    items = bodies()
    items[1] = bob_body
    assert problem_of(relinked(items)) == (1, "wrong-ubi")


def test_a_balance_that_does_not_add_up_is_named() -> None:
    entries = changed(2, lambda b: dataclasses.replace(b, balances=((USD, 81),)))
    assert problem_of(entries) == (2, "balance-mismatch")


def test_deltas_other_than_the_instructions_are_named() -> None:
    entries = changed(
        1, lambda b: dataclasses.replace(b, deltas=((USD, -3),), balances=((USD, 97),))
    )
    assert problem_of(entries) == (1, "instruction-mismatch")


def test_a_changed_instruction_is_caught_by_its_signature() -> None:
    def more(body: EntryBody) -> EntryBody:
        transfer = body.instruction.instruction
        assert isinstance(transfer, Transfer)
        bigger = dataclasses.replace(transfer, amount=31)
        return dataclasses.replace(
            body, instruction=dataclasses.replace(body.instruction, instruction=bigger)
        )

    assert problem_of(changed(1, more)) == (1, "instruction-signature")


def test_a_debit_not_signed_by_the_owner_is_named() -> None:
    by_bob = changed(4, lambda b: other_transfer(b, key_of=BOB))
    assert problem_of(by_bob) == (4, "wrong-signer")  # the first debit taught the owner's key
    assert problem_of(changed(1, lambda b: other_transfer(b, key_of=BOB))) == (4, "wrong-signer")
    assert problem_of(busy_bank().books.chain(ALICE), owner_key=user_key(BOB).public_key) == (
        1,
        "wrong-signer",
    )


def test_a_deposit_not_signed_by_the_validator_is_named() -> None:
    def by_alice(body: EntryBody) -> EntryBody:
        deposit = body.instruction.instruction
        assert isinstance(deposit, Deposit)
        return dataclasses.replace(body, instruction=sign_instruction(user_key(ALICE), deposit))

    assert problem_of(changed(0, by_alice)) == (0, "wrong-signer")


def test_an_instruction_that_does_not_concern_the_chain_is_named() -> None:
    entries = changed(1, lambda b: other_transfer(b, from_ubi="carol@bank-a.test"))
    assert problem_of(entries) == (1, "unrelated-instruction")


def test_a_replayed_instruction_is_named() -> None:
    items = bodies()
    replay = dataclasses.replace(items[1], seq=5, balances=((USD, 25),))
    assert problem_of(relinked([*items, replay])) == (5, "replayed-nonce")


def test_an_overdraft_is_named_even_when_the_validator_signed_it() -> None:
    items = bodies()
    big = other_transfer(items[4], amount=56, nonce=99)
    overdraft = dataclasses.replace(big, seq=5, deltas=((USD, -56),), balances=((USD, -1),))
    assert problem_of(relinked([*items, overdraft])) == (5, "negative-balance")


def test_the_books_balance_is_never_positive() -> None:
    books_chain = [entry.body for entry in busy_bank().books.chain(VALIDATOR)]
    assert verify_chain(relinked(books_chain), KEY).ok
    first = books_chain[0]
    withdraw_first = dataclasses.replace(
        books_chain[2], seq=0, balances=((USD, 20),), appended_at_ms=first.appended_at_ms
    )
    assert problem_of(relinked([withdraw_first])) == (0, "positive-books-balance")


def test_time_never_goes_back_along_a_chain() -> None:
    items = bodies()
    items[2] = dataclasses.replace(items[2], appended_at_ms=items[1].appended_at_ms - 1)
    assert problem_of(relinked(items)) == (2, "time-backwards")


# --- one validator signature for both entries of a transfer ------------------------------


def test_a_transfers_two_entries_share_one_signature_and_each_proves_itself() -> None:
    shell = busy_bank()
    alice_entry = shell.books.chain(ALICE)[1]  # alice pays bob 30
    bob_entry = shell.books.chain(BOB)[0]
    assert alice_entry.validator_signature == bob_entry.validator_signature
    assert alice_entry.record_hashes == (alice_entry.entry_hash(), bob_entry.entry_hash())
    assert alice_entry.signed_by(KEY) and bob_entry.signed_by(KEY)
    assert not alice_entry.signed_by(OTHER_VALIDATOR_KEY.public_key)
    # The hashes are bound by the signature: another record's hash does not verify,
    # and an entry cannot borrow a record it is not part of.
    other = shell.books.chain(ALICE)[4].entry_hash()
    assert not dataclasses.replace(
        alice_entry, record_hashes=(other, bob_entry.entry_hash())
    ).signed_by(KEY)
    swapped = dataclasses.replace(
        alice_entry, record_hashes=(bob_entry.entry_hash(), alice_entry.entry_hash())
    )
    assert not swapped.signed_by(KEY)
    stranger = shell.books.chain(ALICE)[0]  # the deposit: another record
    borrowed = ChainEntry(stranger.body, alice_entry.validator_signature, alice_entry.record_hashes)
    assert not borrowed.signed_by(KEY)
    assert problem_of([borrowed, *shell.books.chain(ALICE)[1:]]) == (0, "validator-signature")


def test_a_log_written_with_one_signature_per_entry_still_replays() -> None:
    shell = busy_bank()
    record = next(r for r in shell.log if isinstance(r, EntriesAppended) and len(r.bodies) == 2)
    legacy = EntriesAppended(
        record.bodies,
        tuple(
            VALIDATOR_KEY.sign(body.signing_request().kind, body.signing_request().payload)
            for body in record.bodies
        ),
    )
    decoded = record_from_wire(through_msgpack(legacy.to_wire()))
    assert decoded == legacy
    assert all(entry.signed_by(KEY) and not entry.record_hashes for entry in decoded.entries())
    # One record's entries must agree on their shared signature.
    wire = record.to_wire()
    wire["entries"][1]["validator_signature"] = legacy.signatures[1]
    with pytest.raises(DecodeError):
        record_from_wire(through_msgpack(wire))
