"""A batch of transfers decided before it is signed ends exactly as one by one."""

from __future__ import annotations

import pytest

from node.ledger import (
    Books,
    EntriesAppended,
    NotifyAppended,
    NotifyRefused,
    PersistRecord,
    ReceiveTransfer,
    SignRecord,
    record_from_wire,
)
from node.signatures import KIND_CHAIN_BATCH
from node.state import ledger_log_record
from node.wire import unpack
from tests.unit.test_ledger_support import VALIDATOR, Shell, bank_with_users

ALICE, BOB, CAROL = "alice@bank-a.test", "bob@bank-a.test", "carol@bank-a.test"


def batch(shell: Shell) -> list[ReceiveTransfer]:
    payments = [(ALICE, BOB, 30), (BOB, CAROL, 50), (ALICE, CAROL, 80), (CAROL, ALICE, 10)]
    inputs = [ReceiveTransfer(shell.transfer_instruction(*p)) for p in payments]
    inputs.insert(2, inputs[0])  # a replay inside the batch
    return inputs


def test_a_batch_decided_then_signed_once_ends_as_one_by_one_each_entry_proving_itself() -> None:
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
    request = later.books.batch_request()
    assert request is not None and request.kind == KIND_CHAIN_BATCH
    done = later.books.sign_applied(later.key.sign(request.kind, request.payload))
    records = [e.record for e in done if isinstance(e, PersistRecord)]
    assert all(isinstance(r, EntriesAppended) for r in records)
    refusals = [[e.reason for e in effects if isinstance(e, NotifyRefused)] for effects in expected]
    assert outcomes == [reasons[0] if reasons else "signed later" for reasons in refusals]
    assert "insufficient-funds" in outcomes and "replay" in outcomes
    # The same entries as one by one; one signature for all of them, each entry
    # proving itself with its path; the log replays to the same Books.
    alone = one_by_one.log[-len(records) :]
    assert [getattr(r, "bodies", None) for r in records] == [getattr(r, "bodies", 0) for r in alone]
    entries = [entry for e in done if isinstance(e, NotifyAppended) for entry in e.entries]
    assert len({entry.validator_signature for entry in entries}) == 1
    assert all(entry.signed_by(later.key.public_key) and entry.batch_path for entry in entries)
    replayed = Books(VALIDATOR, later.key.public_key, later.daily_limits)
    for record in [*later.log, *records]:
        replayed.apply(record_from_wire(unpack(ledger_log_record(record), 1 << 20)["r"]))
    assert replayed.to_snapshot() == later.books.to_snapshot()
    assert later.books.balances(CAROL) == one_by_one.books.balances(CAROL)


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
