"""Chain files and equivocation evidence: strict, and no byte changes unnoticed."""

from __future__ import annotations

import dataclasses
from functools import cache

import pytest

from node.ledger import (
    ChainEntry,
    EntryDecodeError,
    Transfer,
    check_evidence,
    decode_chain_file,
    decode_evidence,
    encode_chain_file,
    encode_evidence,
    equivocation,
    verify_chain_file,
)
from node.ledger.files import Evidence, evidence_from_wire
from node.wire import DecodeError, pack
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
CAROL = "carol@bank-a.test"


@cache
def small_bank() -> Shell:
    """Alice's chain: a deposit, a payment to Bob, a payment from Bob."""
    shell = bank_with_users(ALICE, BOB, CAROL)
    shell.deposit(ALICE, 100)
    shell.deposit(BOB, 50)
    shell.transfer(ALICE, BOB, 30)
    shell.transfer(BOB, ALICE, 10)
    return shell


@cache
def small_file() -> bytes:
    return encode_chain_file(small_bank().books.chain_file(ALICE))


def entry_spans(raw: bytes, entries: tuple[ChainEntry, ...]) -> list[range]:
    spans = []
    for entry in entries:
        encoded = pack(entry.to_wire())
        start = raw.index(encoded)
        spans.append(range(start, start + len(encoded)))
    return spans


def test_a_chain_file_round_trips_and_verifies() -> None:
    raw = small_file()
    chain_file = decode_chain_file(raw)
    assert chain_file == small_bank().books.chain_file(ALICE)
    report = verify_chain_file(chain_file, VALIDATOR_KEY.public_key)
    assert report.ok and report.problem is None
    assert (report.ubi, report.entries, report.balances) == (ALICE, 3, {USD: 80})
    assert report.head_hash == chain_file.entries[-1].entry_hash()


def test_the_books_chain_file_has_no_federation_record() -> None:
    chain_file = small_bank().books.chain_file(VALIDATOR)
    assert chain_file.federation is None
    report = verify_chain_file(decode_chain_file(encode_chain_file(chain_file)))
    assert report.ok and report.balances == {USD: -150}


def test_a_chain_file_verified_against_another_validator_key_fails() -> None:
    chain_file = decode_chain_file(small_file())
    report = verify_chain_file(chain_file, OTHER_VALIDATOR_KEY.public_key)
    assert not report.ok and report.problem is not None
    assert report.problem.reason == "untrusted-validator"


def test_a_user_chain_without_its_federation_record_fails() -> None:
    chain_file = dataclasses.replace(decode_chain_file(small_file()), federation=None)
    report = verify_chain_file(chain_file)
    assert report.problem is not None and report.problem.reason == "no-federation"


def test_a_chain_file_with_another_users_federation_record_fails() -> None:
    books = small_bank().books
    bob = books.user(BOB)
    assert bob is not None
    chain_file = dataclasses.replace(books.chain_file(ALICE), federation=bob.federation)
    report = verify_chain_file(chain_file)
    assert report.problem is not None and report.problem.reason == "wrong-ubi"


