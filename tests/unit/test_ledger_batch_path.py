"""One validator signature for a batch of records: every entry still proves itself alone."""

from __future__ import annotations

import dataclasses
import math

import pytest

from node.ledger import (
    ChainEntry,
    NotifyAppended,
    ReceiveTransfer,
    SignRecord,
    decode_chain_file,
    decode_entry,
    encode_chain_file,
    encode_entry,
    verify_chain_file,
)
from node.ledger.chain import batch_root, batch_tree
from node.limits import BATCH_PATH_STEPS_MAX
from node.signatures import sha256
from node.wire import DecodeError, pack, unpack
from tests.unit.test_ledger_support import NOW_MS, Shell, bank_with_users

ALICE, BOB, CAROL = "alice@bank-a.test", "bob@bank-a.test", "carol@bank-a.test"


@pytest.mark.parametrize("count", range(2, 20))
def test_every_leaf_and_only_its_path_leads_to_the_root(count: int) -> None:
    leaves = [sha256(bytes([index])) for index in range(count)]
    root, paths = batch_tree(leaves)
    assert all(batch_root(leaf, path) == root for leaf, path in zip(leaves, paths, strict=True))
    assert max(len(path) for path in paths) == math.ceil(math.log2(count))
    assert batch_root(leaves[0], paths[1]) != root
    assert batch_root(leaves[-1], paths[0]) != root


def signed_batch(shell: Shell, count: int) -> list[ChainEntry]:
    """``count`` transfers decided, then signed once."""
    for index in range(count):
        payer, payee = (ALICE, BOB) if index % 2 else (BOB, CAROL)
        input = ReceiveTransfer(shell.transfer_instruction(payer, payee, 1))
        [sign] = shell.books.handle(input, NOW_MS)
        assert isinstance(sign, SignRecord)
        shell.books.apply_before_signing(sign.record)
    request = shell.books.batch_request()
    assert request is not None
    done = shell.books.sign_applied(shell.key.sign(request.kind, request.payload))
    return [entry for e in done if isinstance(e, NotifyAppended) for entry in e.entries]


def test_each_entry_of_a_batch_proves_itself_and_a_touched_path_does_not() -> None:
    shell = bank_with_users(ALICE, BOB, CAROL, funds=100)
    entries = signed_batch(shell, 7)
    key = shell.key.public_key
    assert len(entries) == 14 and all(entry.signed_by(key) for entry in entries)
    entry = entries[5]
    assert decode_entry(encode_entry(entry)) == entry
    path = entry.batch_path
    for index, step in enumerate(path):
        for position in (0, 1, len(step) - 1):
            touched = bytearray(step)
            touched[position] ^= 1
            other = (*path[:index], bytes(touched), *path[index + 1 :])
            assert not dataclasses.replace(entry, batch_path=other).signed_by(key)
    assert not dataclasses.replace(entry, batch_path=path[:-1]).signed_by(key)
    assert not dataclasses.replace(entry, batch_path=entries[0].batch_path).signed_by(key)
    assert not dataclasses.replace(entry, batch_path=()).signed_by(key)


def test_a_pulled_chain_of_batch_signed_entries_verifies_offline_and_names_a_flipped_byte() -> None:
    shell = bank_with_users(ALICE, BOB, CAROL, funds=100)
    signed_batch(shell, 6)
    raw = encode_chain_file(shell.books.chain_file(BOB))
    report = verify_chain_file(decode_chain_file(raw), shell.key.public_key)
    assert report.ok, report.problem
    last = shell.books.chain(BOB)[-1]
    start = raw.rindex(last.batch_path[-1])
    flipped = raw[:start] + bytes([raw[start] ^ 1]) + raw[start + 1 :]
    report = verify_chain_file(decode_chain_file(flipped), shell.key.public_key)
    assert not report.ok and f"(seq {last.seq})" in str(report.problem)


@pytest.mark.parametrize(
    "path",
    [
        [],
        [b"\x02" + bytes(32)],
        [b"\x00" + bytes(31)],
        [b"\x01" + bytes(32)] * (BATCH_PATH_STEPS_MAX + 1),
        [bytes(33), "text"],
    ],
    ids=["empty", "side-2", "short-step", "too-long", "not-bytes"],
)
def test_a_malformed_batch_path_is_refused(path: list[object]) -> None:
    shell = bank_with_users(ALICE, BOB, CAROL, funds=100)
    wire = signed_batch(shell, 2)[0].to_wire()
    wire["batch_path"] = path
    signature = wire.pop("validator_signature")
    with pytest.raises(DecodeError):
        decode_entry(pack({**wire, "validator_signature": signature}))
    assert unpack(pack(wire), 1 << 16)["batch_path"] == path
