"""A batch of transfers decided before it is signed ends exactly as one by one."""

from __future__ import annotations

import pytest

from node.ledger import (
    NotifyAppended,
    NotifyRefused,
    PersistRecord,
    ReceiveTransfer,
    SignRecord,
)
from node.state import ledger_log_record
from tests.unit.test_ledger_support import Shell, bank_with_users

ALICE, BOB, CAROL = "alice@bank-a.test", "bob@bank-a.test", "carol@bank-a.test"


def batch(shell: Shell) -> list[ReceiveTransfer]:
    payments = [(ALICE, BOB, 30), (BOB, CAROL, 50), (ALICE, CAROL, 80), (CAROL, ALICE, 10)]
    inputs = [ReceiveTransfer(shell.transfer_instruction(*p)) for p in payments]
    inputs.insert(2, inputs[0])  # a replay inside the batch
    return inputs


def test_signing_a_batch_after_deciding_it_gives_the_same_books_and_log() -> None:
    one_by_one = bank_with_users(ALICE, BOB, CAROL, funds=100)
    later = bank_with_users(ALICE, BOB, CAROL, funds=100)
    inputs = batch(one_by_one)
    expected = [one_by_one.run(i) for i in inputs]
    outcomes: list[str] = []
    for input in inputs:
        [effect] = later.books.handle(input, 1_700_000_000_000)
        if isinstance(effect, SignRecord):
            later.books.apply_before_signing(effect.record)
            outcomes.append("signed later")
        else:
            assert isinstance(effect, NotifyRefused)
            outcomes.append(effect.reason)
    requests = later.books.unsigned_requests()
    signatures = [later.key.sign(r.kind, r.payload) for r in requests]
    done = later.books.sign_applied(signatures)
    logged = [ledger_log_record(e.record) for e in done if isinstance(e, PersistRecord)]
    appended = [e.entries for e in done if isinstance(e, NotifyAppended)]
    refusals = [[e.reason for e in effects if isinstance(e, NotifyRefused)] for effects in expected]
    assert outcomes == [reasons[0] if reasons else "signed later" for reasons in refusals]
    assert "insufficient-funds" in outcomes and "replay" in outcomes
    assert logged == [ledger_log_record(r) for r in one_by_one.log[-len(logged) :]]
    assert later.books.to_snapshot() == one_by_one.books.to_snapshot()
    assert all(entry.signed_by(later.key.public_key) for entries in appended for entry in entries)


def test_nothing_reads_or_persists_entries_before_their_signatures() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    [sign] = shell.books.handle(ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 5)), 0)
    assert isinstance(sign, SignRecord)
    shell.books.apply_before_signing(sign.record)
    for read in (shell.books.to_snapshot, lambda: shell.books.chain(ALICE)):
        with pytest.raises(AssertionError, match="waiting for their signatures"):
            read()
    [other] = shell.books.handle(ReceiveTransfer(shell.transfer_instruction(BOB, ALICE, 1)), 0)
    assert isinstance(other, SignRecord)
    with pytest.raises(AssertionError, match="sign_applied"):
        shell.books.apply_signed(other.record, (shell.key.sign(b"x", b"y"),))