def test_truncated_and_padded_chain_files_fail_to_decode() -> None:
    raw = small_file()
    for cut in (0, 1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(DecodeError):
            decode_chain_file(raw[:cut])
    with pytest.raises(DecodeError, match="trailing"):
        decode_chain_file(raw + b"\x00")


@pytest.mark.parametrize("position", range(len(small_file())))
def test_changing_any_byte_of_a_chain_file_is_detected_and_names_the_entry(
    position: int,
) -> None:
    raw = small_file()
    spans = entry_spans(raw, small_bank().books.chain_file(ALICE).entries)
    inside = [index for index, span in enumerate(spans) if position in span]
    for flip in (0x01, 0x80, 0xFF):
        tampered = bytearray(raw)
        tampered[position] ^= flip
        try:
            chain_file = decode_chain_file(bytes(tampered))
        except EntryDecodeError as error:
            assert error.index in inside, (position, flip, str(error))
            continue
        except DecodeError as error:
            assert not inside, (position, flip, f"{error} does not name the entry")
            continue
        report = verify_chain_file(chain_file)
        assert not report.ok, (position, flip)
        assert report.problem is not None
        if inside:
            assert report.problem.index == inside[0], (position, flip, str(report.problem))


# --- equivocation evidence ---------------------------------------------------------------


def conflicting_entry(shell: Shell, entry: ChainEntry, payee: str) -> ChainEntry:
    """The validator signs another entry at the same place: a payment to ``payee``."""
    transfer = entry.body.instruction.instruction
    assert isinstance(transfer, Transfer)
    other = dataclasses.replace(transfer, to_ubi=payee)
    body = dataclasses.replace(
        entry.body, instruction=sign_instruction(user_key(transfer.from_ubi), other)
    )
    return resign(body, shell.key)


def test_a_real_equivocation_is_valid_evidence_and_names_the_validator() -> None:
    shell = small_bank()
    paid_bob = shell.books.chain(ALICE)[1]
    paid_carol = conflicting_entry(shell, paid_bob, CAROL)
    evidence = equivocation(VALIDATOR_KEY.public_key, paid_bob, paid_carol)
    raw = encode_evidence(evidence)
    assert decode_evidence(raw) == evidence
    for form in (evidence, raw, through_msgpack(evidence.to_wire())):
        verdict = check_evidence(form)
        assert verdict.valid and verdict.reason == "equivocation"
        assert (verdict.validator_key, verdict.ubi, verdict.seq) == (
            VALIDATOR_KEY.public_key,
            ALICE,
            1,
        )


def test_one_entry_twice_is_no_evidence() -> None:
    entry = small_bank().books.chain(ALICE)[1]
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, entry, entry))
    assert (verdict.valid, verdict.reason, verdict.validator_key) == (False, "same-entry", None)


def test_entries_of_two_chains_or_two_seqs_are_no_evidence() -> None:
    books = small_bank().books
    alice_1, bob_1 = books.chain(ALICE)[1], books.chain(BOB)[1]
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, alice_1, bob_1))
    assert (verdict.valid, verdict.reason) == (False, "different-ubi")
    alice_2 = books.chain(ALICE)[2]
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, alice_1, alice_2))
    assert (verdict.valid, verdict.reason) == (False, "different-seq")


def test_entries_of_two_validators_are_no_evidence() -> None:
    shell = small_bank()
    mine = shell.books.chain(ALICE)[1]
    theirs = resign(conflicting_entry(shell, mine, CAROL).body, OTHER_VALIDATOR_KEY)
    evidence = Evidence(VALIDATOR_KEY.public_key, mine, OTHER_VALIDATOR_KEY.public_key, theirs)
    verdict = check_evidence(evidence)
    assert (verdict.valid, verdict.reason, verdict.validator_key) == (
        False,
        "different-validator",
        None,
    )


def test_an_entry_the_named_validator_did_not_sign_is_no_evidence() -> None:
    shell = small_bank()
    mine = shell.books.chain(ALICE)[1]
    forged = resign(conflicting_entry(shell, mine, CAROL).body, OTHER_VALIDATOR_KEY)
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, mine, forged))
    assert (verdict.valid, verdict.reason) == (False, "bad-signature")
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, forged, mine))
    assert (verdict.valid, verdict.reason) == (False, "bad-signature")


def test_malformed_evidence_is_invalid_not_an_exception() -> None:
    for obj in (b"", b"\x90", {"format": "x"}, None, 7, [1, 2]):
        verdict = check_evidence(obj)
        assert (verdict.valid, verdict.reason) == (False, "malformed")
    with pytest.raises(DecodeError):
        evidence_from_wire({"format": "ledgermesh/equivocation/1", "first": {}, "second": {}})


def test_changing_any_byte_of_an_evidence_file_makes_it_invalid() -> None:
    shell = small_bank()
    paid_bob = shell.books.chain(ALICE)[1]
    raw = encode_evidence(
        equivocation(VALIDATOR_KEY.public_key, paid_bob, conflicting_entry(shell, paid_bob, CAROL))
    )
    assert check_evidence(raw).valid
    for position in range(len(raw)):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        assert not check_evidence(bytes(tampered)).valid, position


def test_a_forged_second_entry_with_the_first_entrys_signature_is_no_evidence() -> None:
    shell = small_bank()
    paid_bob = shell.books.chain(ALICE)[1]
    forged = ChainEntry(
        conflicting_entry(shell, paid_bob, CAROL).body, paid_bob.validator_signature
    )
    verdict = check_evidence(equivocation(VALIDATOR_KEY.public_key, paid_bob, forged))
    assert (verdict.valid, verdict.reason) == (False, "bad-signature")
