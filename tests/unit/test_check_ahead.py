"""The signature checker process: what it answers, and that a node using it
decides every batched transfer exactly as it does without it, child alive or dead."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import node.check_ahead
import node.signatures
import node.verify_pool
from node.api.protocol import Request, decode_response, encode_request
from node.check_ahead import CheckAhead, check_batch, open_check_ahead
from node.config import NodeConfig
from node.engine import NodeEngine
from node.ledger.signed import Identity, SignedIdentity, Transfer
from node.net.base import Received
from node.signatures import NodeKey, sha256
from node.wire import pack
from simulations.options import OPERATOR_KEY, node_key
from simulations.simnode import SimNode

USD = "bank-a.test/USD"
ALICE, BOB = "alice@bank-a.test", "bob@bank-a.test"
ALICE_KEY = NodeKey(sha256(b"alice"))
BOB_KEY = NodeKey(sha256(b"bob"))


def signed_transfer(nonce: int, *, key: NodeKey = ALICE_KEY, amount: int = 1) -> bytes:
    transfer = Transfer(ALICE, BOB, USD, amount, nonce, 1_800_000_000_000)
    request = transfer.signing_request()
    return pack([request.payload, ALICE_KEY.public_key, key.sign(request.kind, request.payload)])


FORGED = signed_transfer(3, key=BOB_KEY)


def test_the_child_answers_one_byte_per_instruction() -> None:
    batch = [signed_transfer(1), FORGED, b"\xc1", pack([1, 2]), signed_transfer(2)]
    assert check_batch(pack(batch)) == bytes([1, 0, 0, 0, 1])
    assert check_batch(pack("not a list")) == b""
    assert check_batch(b"\xc1") == b""


@pytest.fixture
def checker() -> Iterator[CheckAhead]:
    node.signatures._verified.clear()  # no signature known valid from another test
    with open_check_ahead() as opened:
        if opened is None:
            pytest.skip("one core: the node checks in-process")
        assert opened.ready(timeout_s=30)
        yield opened


def test_answers_come_in_order_and_unasked_ones_are_dropped(checker: CheckAhead) -> None:
    first, second = [signed_transfer(1)], [FORGED, signed_transfer(2)]
    assert checker.send(first) and checker.send(second)
    assert checker.answers_for([signed_transfer(9)]) is None  # never sent: nothing read
    assert checker.answers_for(list(second)) == bytes([0, 1])  # an equal list is the batch
    assert checker.answers_for(first) is None  # dropped on the way
    assert checker.send(first)
    checker.forget()
    assert checker.answers_for(first) is None
    assert checker.batches_checked == 3 and not checker.broken


def test_a_dead_child_means_checking_in_process_not_an_error(checker: CheckAhead) -> None:
    assert checker.send([signed_transfer(1)])
    checker._process.kill()
    checker._process.wait()
    assert checker.answers_for([signed_transfer(1)]) is None
    assert checker.broken
    assert not checker.send([signed_transfer(2)])


# --- a node deciding batched transfers with and without the child -----------------------


def started_engine() -> NodeEngine:
    key = node_key(0)
    config = NodeConfig("bank-a.test", ("sim", 0), key.public_key, OPERATOR_KEY.public_key, ())
    sim_node = SimNode(0, config, key, [], random.Random("check-ahead"))
    sim_node.start(0, lambda: [], lambda: 0.0)
    assert sim_node.engine is not None
    return sim_node.engine


def call(engine: NodeEngine, key: NodeKey, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """One pass with these requests (ids 1, 2, ...); their answers, in order."""
    events = [
        Received(key.public_key, encode_request(Request(index, op, args)))
        for index, (op, args) in enumerate(requests, 1)
    ]
    decisions = engine.decide(events, 0, tick=False)
    engine.sync()
    return [decode_response(payload)[1] for _, payload in engine.outgoing(decisions)]


def identity(address: str, key: NodeKey) -> bytes:
    record = Identity(address, key.public_key)
    request = record.signing_request()
    return pack(SignedIdentity(record, key.sign(request.kind, request.payload)).to_wire())


def outcomes(engine: NodeEngine) -> list[list[Any]]:
    call(engine, OPERATOR_KEY, [("asset_define", {"code": "USD", "decimals": 2})])
    for address, key in ((ALICE, ALICE_KEY), (BOB, BOB_KEY)):
        registration = {"identity": identity(address, key), "kyc_level": 0}
        call(engine, OPERATOR_KEY, [("user_register", registration)])
    call(engine, OPERATOR_KEY, [("deposit", {"address": ALICE, "uai": USD, "amount": 100})])
    batches = [
        [signed_transfer(nonce) for nonce in range(1, 21)],
        [signed_transfer(21), FORGED, signed_transfer(1), signed_transfer(22, amount=500)],
        [signed_transfer(nonce) for nonce in range(23, 43)],
    ]
    answers = call(engine, ALICE_KEY, [("ledger_transfers", {"instructions": b}) for b in batches])
    return [
        [row.get("refused") or row["entry"]["seq"] for row in answer["results"]]
        for answer in answers
    ]


def test_a_node_decides_the_same_with_the_child_without_it_and_when_it_dies(
    checker: CheckAhead,
) -> None:
    alone = outcomes(started_engine())
    assert alone[1][1:] == ["bad-signature", "replay", "insufficient-funds"]
    node.signatures._verified.clear()
    engine = started_engine()
    engine.accounts.checker = checker
    assert outcomes(engine) == alone
    assert checker.batches_checked == 2  # the pass's second and third batches
    checker._process.kill()
    engine = started_engine()
    engine.accounts.checker = checker
    assert outcomes(engine) == alone
    assert checker.broken


def test_a_stopped_child_is_given_up_after_the_timeout(
    checker: CheckAhead, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node.check_ahead, "CHECK_AHEAD_ANSWER_TIMEOUT_MS", 200)
    checker._process.send_signal(signal.SIGSTOP)
    assert checker.send([signed_transfer(1)])
    started = time.monotonic()
    assert checker.answers_for([signed_transfer(1)]) is None
    assert 0.2 <= time.monotonic() - started < 2
    assert checker.broken and checker._process.poll() is not None  # killed, not left stopped


def test_no_child_when_this_process_may_use_one_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node pinned to one CPU (taskset, a container's cpuset) on a bigger
    machine has no core to spare: it checks in-process."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    with open_check_ahead() as child:
        assert child is None


@pytest.mark.parametrize(
    ("v2", "v1_quota", "expected"),
    [
        ("150000 100000\n", None, 1),  # docker --cpus 1.5: one whole CPU
        ("1600000 100000\n", None, 8),  # more quota than CPUs: the CPUs
        ("400000 100000\n", None, 4),  # a quota of four
        ("max 100000\n", None, 8),  # no quota
        (None, "100000", 1),  # cgroup v1, a quota of one CPU
        (None, "-1", 8),  # cgroup v1, none
        ("garbage", None, 8),  # unreadable: no cap
    ],
)
def test_a_cpu_quota_caps_the_cpus_counted(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    v2: str | None,
    v1_quota: str | None,
    expected: int,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    cpu_max, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    if v2 is not None:
        cpu_max.write_text(v2)
    if v1_quota is not None:
        quota.write_text(v1_quota)
        period.write_text("100000")
    monkeypatch.setattr(node.verify_pool, "CGROUP_CPU_MAX", cpu_max)
    monkeypatch.setattr(node.verify_pool, "CGROUP_V1_QUOTA", quota)
    monkeypatch.setattr(node.verify_pool, "CGROUP_V1_PERIOD", period)
    assert node.verify_pool.usable_cpus() == expected


def test_nothing_is_sent_ahead_before_the_child_says_it_started() -> None:
    """The child's start-up (its imports) does not count against an answer's
    deadline: until its hello is read the node checks in-process."""
    with open_check_ahead() as checker:
        if checker is None:
            pytest.skip("one core: the node checks in-process")
        checker._process.send_signal(signal.SIGSTOP)  # still importing, say
        if not checker.ready():  # (it may have said hello already)
            assert not checker.send([signed_transfer(1)])  # checked in-process instead
            assert not checker.broken
        checker._process.send_signal(signal.SIGCONT)
        assert checker.ready(timeout_s=30)
        assert checker.send([signed_transfer(1)])
        assert checker.answers_for([signed_transfer(1)]) == bytes([1])


def test_a_child_that_never_starts_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.check_ahead, "CHECK_AHEAD_START_TIMEOUT_MS", 0)
    with open_check_ahead() as checker:
        if checker is None:
            pytest.skip("one core: the node checks in-process")
        checker._process.send_signal(signal.SIGSTOP)
        time.sleep(0.01)
        if not checker.ready():
            assert checker.broken and checker._process.poll() is not None


def test_ctrl_c_in_the_terminal_does_not_stop_the_child(checker: CheckAhead) -> None:
    """SIGINT reaches the node's whole process group; the node stops the child
    itself (by closing its input), so the child neither dies nor prints a traceback."""
    checker._process.send_signal(signal.SIGINT)
    assert checker.send([signed_transfer(1)])
    assert checker.answers_for([signed_transfer(1)]) == bytes([1])
    assert checker._process.poll() is None
