"""verify_log and scan_records: read-only checks for the operator tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.storage import (
    AppendLog,
    CorruptLogError,
    RealDisk,
    RecordLocation,
    SimulatedDisk,
    scan_records,
    verify_log,
)

FRAME_HEADER_BYTES = 12
SEGMENT_BYTES_MAX = 100  # four 21-byte frames per segment
SEGMENTS = [f"segment-{lsn:020d}.log" for lsn in (0, 4, 8)]


def write_log(disk: RealDisk | SimulatedDisk, count: int) -> None:
    log, _ = AppendLog.open(disk, segment_bytes_max=SEGMENT_BYTES_MAX)
    for lsn in range(count):
        log.append(b"record %02d" % lsn)
    log.sync()
    log.write_snapshot(2, b"state")
    log.close()


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_a_sound_log_verifies() -> None:
    disk = SimulatedDisk()
    write_log(disk, 10)
    report = verify_log(disk)
    assert report.ok and report.problems == ()
    assert (report.segments, report.records, report.first_lsn, report.next_lsn) == (3, 10, 0, 10)
    assert report.snapshot_lsn == 2


def test_verify_names_the_file_and_offset_of_a_flipped_byte_and_changes_nothing(
    tmp_path: Path,
) -> None:
    disk = RealDisk(tmp_path)
    write_log(disk, 10)
    path = tmp_path / SEGMENTS[1]
    data = bytearray(path.read_bytes())
    data[FRAME_HEADER_BYTES + 9 + FRAME_HEADER_BYTES + 3] ^= 0x20  # payload of lsn 5
    path.write_bytes(bytes(data))
    before = files(tmp_path)

    report = verify_log(disk)

    assert not report.ok
    problem = report.problems[0]
    assert (problem.kind, problem.file, problem.offset) == ("corrupt-log", SEGMENTS[1], 21)
    assert "lsn 5" in problem.reason
    assert files(tmp_path) == before


def test_verify_reports_a_torn_tail_without_cutting_it() -> None:
    disk = SimulatedDisk()
    write_log(disk, 10)
    last = disk.read(SEGMENTS[2])
    disk.write_atomic(SEGMENTS[2], last + b"\x07\x00\x00")

    report = verify_log(disk)

    assert report.ok
    assert [(p.kind, p.file, p.offset) for p in report.problems] == [
        ("torn-tail", SEGMENTS[2], len(last))
    ]
    assert disk.read(SEGMENTS[2]) == last + b"\x07\x00\x00"


def test_verify_reports_a_corrupt_snapshot() -> None:
    disk = SimulatedDisk()
    write_log(disk, 10)
    disk.corrupt("snapshot.bin", 26)
    report = verify_log(disk)
    assert [(p.kind, p.file) for p in report.problems] == [("corrupt-snapshot", "snapshot.bin")]


def test_scan_records_locates_every_record() -> None:
    disk = SimulatedDisk()
    write_log(disk, 10)
    locations = list(scan_records(disk))
    assert [location.lsn for location in locations] == list(range(10))
    assert locations[5] == RecordLocation(5, SEGMENTS[1], 21, b"record 05")


def test_scan_records_stops_at_corruption_with_its_location() -> None:
    disk = SimulatedDisk()
    write_log(disk, 10)
    disk.corrupt(SEGMENTS[1], 42 + 1)
    seen: list[int] = []
    with pytest.raises(CorruptLogError) as raised:
        seen.extend(location.lsn for location in scan_records(disk))
    assert seen == [0, 1, 2, 3, 4, 5]
    assert (raised.value.file, raised.value.offset) == (SEGMENTS[1], 42)
