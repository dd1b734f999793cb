"""Crashes on the simulated disk: the log keeps a prefix that holds everything synced."""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from node.storage import AppendLog, SimulatedCrash, SimulatedDisk, verify_log

SEGMENT_BYTES_MAX = 64  # frames of up to 52 bytes: segments roll over often


def test_unsynced_records_vanish_or_survive_whole_never_corrupted() -> None:
    synced = [b"durable %d" % index for index in range(5)]
    unsynced = [b"maybe %d" % index for index in range(20)]
    survivors: set[int] = set()
    for seed in range(60):
        disk = SimulatedDisk()
        log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
        for payload in synced:
            log.append(payload)
        log.sync()
        for payload in unsynced:
            log.append(payload)
        if seed % 2:
            disk.schedule_crash(after_operations=seed % 30)
            with contextlib.suppress(SimulatedCrash):  # the process may die inside the sync
                log.sync()
        disk.crash(random.Random(seed), zero_fill_tail=seed % 3 == 0)

        log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)

        records = [payload for _, payload in log.records()]
        assert records == (synced + unsynced)[: len(records)], seed
        assert len(records) >= len(synced), seed
        survivors.add(len(records) - len(synced))
    assert 0 in survivors and len(unsynced) in survivors and len(survivors) > 3


def state_of(payloads: list[bytes]) -> bytes:
    """A stand-in for the node state after applying ``payloads``."""
    digest = hashlib.sha256()
    for payload in payloads:
        digest.update(len(payload).to_bytes(4, "little") + payload)
    return digest.digest()


@dataclass
class Model:
    """What the log must hold: everything appended in this life, the durable prefix of it."""

    appended: list[bytes] = field(default_factory=list)
    durable: int = 0


seeds = st.integers(0, 2**32 - 1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=40)),
        st.tuples(st.just("append-many"), st.integers(1, 30)),
        st.tuples(st.just("sync")),
        st.tuples(st.just("snapshot")),
        st.tuples(st.just("crash"), seeds, st.booleans()),
        st.tuples(st.just("crash-in-sync"), st.integers(0, 8), seeds, st.booleans()),
        st.tuples(st.just("crash-in-snapshot"), st.integers(0, 4), seeds, st.booleans()),
    ),
    max_size=50,
)


def reopen_and_check(disk: SimulatedDisk, model: Model) -> AppendLog:
    assert verify_log(disk).ok  # a crash leaves at most a torn tail
    log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
    assert model.durable <= log.next_lsn <= len(model.appended)
    snapshot = log.load_snapshot()
    start_lsn = 0
    if snapshot is not None:
        start_lsn, state = snapshot
        assert state == state_of(model.appended[:start_lsn])
    expected = [(lsn, model.appended[lsn]) for lsn in range(start_lsn, log.next_lsn)]
    assert list(log.records(start_lsn)) == expected
    del model.appended[log.next_lsn :]
    model.durable = log.next_lsn
    assert verify_log(disk).problems == ()
    return log


@settings(max_examples=150, deadline=None)
@given(operations)
def test_after_any_crash_the_log_is_a_prefix_holding_everything_synced(
    steps: list[tuple[object, ...]],
) -> None:
    disk = SimulatedDisk()
    model = Model()
    log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
    for step in steps:
        match step:
            case ("append", bytes() as payload):
                assert log.append(payload) == len(model.appended)
                model.appended.append(payload)
            case ("append-many", int() as count):
                for _ in range(count):
                    model.appended.append(b"%d" % log.append(b"%d" % log.next_lsn))
            case ("sync",):
                log.sync()
                model.durable = len(model.appended)
            case ("snapshot",):
                log.sync()
                model.durable = len(model.appended)
                log.write_snapshot(model.durable, state_of(model.appended))
            case ("crash", int() as seed, bool() as zero_fill):
                disk.crash(random.Random(seed), zero_fill_tail=zero_fill)
                log = reopen_and_check(disk, model)
            case ("crash-in-sync", int() as after, int() as seed, bool() as zero_fill):
                disk.schedule_crash(after)
                try:
                    log.sync()
                    model.durable = len(model.appended)
                except SimulatedCrash:
                    pass  # what reached the disk is for the reopen to find out
                disk.crash(random.Random(seed), zero_fill_tail=zero_fill)
                log = reopen_and_check(disk, model)
            case ("crash-in-snapshot", int() as after, int() as seed, bool() as zero_fill):
                log.sync()
                model.durable = len(model.appended)
                disk.schedule_crash(after)
                with contextlib.suppress(SimulatedCrash):
                    log.write_snapshot(model.durable, state_of(model.appended))
                disk.crash(random.Random(seed), zero_fill_tail=zero_fill)
                log = reopen_and_check(disk, model)
            case _:
                raise AssertionError(step)
    disk.crash(random.Random(0))
    reopen_and_check(disk, model)
