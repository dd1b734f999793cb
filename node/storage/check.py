"""Reading the whole log to check it: for recovery and the operator tools.

Rules:
- Nothing here changes a file: ``AppendLog.open`` acts on what ``examine``
  finds, ``verify_log`` and ``scan_records`` only report it.
- The snapshot is checked first, then every segment in lsn order: each must
  start where the one before ends, the first must start at or before the
  snapshot (at lsn 0 without one), and the log must reach the snapshot.
- Within a segment, the torn-tail vs corruption rule of ``frames`` applies;
  a torn tail is only a torn tail in the last segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

from node.storage.disk import Disk
from node.storage.frames import (
    SNAPSHOT_NAME,
    SegmentScan,
    decode_snapshot,
    iterate_frames,
    scan_segment,
    segment_first_lsn,
    segment_name,
)


class CorruptLogError(Exception):
    """Raised when the log holds data that no crash can explain (not a torn tail).

    ``file`` and ``offset`` locate the first bad byte range; ``reason`` says what
    is wrong. The node must not start on such a log.
    """

    def __init__(self, file: str, offset: int, reason: str) -> None:
        super().__init__(f"{file} at byte {offset}: {reason}")
        self.file = file
        self.offset = offset
        self.reason = reason


class CorruptSnapshotError(Exception):
    """Raised when snapshot.bin exists but is not a valid snapshot."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


ProblemKind = Literal["torn-tail", "corrupt-log", "corrupt-snapshot"]


@dataclass(frozen=True)
class LogProblem:
    """One finding of ``verify_log``; a torn tail is not fatal (open cuts it)."""

    kind: ProblemKind
    file: str
    offset: int
    reason: str

    @property
    def fatal(self) -> bool:
        return self.kind != "torn-tail"


@dataclass(frozen=True)
class VerifyReport:
    """The result of ``verify_log``."""

    segments: int
    records: int  # valid records found
    first_lsn: int | None  # of the oldest segment
    next_lsn: int | None  # after the last valid record (None if unknown)
    snapshot_lsn: int | None
    problems: tuple[LogProblem, ...]

    @property
    def ok(self) -> bool:
        """True if ``AppendLog.open`` would accept the log (perhaps cutting a torn tail)."""
        return not any(problem.fatal for problem in self.problems)


class RecordLocation(NamedTuple):
    lsn: int
    file: str
    offset: int  # of the frame header
    payload: bytes


@dataclass(frozen=True)
class SegmentCheck:
    name: str
    first_lsn: int
    file_bytes: int
    scan: SegmentScan


@dataclass(frozen=True)
class Examination:
    segments: list[SegmentCheck]  # up to the first corrupt one
    snapshot_lsn: int | None
    next_lsn: int
    problems: list[LogProblem]


def examine(disk: Disk) -> Examination:
    """Check the snapshot and every segment; report problems, change nothing."""
    names = disk.list()
    problems: list[LogProblem] = []
    snapshot_lsn: int | None = None
    snapshot_known = True
    if SNAPSHOT_NAME in names:
        decoded = decode_snapshot(disk.read(SNAPSHOT_NAME))
        if isinstance(decoded, str):
            problems.append(LogProblem("corrupt-snapshot", SNAPSHOT_NAME, 0, decoded))
            snapshot_known = False
        else:
            snapshot_lsn = decoded[0]
    segments = sorted(
        (first_lsn, name) for name in names if (first_lsn := segment_first_lsn(name)) is not None
    )
    checks: list[SegmentCheck] = []
    expected_lsn: int | None = None  # where the next segment must start, if known
    for index, (first_lsn, name) in enumerate(segments):
        is_last = index == len(segments) - 1
        if index == 0 and snapshot_known and first_lsn > (snapshot_lsn or 0):
            reason = (
                f"the log starts at lsn {first_lsn}, after the snapshot (lsn {snapshot_lsn})"
                if snapshot_lsn is not None
                else f"the log starts at lsn {first_lsn} and there is no snapshot"
            )
            problems.append(LogProblem("corrupt-log", name, 0, reason))
        if expected_lsn is not None and first_lsn != expected_lsn:
            reason = f"segment starts at lsn {first_lsn}; the one before ends at {expected_lsn}"
            problems.append(LogProblem("corrupt-log", name, 0, reason))
        data = disk.read(name)
        scan = scan_segment(data, first_lsn)
        expected_lsn = first_lsn + scan.records
        if scan.stop_reason is not None:
            if is_last and scan.torn:
                problems.append(LogProblem("torn-tail", name, scan.valid_bytes, scan.stop_reason))
            else:
                where = "" if is_last else " (not the last segment)"
                reason = scan.stop_reason + where
                problems.append(LogProblem("corrupt-log", name, scan.valid_bytes, reason))
                expected_lsn = None  # the rest of this segment cannot be read
        checks.append(SegmentCheck(name, first_lsn, len(data), scan))
    next_lsn = checks[-1].first_lsn + checks[-1].scan.records if checks else 0
    if snapshot_lsn is not None:
        if not checks:
            reason = f"no segment holds the records after the snapshot (lsn {snapshot_lsn})"
            problems.append(LogProblem("corrupt-log", segment_name(snapshot_lsn), 0, reason))
        elif expected_lsn is not None and next_lsn < snapshot_lsn:
            last = checks[-1]
            reason = f"the log ends at lsn {next_lsn}, before the snapshot (lsn {snapshot_lsn})"
            problems.append(LogProblem("corrupt-log", last.name, last.scan.valid_bytes, reason))
    return Examination(checks, snapshot_lsn, next_lsn, problems)


def verify_log(disk: Disk) -> VerifyReport:
    """Check every frame and the snapshot without changing anything (``ledgermesh log verify``)."""
    examination = examine(disk)
    checks = examination.segments
    unknown_end = any(problem.kind == "corrupt-log" for problem in examination.problems)
    return VerifyReport(
        segments=len(checks),
        records=sum(check.scan.records for check in checks),
        first_lsn=checks[0].first_lsn if checks else None,
        next_lsn=None if unknown_end else examination.next_lsn,
        snapshot_lsn=examination.snapshot_lsn,
        problems=tuple(examination.problems),
    )


def scan_records(disk: Disk) -> Iterator[RecordLocation]:
    """Every valid record on disk, oldest first, read-only (``ledgermesh log inspect``).

    Stops quietly at a torn tail; raises ``CorruptLogError`` where the log is
    corrupt, after the records before that point.
    """
    names = disk.list()
    segments = sorted(
        (first_lsn, name) for name in names if (first_lsn := segment_first_lsn(name)) is not None
    )
    expected_lsn: int | None = None
    for index, (first_lsn, name) in enumerate(segments):
        if expected_lsn is not None and first_lsn != expected_lsn:
            reason = f"segment starts at lsn {first_lsn}; the one before ends at {expected_lsn}"
            raise CorruptLogError(name, 0, reason)
        data = disk.read(name)
        scan = scan_segment(data, first_lsn)
        end_lsn = first_lsn + scan.records
        for lsn, offset, payload in iterate_frames(data, first_lsn, first_lsn, end_lsn):
            yield RecordLocation(lsn, name, offset, payload)
        if scan.stop_reason is not None and not (index == len(segments) - 1 and scan.torn):
            raise CorruptLogError(name, scan.valid_bytes, scan.stop_reason)
        expected_lsn = end_lsn
