"""Entries keep their canonical bytes: the log, snapshots and pulls reuse them.

What a user would notice if this broke: a log or snapshot written by this
code that an older reader (or ``chain verify``) decodes differently, or a
snapshot written before it that no longer restores.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.codec import array_header, map_header
from node.ledger import Books, EntriesAppended, decode_entry, encode_entry
from node.ledger.records import record_bytes
from node.state import ledger_log_record
from node.wire import DecodeError, pack
from tests.unit.test_ledger_support import (
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    bank_with_users,
    through_msgpack,
)

ALICE, BOB = "alice@bank-a.test", "bob@bank-a.test"


@given(st.integers(0, 2**32 - 1))
def test_headers_are_the_ones_msgpack_writes(length: int) -> None:
    packer = msgpack.Packer()
    assert map_header(length) == packer.pack_map_header(length)
    assert array_header(length) == packer.pack_array_header(length)


def busy_shell() -> Shell:
    shell = bank_with_users(ALICE, BOB, funds=1_000)
    shell.transfer(ALICE, BOB, 30)  # two entries under one signature (record_hashes)
    shell.withdraw(BOB, 20)  # one entry, signed alone
    shell.freeze(ALICE)
    return shell


def test_every_record_and_entry_is_written_exactly_as_plain_msgpack_would() -> None:
    shell = busy_shell()
    entries = 0
    for record in shell.log:
        assert record_bytes(record) == pack(record.to_wire())
        assert ledger_log_record(record) == pack({"t": "ledger", "r": record.to_wire()})
        if isinstance(record, EntriesAppended):
            for entry in record.entries():
                assert encode_entry(entry) == pack(entry.to_wire())
                assert decode_entry(encode_entry(entry)) == entry
                entries += 1
    assert entries >= 5


def test_a_snapshot_written_with_entries_as_maps_still_restores() -> None:
    shell = busy_shell()
    current = through_msgpack(shell.books.to_snapshot())
    old = {
        **current,
        "format": "ledgermesh/ledger-books/1",
        "chains": [
            [ubi, [entry.to_wire() for entry in shell.books.chain(ubi)]]
            for ubi, _ in current["chains"]
        ],
    }
    for snapshot in (current, through_msgpack(old)):
        restored = Books.from_snapshot(
            snapshot, VALIDATOR, VALIDATOR_KEY.public_key, shell.daily_limits
        )
        assert restored.to_snapshot() == shell.books.to_snapshot()
        assert restored.balances(ALICE) == shell.books.balances(ALICE)


def test_a_snapshot_entry_that_is_not_its_canonical_bytes_is_refused() -> None:
    shell = busy_shell()
    snapshot = through_msgpack(shell.books.to_snapshot())
    ubi, entries = snapshot["chains"][1]
    as_map = msgpack.unpackb(entries[0])
    reordered = pack(dict(reversed(list(as_map.items()))))  # same fields, other order
    for bad in (reordered, entries[0] + b"\x00", msgpack.unpackb(entries[0])):
        snapshot["chains"][1] = [ubi, [bad, *entries[1:]]]
        with pytest.raises(DecodeError):
            Books.from_snapshot(snapshot, VALIDATOR, VALIDATOR_KEY.public_key, {})
