"""The append-only log: the node's truth is its snapshot plus the records after it.

Rules:
- Records get lsns 0, 1, 2, ... for the whole life of the node; an lsn is never
  reused. ``append`` only buffers; ``sync`` writes everything appended since the
  last sync with one write and one fsync (group commit). Records below
  ``durable_lsn`` survive any crash; the others may vanish, never turn corrupt.
- On disk (see ``frames``): segment files ``segment-<first lsn, 20 digits>.log``
  hold frames back to back; each frame is a 12-byte header (u32 length, u32
  length ^ 0xFFFFFFFF, u32 crc32c of the payload started from the lsn) and the
  payload. A segment is closed once the next frame would take it past
  ``segment_bytes_max``; the next segment is created only after the previous
  one is durable, so only the last segment can have a torn tail.
- ``snapshot.bin`` (magic, u64 lsn, u64 length, state, u32 crc32c) holds the
  state that covers the records below its lsn; it is replaced atomically, then
  the segments wholly below it are removed, oldest first, so the log never has
  a hole.
- Recovery (``AppendLog.open``) checks every frame. A torn tail -- the last
  segment ends inside a frame, or its first bad frame is followed by nothing but
  zeros -- is what a crash leaves: it is cut durably and reported. Anything else
  is corruption: ``CorruptLogError`` names the file and byte offset, and the node
  stops rather than guess. Segments must be contiguous in lsn and reach the
  snapshot.
- Programmer errors are assertions. An fsync that fails leaves the durable state
  unknown, so the log refuses all further syncs (``LogFailedError``); the node
  restarts and recovers.
- One caller at a time: the runtime may call ``sync`` from a worker thread, but
  never while another method runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from node.limits import LOG_RECORD_BYTES_MAX, LOG_SEGMENT_BYTES_MAX, LOG_UNSYNCED_BYTES_MAX
from node.storage.check import (
    CorruptLogError,
    CorruptSnapshotError,
    LogProblem,
    RecordLocation,
    VerifyReport,
    examine,
    scan_records,
    verify_log,
)
from node.storage.disk import AppendFile, Disk
from node.storage.frames import (
    HEADER_BYTES,
    SNAPSHOT_NAME,
    decode_snapshot,
    encode_frame,
    encode_snapshot,
    iterate_frames,
    scan_segment,
    segment_name,
)

__all__ = [
    "AppendLog",
    "CorruptLogError",
    "CorruptSnapshotError",
    "LogFailedError",
    "LogProblem",
    "RecordLocation",
    "RecoveryReport",
    "VerifyReport",
    "scan_records",
    "verify_log",
]


class LogFailedError(Exception):
    """Raised by ``sync`` and ``write_snapshot`` after an earlier sync failed.

    The durable state is then unknown; the node must restart and recover.
    """


@dataclass(frozen=True)
class RecoveryReport:
    """What ``AppendLog.open`` found and cut."""

    records: int  # records on disk after recovery (from the oldest segment)
    truncated_file: str | None  # the segment whose torn tail was cut
    truncated_from_offset: int | None
    truncated_bytes: int
    snapshot_lsn: int | None


class _Segment(NamedTuple):
    name: str
    first_lsn: int


class AppendLog:
    """The log of one node. Build it with ``AppendLog.open``."""

    def __init__(
        self,
        disk: Disk,
        segments: list[_Segment],
        current: AppendFile,
        next_lsn: int,
        snapshot_lsn: int | None,
        segment_bytes_max: int,
    ) -> None:
        assert segments
        self._disk = disk
        self._segments = segments  # oldest first; the last one is open in _current
        self._current = current
        self._current_bytes = current.size()
        self._segment_bytes_max = segment_bytes_max
        self._next_lsn = next_lsn
        self._durable_lsn = next_lsn
        self._snapshot_lsn = snapshot_lsn
        self._pending: list[bytes] = []  # header, payload, header, payload...
        self._pending_bytes = 0
        self._failed = False
        self._closed = False

    @classmethod
    def open(
        cls, disk: Disk, *, segment_bytes_max: int = LOG_SEGMENT_BYTES_MAX
    ) -> tuple[AppendLog, RecoveryReport]:
        """Check the whole log, cut a torn tail durably, and open it for appending.

        Raises ``CorruptLogError`` or ``CorruptSnapshotError`` without changing
        anything if the log is corrupt.
        """
        assert segment_bytes_max > HEADER_BYTES, segment_bytes_max
        examination = examine(disk)
        for problem in examination.problems:
            if problem.kind == "corrupt-snapshot":
                raise CorruptSnapshotError(problem.file, problem.reason)
            if problem.kind == "corrupt-log":
                raise CorruptLogError(problem.file, problem.offset, problem.reason)
        snapshot_lsn = examination.snapshot_lsn
        checks = examination.segments
        truncated_file: str | None = None
        truncated_from_offset: int | None = None
        truncated_bytes = 0
        if checks and checks[-1].scan.stop_reason is not None:
            last = checks[-1]
            truncated_file, truncated_from_offset = last.name, last.scan.valid_bytes
            truncated_bytes = last.file_bytes - last.scan.valid_bytes
            disk.truncate(last.name, last.scan.valid_bytes)
        segments = [_Segment(check.name, check.first_lsn) for check in checks]
        if not segments:
            assert snapshot_lsn is None  # _examine reports the missing segments
            segments.append(_Segment(segment_name(0), 0))
        next_lsn = examination.next_lsn
        current = disk.open_append(segments[-1].name)
        assert current.size() == (checks[-1].scan.valid_bytes if checks else 0)
        log = cls(disk, segments, current, next_lsn, snapshot_lsn, segment_bytes_max)
        report = RecoveryReport(
            records=sum(check.scan.records for check in checks),
            truncated_file=truncated_file,
            truncated_from_offset=truncated_from_offset,
            truncated_bytes=truncated_bytes,
            snapshot_lsn=snapshot_lsn,
        )
        return log, report

    @property
    def next_lsn(self) -> int:
        """The lsn the next ``append`` returns."""
        return self._next_lsn

    @property
    def durable_lsn(self) -> int:
        """Records with an lsn below this are durable."""
        return self._durable_lsn

    def append(self, payload: bytes) -> int:
        """Buffer one record and return its lsn; it is durable after the next ``sync``.

        The log keeps a reference to ``payload`` until then.
        """
        length = len(payload)
        assert length <= LOG_RECORD_BYTES_MAX, length
        assert self._pending_bytes <= LOG_UNSYNCED_BYTES_MAX, "sync more often"
        lsn = self._next_lsn
        self._pending.append(encode_frame(lsn, payload))
        self._pending.append(payload)
        self._pending_bytes += HEADER_BYTES + length
        self._next_lsn = lsn + 1
        return lsn

    def sync(self) -> None:
        """Make every appended record durable: one write and one fsync per segment touched."""
        assert not self._closed
        if self._failed:
            raise LogFailedError("an earlier sync failed; restart and recover")
        if not self._pending:
            return
        try:
            if self._current_bytes + self._pending_bytes <= self._segment_bytes_max:
                self._write_durably(self._pending, self._pending_bytes)
            else:
                self._sync_across_segments()
        except BaseException:
            # After a failed write or fsync the kernel may have dropped our pages:
            # nothing tells what reached the disk, so never claim durability again.
            self._failed = True
            raise
        self._durable_lsn = self._next_lsn
        self._pending = []
        self._pending_bytes = 0

    def _write_durably(self, parts: list[bytes], size: int) -> None:
        if parts:
            self._current.write(b"".join(parts))
            self._current.sync()
            self._current_bytes += size

    def _sync_across_segments(self) -> None:
        pending = self._pending
        chunk: list[bytes] = []
        chunk_bytes = 0
        lsn = self._durable_lsn
        for index in range(0, len(pending), 2):
            frame_bytes = len(pending[index]) + len(pending[index + 1])
            segment_bytes = self._current_bytes + chunk_bytes
            if segment_bytes + frame_bytes > self._segment_bytes_max and segment_bytes > 0:
                self._write_durably(chunk, chunk_bytes)
                self._durable_lsn = lsn
                # Only now, with the full segment durable, may the next one exist:
                # recovery treats a torn tail in any segment but the last as corruption.
                self._start_segment(lsn)
                chunk, chunk_bytes = [], 0
            chunk += (pending[index], pending[index + 1])
            chunk_bytes += frame_bytes
            lsn += 1
        self._write_durably(chunk, chunk_bytes)

    def _start_segment(self, first_lsn: int) -> None:
        self._current.close()
        segment = _Segment(segment_name(first_lsn), first_lsn)
        self._current = self._disk.open_append(segment.name)
        assert self._current.size() == 0, segment.name
        self._current_bytes = 0
        self._segments.append(segment)

    def records(self, from_lsn: int = 0) -> Iterator[tuple[int, bytes]]:
        """The durable records with lsn >= ``from_lsn``, in order, read from disk.

        Raises ``CorruptLogError`` if a segment changed since the log was opened.
        """
        assert not self._closed
        assert self._segments[0].first_lsn <= from_lsn <= self._durable_lsn, (
            f"records from {from_lsn}: the log holds {self._segments[0].first_lsn}"
            f"..{self._durable_lsn}"
        )
        return self._read_records(list(self._segments), from_lsn, self._durable_lsn)

    def _read_records(
        self, segments: list[_Segment], from_lsn: int, end_lsn: int
    ) -> Iterator[tuple[int, bytes]]:
        for index, segment in enumerate(segments):
            segment_end_lsn = (
                segments[index + 1].first_lsn if index + 1 < len(segments) else end_lsn
            )
            if segment_end_lsn <= from_lsn:
                continue
            data = self._disk.read(segment.name)
            lsn = max(from_lsn, segment.first_lsn) - 1
            for lsn, _offset, payload in iterate_frames(
                data, segment.first_lsn, from_lsn, segment_end_lsn
            ):
                yield lsn, payload
            if lsn + 1 < segment_end_lsn:
                # Checked when the log was opened: the file changed under us.
                scan = scan_segment(data, segment.first_lsn)
                raise CorruptLogError(
                    segment.name,
                    scan.valid_bytes,
                    f"{scan.stop_reason or 'file ends'}: changed since the log was opened",
                )

    def write_snapshot(self, lsn: int, state: bytes) -> None:
        """Store ``state``, covering the records below ``lsn``; drop the segments it covers.

        The snapshot replaces the previous one atomically; a crash leaves one or
        the other.
        """
        assert not self._closed
        assert lsn <= self._durable_lsn, "a snapshot may only cover durable records"
        assert self._snapshot_lsn is None or lsn >= self._snapshot_lsn, (lsn, self._snapshot_lsn)
        if self._failed:
            raise LogFailedError("an earlier sync failed; restart and recover")
        self._disk.write_atomic(SNAPSHOT_NAME, encode_snapshot(lsn, state))
        self._snapshot_lsn = lsn
        # Oldest first, so a crash in between leaves a contiguous log; never the
        # segment open for appending.
        while len(self._segments) > 1 and self._segments[1].first_lsn <= lsn:
            self._disk.remove(self._segments[0].name)
            del self._segments[0]

    def load_snapshot(self) -> tuple[int, bytes] | None:
        """The snapshot as (lsn, state), its checksum verified; None if there is none.

        Raises ``CorruptSnapshotError`` if it does not verify.
        """
        if SNAPSHOT_NAME not in self._disk.list():
            return None
        decoded = decode_snapshot(self._disk.read(SNAPSHOT_NAME))
        if isinstance(decoded, str):
            raise CorruptSnapshotError(SNAPSHOT_NAME, decoded)
        return decoded

    def close(self) -> None:
        """Close the segment file. Records appended since the last sync are dropped."""
        if not self._closed:
            self._closed = True
            self._pending = []
            self._current.close()
