"""The append-only log: records survive reopening, torn tails are cut, corruption is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from node.limits import LOG_RECORD_BYTES_MAX
from node.storage import (
    AppendLog,
    CorruptLogError,
    Disk,
    LogFailedError,
    RealDisk,
    SimulatedCrash,
    SimulatedDisk,
)

FRAME_HEADER_BYTES = 12  # the format: u32 length, u32 length check, u32 crc32c
FIRST_SEGMENT = "segment-00000000000000000000.log"

DiskFactory = Callable[[str], Disk]


@pytest.fixture(params=["real", "simulated"])
def make_disk(request: pytest.FixtureRequest, tmp_path: Path) -> DiskFactory:
    """A factory of fresh, empty disks of one kind."""
    if request.param == "real":
        return lambda label: RealDisk(tmp_path / label)
    return lambda label: SimulatedDisk()


def write_log(disk: Disk, payloads: list[bytes], **options: int) -> AppendLog:
    log, _ = AppendLog.open(disk, **options)
    for payload in payloads:
        log.append(payload)
    log.sync()
    return log


def reopen(disk: Disk, **options: int) -> tuple[list[tuple[int, bytes]], AppendLog]:
    log, _ = AppendLog.open(disk, **options)
    return list(log.records()), log


def frame_offsets(payloads: list[bytes]) -> list[int]:
    offsets, offset = [], 0
    for payload in payloads:
        offsets.append(offset)
        offset += FRAME_HEADER_BYTES + len(payload)
    return offsets


PAYLOADS = [b"", b"a", b"hello world", bytes(range(256)) * 3, b"\x00" * 40, b"last one"]


def test_records_survive_reopen_with_the_same_lsns(make_disk: DiskFactory) -> None:
    disk = make_disk("log")
    log = write_log(disk, PAYLOADS)
    assert log.next_lsn == log.durable_lsn == len(PAYLOADS)
    log.close()

    records, log = reopen(disk)

    assert records == list(enumerate(PAYLOADS))
    assert log.append(b"next") == len(PAYLOADS)
    log.sync()
    log.close()
    records, _ = reopen(disk)
    assert records[-1] == (len(PAYLOADS), b"next")


def test_append_returns_consecutive_lsns_and_sync_makes_them_durable() -> None:
    log, report = AppendLog.open(SimulatedDisk())
    assert report.records == 0 and report.truncated_file is None

    assert [log.append(b"x") for _ in range(5)] == [0, 1, 2, 3, 4]
    assert (log.next_lsn, log.durable_lsn) == (5, 0)
    assert list(log.records()) == []
    log.sync()
    assert (log.next_lsn, log.durable_lsn) == (5, 5)
    assert list(log.records(3)) == [(3, b"x"), (4, b"x")]


def test_one_sync_writes_all_pending_records_at_once() -> None:
    disk = SimulatedDisk()
    log, _ = AppendLog.open(disk)
    for index in range(1000):
        log.append(b"record %d" % index)
    disk.schedule_crash(after_operations=2)  # one write, one fsync, nothing more
    log.sync()
    assert log.durable_lsn == 1000


def test_records_not_synced_are_gone_after_close() -> None:
    disk = SimulatedDisk()
    log = write_log(disk, [b"kept"])
    log.append(b"dropped")
    log.close()
    records, _ = reopen(disk)
    assert records == [(0, b"kept")]


def test_cutting_the_last_record_anywhere_recovers_the_records_before(
    make_disk: DiskFactory,
) -> None:
    payloads = [b"first", b"second record", b"the last record, cut everywhere"]
    source = make_disk("source")
    write_log(source, payloads).close()
    data = source.read(FIRST_SEGMENT)
    last_frame_offset = frame_offsets(payloads)[-1]

    for cut in range(last_frame_offset, len(data)):
        disk = make_disk(f"cut-{cut}")
        disk.write_atomic(FIRST_SEGMENT, data[:cut])

        log, report = AppendLog.open(disk)

        assert list(log.records()) == list(enumerate(payloads[:-1])), cut
        torn = cut - last_frame_offset
        assert report.truncated_bytes == torn
        assert report.truncated_file == (FIRST_SEGMENT if torn else None)
        assert report.truncated_from_offset == (last_frame_offset if torn else None)
        assert disk.read(FIRST_SEGMENT) == data[:last_frame_offset]
        assert log.append(b"again") == 2
        log.sync()
        log.close()
        records, _ = reopen(disk)
        assert records[-1] == (2, b"again")


def test_the_torn_tail_is_cut_durably() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"one", b"two"]).close()
    data = disk.read(FIRST_SEGMENT)
    disk.write_atomic(FIRST_SEGMENT, data[:-1])

    AppendLog.open(disk)

    assert disk.synced_bytes(FIRST_SEGMENT) == FRAME_HEADER_BYTES + len(b"one")


EARLIER = [b"zero", b"flip me!", b"two", b"three"]
FLIPPED_RECORD = 1


@pytest.mark.parametrize("xor", [0x01, 0x80, 0xFF])
@pytest.mark.parametrize("byte", range(FRAME_HEADER_BYTES + len(EARLIER[FLIPPED_RECORD])))
def test_a_flipped_byte_in_an_earlier_record_is_corruption(byte: int, xor: int) -> None:
    disk = SimulatedDisk()
    write_log(disk, EARLIER).close()
    frame_offset = frame_offsets(EARLIER)[FLIPPED_RECORD]
    disk.corrupt(FIRST_SEGMENT, frame_offset + byte, xor)
    before = disk.read(FIRST_SEGMENT)

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk)

    assert (raised.value.file, raised.value.offset) == (FIRST_SEGMENT, frame_offset)
    assert disk.read(FIRST_SEGMENT) == before  # refused, not "repaired"


def test_a_flipped_byte_is_corruption_on_real_files(tmp_path: Path) -> None:
    disk = RealDisk(tmp_path)
    write_log(disk, EARLIER).close()
    frame_offset = frame_offsets(EARLIER)[FLIPPED_RECORD]
    path = tmp_path / FIRST_SEGMENT
    data = bytearray(path.read_bytes())
    data[frame_offset + 1] ^= 0x04  # a length byte
    path.write_bytes(bytes(data))

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk)

    assert (raised.value.file, raised.value.offset) == (FIRST_SEGMENT, frame_offset)
    assert "length" in raised.value.reason


def test_a_bad_last_frame_followed_by_garbage_is_corruption() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"one", b"two"]).close()
    data = disk.read(FIRST_SEGMENT)
    disk.write_atomic(FIRST_SEGMENT, data[:-1] + b"?" + b"\x00\x00junk")

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk)

    assert raised.value.offset == frame_offsets([b"one", b"two"])[1]


@pytest.mark.parametrize("zeros", [1, FRAME_HEADER_BYTES, 4096])
def test_a_zero_filled_tail_is_cut(make_disk: DiskFactory, zeros: int) -> None:
    disk = make_disk("log")
    write_log(disk, [b"one", b"two"]).close()
    data = disk.read(FIRST_SEGMENT)
    disk.write_atomic(FIRST_SEGMENT, data + bytes(zeros))

    log, report = AppendLog.open(disk)

    assert list(log.records()) == [(0, b"one"), (1, b"two")]
    assert (report.truncated_from_offset, report.truncated_bytes) == (len(data), zeros)
    assert disk.read(FIRST_SEGMENT) == data


def test_a_last_frame_partly_zero_filled_is_cut() -> None:
    payloads = [b"one", b"a longer last record"]
    disk = SimulatedDisk()
    write_log(disk, payloads).close()
    data = disk.read(FIRST_SEGMENT)
    last = frame_offsets(payloads)[-1]
    for zeros_from in range(last, len(data)):
        disk.write_atomic(FIRST_SEGMENT, data[:zeros_from] + bytes(len(data) - zeros_from + 7))
        log, report = AppendLog.open(disk)
        assert list(log.records()) == [(0, b"one")], zeros_from
        assert report.truncated_from_offset == last
        log.close()


def test_segments_roll_over_below_the_size_limit(make_disk: DiskFactory) -> None:
    disk = make_disk("log")
    segment_bytes_max = 100
    log, _ = AppendLog.open(disk, segment_bytes_max=segment_bytes_max)
    payloads = [b"record %02d" % index for index in range(40)]  # 21-byte frames
    for index, payload in enumerate(payloads):
        log.append(payload)
        if index % 7 == 6:
            log.sync()
    log.sync()
    log.close()

    names = disk.list()
    assert names == sorted(names) and len(names) == 10  # four 21-byte frames per segment
    assert names[1] == "segment-00000000000000000004.log"
    assert all(len(disk.read(name)) <= segment_bytes_max for name in names)
    records, log = reopen(disk, segment_bytes_max=segment_bytes_max)
    assert records == list(enumerate(payloads))
    assert list(log.records(from_lsn=13)) == list(enumerate(payloads))[13:]


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own() -> None:
    disk = SimulatedDisk()
    payloads = [b"small", b"x" * 300, b"small again"]
    write_log(disk, payloads, segment_bytes_max=100).close()
    assert len(disk.list()) == 3
    records, _ = reopen(disk, segment_bytes_max=100)
    assert records == list(enumerate(payloads))


def test_a_torn_end_of_a_segment_that_is_not_the_last_is_corruption() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"record %02d" % index for index in range(8)], segment_bytes_max=100).close()
    first, _ = disk.list()
    data = disk.read(first)
    disk.write_atomic(first, data[:-1])

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk, segment_bytes_max=100)

    assert raised.value.file == first
    assert raised.value.offset == 3 * (FRAME_HEADER_BYTES + 9)
    assert "not the last segment" in raised.value.reason


def test_a_missing_segment_is_corruption() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"record %02d" % index for index in range(12)], segment_bytes_max=100).close()
    first, second, third = disk.list()
    disk.remove(second)

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk, segment_bytes_max=100)
    assert (raised.value.file, raised.value.offset) == (third, 0)

    disk.remove(first)  # now the log starts after lsn 0 without a snapshot
    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk, segment_bytes_max=100)
    assert raised.value.file == third


def test_a_frame_read_at_another_lsn_fails_its_checksum() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"same", b"same"], segment_bytes_max=16).close()
    first, second = disk.list()
    first_data, second_data = disk.read(first), disk.read(second)
    assert first_data != second_data  # same payload, different lsn
    disk.write_atomic(first, second_data)
    disk.write_atomic(second, first_data)

    with pytest.raises(CorruptLogError) as raised:
        AppendLog.open(disk, segment_bytes_max=16)
    assert (raised.value.file, raised.value.offset) == (first, 0)


def test_other_files_in_the_directory_are_ignored() -> None:
    disk = SimulatedDisk()
    write_log(disk, [b"one"]).close()
    disk.write_atomic("notes.txt", b"not a segment")
    disk.write_atomic("segment-1.log", b"not a segment name either")
    records, _ = reopen(disk)
    assert records == [(0, b"one")]


def test_a_failed_sync_refuses_all_later_syncs() -> None:
    disk = SimulatedDisk()
    log, _ = AppendLog.open(disk)
    log.append(b"one")
    disk.schedule_crash(after_operations=1)  # the write goes through, the fsync fails
    with pytest.raises(SimulatedCrash):
        log.sync()
    assert log.durable_lsn == 0
    with pytest.raises(LogFailedError):
        log.sync()
    with pytest.raises(LogFailedError):
        log.write_snapshot(0, b"")


def test_records_above_the_limit_are_a_programmer_error() -> None:
    log, _ = AppendLog.open(SimulatedDisk())
    log.append(bytes(LOG_RECORD_BYTES_MAX))
    with pytest.raises(AssertionError):
        log.append(bytes(LOG_RECORD_BYTES_MAX + 1))


def test_records_notice_a_segment_changed_after_open() -> None:
    disk = SimulatedDisk()
    log = write_log(disk, [b"one", b"two", b"three"])
    disk.corrupt(FIRST_SEGMENT, FRAME_HEADER_BYTES + 3 + FRAME_HEADER_BYTES)

    records = log.records()
    assert next(records) == (0, b"one")
    with pytest.raises(CorruptLogError) as raised:
        next(records)
    assert raised.value.offset == FRAME_HEADER_BYTES + 3
