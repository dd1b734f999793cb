"""Snapshots: replay resumes after them, old segments go, damage is refused, a crash is harmless."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from node.storage import (
    AppendLog,
    CorruptLogError,
    CorruptSnapshotError,
    Disk,
    RealDisk,
    SimulatedCrash,
    SimulatedDisk,
)

SEGMENT_BYTES_MAX = 100  # four 21-byte frames per segment
SNAPSHOT = "snapshot.bin"


def payload(lsn: int) -> bytes:
    return b"record %02d" % lsn


def open_log(disk: Disk) -> AppendLog:
    log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
    return log


def append_synced(log: AppendLog, count: int) -> None:
    for _ in range(count):
        log.append(payload(log.next_lsn))
    log.sync()


def segment_lsns(disk: Disk) -> list[int]:
    return [int(name[8:28]) for name in disk.list() if name.startswith("segment-")]


@pytest.mark.parametrize("kind", ["real", "simulated"])
def test_replay_resumes_after_the_snapshot_and_old_segments_go(kind: str, tmp_path: Path) -> None:
    disk: Disk = RealDisk(tmp_path) if kind == "real" else SimulatedDisk()
    log = open_log(disk)
    assert log.load_snapshot() is None
    append_synced(log, 14)
    assert segment_lsns(disk) == [0, 4, 8, 12]

    log.write_snapshot(9, b"state below 9")

    assert segment_lsns(disk) == [8, 12]  # 8..11 holds lsn 9 and stays
    log.close()
    log, report = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
    assert report.snapshot_lsn == 9
    assert log.load_snapshot() == (9, b"state below 9")
    assert [lsn for lsn, _ in log.records(9)] == list(range(9, 14))
    assert all(record == payload(lsn) for lsn, record in log.records(9))
    assert log.append(b"after") == 14  # lsns are stable once old segments are gone


def test_a_snapshot_at_the_end_keeps_the_open_segment() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 8)
    log.write_snapshot(8, b"everything")
    assert segment_lsns(disk) == [4]
    log.close()

    log = open_log(disk)
    assert list(log.records(8)) == []
    assert log.append(b"more") == 8


def test_a_later_snapshot_replaces_the_earlier_one() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 6)
    log.write_snapshot(2, b"first")
    append_synced(log, 6)
    log.write_snapshot(10, b"second")
    assert log.load_snapshot() == (10, b"second")
    assert segment_lsns(disk) == [8]


def test_a_snapshot_may_only_cover_durable_records() -> None:
    log = open_log(SimulatedDisk())
    append_synced(log, 2)
    log.append(b"not yet durable")
    with pytest.raises(AssertionError):
        log.write_snapshot(3, b"too far")


@pytest.mark.parametrize("offset", [0, 8, 16, 24, 30, -1])
def test_a_corrupted_snapshot_is_refused(offset: int) -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 3)
    log.write_snapshot(2, b"the state")
    disk.corrupt(SNAPSHOT, offset % len(disk.read(SNAPSHOT)), 0x10)

    with pytest.raises(CorruptSnapshotError):
        log.load_snapshot()
    log.close()
    with pytest.raises(CorruptSnapshotError):
        open_log(disk)


def test_a_truncated_snapshot_is_refused() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 3)
    log.write_snapshot(2, b"the state")
    log.close()
    disk.write_atomic(SNAPSHOT, disk.read(SNAPSHOT)[:-1])
    with pytest.raises(CorruptSnapshotError) as raised:
        open_log(disk)
    assert raised.value.file == SNAPSHOT


def test_a_crash_during_a_snapshot_write_keeps_the_previous_snapshot() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 10)
    log.write_snapshot(5, b"previous")
    append_synced(log, 4)
    disk.schedule_crash(after_operations=0)
    with pytest.raises(SimulatedCrash):
        log.write_snapshot(12, b"interrupted")
    assert "snapshot.bin.tmp" in disk.contents()

    disk.crash(random.Random(7))

    assert "snapshot.bin.tmp" not in disk.list()
    log = open_log(disk)
    assert log.load_snapshot() == (5, b"previous")
    assert [lsn for lsn, _ in log.records(5)] == list(range(5, 14))


def test_a_crash_between_snapshot_and_segment_removal_is_harmless() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 14)
    disk.schedule_crash(after_operations=2)  # the snapshot and one removal
    with pytest.raises(SimulatedCrash):
        log.write_snapshot(13, b"state")
    disk.crash(random.Random(1))
    assert segment_lsns(disk) == [4, 8, 12]

    log = open_log(disk)
    assert log.load_snapshot() == (13, b"state")
    assert list(log.records(13)) == [(13, payload(13))]
    log.write_snapshot(13, b"state")
    assert segment_lsns(disk) == [12]


def test_a_snapshot_without_the_segments_after_it_is_corruption() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 14)
    log.write_snapshot(13, b"state")
    log.close()
    disk.remove("segment-00000000000000000012.log")

    with pytest.raises(CorruptLogError) as raised:
        open_log(disk)
    assert "no segment holds the records after the snapshot" in raised.value.reason


def test_a_log_that_ends_before_its_snapshot_is_corruption() -> None:
    disk = SimulatedDisk()
    log = open_log(disk)
    append_synced(log, 3)
    log.write_snapshot(3, b"state")
    log.close()
    disk.truncate("segment-00000000000000000000.log", 21)

    with pytest.raises(CorruptLogError) as raised:
        open_log(disk)
    assert (raised.value.file, raised.value.offset) == ("segment-00000000000000000000.log", 21)
