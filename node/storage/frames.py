"""Record frames, segment and snapshot names: encoding and checking.

Rules:
- A frame is a 12-byte header and the payload. The header holds, little
  endian: ``length`` (u32), ``length ^ 0xFFFFFFFF`` (u32, the length's own
  check), and ``crc32c(payload)`` (u32) started from the low 32 bits of the
  record's lsn, so a frame read at the wrong position fails its checksum.
  An all-zero header is never valid.
- Every check made when writing is made again when reading.
- A segment is valid up to the first frame that is not whole and valid. What
  follows is a *torn tail* (what a crash leaves) only if the file ends inside
  that frame, or the frame is bad and nothing but zeros follows it (for a bad
  length, nothing but zeros follows its header). Otherwise it is *corruption*.
  Only the last segment may have a torn tail.
- This module never touches a file and never raises for bad data: it returns
  what it found, and the log decides.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crc32c import crc32c

from node.limits import LOG_RECORD_BYTES_MAX, SNAPSHOT_BYTES_MAX

HEADER = struct.Struct("<III")
HEADER_BYTES = HEADER.size
_U32_MASK = 0xFFFFFFFF
LSN_MAX = 2**64 - 1  # lsns fit in 20 decimal digits, the width of segment names

SEGMENT_PREFIX = "segment-"
SEGMENT_SUFFIX = ".log"
_SEGMENT_NAME = re.compile(r"segment-(\d{20})\.log")
SNAPSHOT_NAME = "snapshot.bin"

# snapshot.bin: magic, lsn (u64), state length (u64), state, crc32c of all before (u32)
_SNAPSHOT_MAGIC = b"LMSNAP01"
_SNAPSHOT_HEADER = struct.Struct("<8sQQ")
_SNAPSHOT_CRC = struct.Struct("<I")


def segment_name(first_lsn: int) -> str:
    """The name of the segment whose first record has ``first_lsn``; names sort by it."""
    assert 0 <= first_lsn <= LSN_MAX, first_lsn
    return f"{SEGMENT_PREFIX}{first_lsn:020d}{SEGMENT_SUFFIX}"


def segment_first_lsn(name: str) -> int | None:
    """The first lsn encoded in a segment name, or None if ``name`` is not a segment."""
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def encode_frame(lsn: int, payload: bytes) -> bytes:
    """The header of the frame of ``payload`` at ``lsn`` (the payload follows it)."""
    length = len(payload)
    assert length <= LOG_RECORD_BYTES_MAX, length
    return HEADER.pack(length, length ^ _U32_MASK, crc32c(payload, lsn & _U32_MASK))


@dataclass(frozen=True)
class SegmentScan:
    """How far a segment holds whole, valid frames, and what stopped the scan."""

    records: int  # whole, valid frames from offset 0
    valid_bytes: int  # offset just past the last valid frame
    stop_reason: str | None  # why the frame at valid_bytes is bad; None if the file ends there
    torn: bool  # the bad part can be what a crash leaves (meaningful if stop_reason)


def scan_segment(data: bytes, first_lsn: int) -> SegmentScan:
    """Check every frame of a segment from the start; stop at the first bad one."""
    view = memoryview(data)
    size = len(data)
    offset = 0
    lsn = first_lsn
    unpack = HEADER.unpack_from
    # One tight loop: the cost of a restart is this loop times the records.
    while size - offset >= HEADER_BYTES:
        length, length_check, payload_crc = unpack(data, offset)
        if length ^ length_check != _U32_MASK or length > LOG_RECORD_BYTES_MAX:
            break
        end = offset + HEADER_BYTES + length
        if end > size or crc32c(view[offset + HEADER_BYTES : end], lsn & _U32_MASK) != payload_crc:
            break
        offset = end
        lsn += 1
    records = lsn - first_lsn
    if offset == size:
        return SegmentScan(records, offset, None, torn=False)
    reason, torn = classify_bad_frame(data, offset, lsn)
    return SegmentScan(records, offset, reason, torn)


def classify_bad_frame(data: bytes, offset: int, lsn: int) -> tuple[str, bool]:
    """Why the frame at ``offset`` is bad, and whether a crash can explain it."""
    size = len(data)
    if size - offset < HEADER_BYTES:
        return "file ends inside a frame header", True
    length, length_check, payload_crc = HEADER.unpack_from(data, offset)
    if length ^ length_check != _U32_MASK:
        return "length check failed", _zeros_from(data, offset + HEADER_BYTES)
    if length > LOG_RECORD_BYTES_MAX:
        return f"length {length} above LOG_RECORD_BYTES_MAX", _zeros_from(
            data, offset + HEADER_BYTES
        )
    end = offset + HEADER_BYTES + length
    if end > size:
        return "file ends inside a frame", True
    if crc32c(memoryview(data)[offset + HEADER_BYTES : end], lsn & _U32_MASK) != payload_crc:
        return f"checksum failed for lsn {lsn}", _zeros_from(data, end)
    raise AssertionError(f"frame at {offset} is valid")


def _zeros_from(data: bytes, offset: int) -> bool:
    return data.count(0, offset) == len(data) - offset


def iterate_frames(
    data: bytes, first_lsn: int, from_lsn: int, end_lsn: int
) -> Iterator[tuple[int, int, bytes]]:
    """(lsn, offset, payload) of the valid frames with from_lsn <= lsn < end_lsn.

    Stops early at the first bad frame; the caller compares the last lsn it got
    with what it expected.
    """
    view = memoryview(data)
    size = len(data)
    offset = 0
    lsn = first_lsn
    unpack = HEADER.unpack_from
    while lsn < from_lsn and size - offset >= HEADER_BYTES:
        # Records before from_lsn were checked when the log was opened; walk over them.
        offset += HEADER_BYTES + unpack(data, offset)[0]
        lsn += 1
    while lsn < end_lsn and size - offset >= HEADER_BYTES:
        length, length_check, payload_crc = unpack(data, offset)
        if length ^ length_check != _U32_MASK or length > LOG_RECORD_BYTES_MAX:
            return
        start = offset + HEADER_BYTES
        end = start + length
        if end > size or crc32c(view[start:end], lsn & _U32_MASK) != payload_crc:
            return
        yield lsn, offset, data[start:end]
        offset = end
        lsn += 1


# --- snapshots ---------------------------------------------------------------


def encode_snapshot(lsn: int, state: bytes) -> bytes:
    """The bytes of snapshot.bin for ``state``, which covers the records < ``lsn``."""
    assert 0 <= lsn <= LSN_MAX, lsn
    assert len(state) <= SNAPSHOT_BYTES_MAX, len(state)
    header = _SNAPSHOT_HEADER.pack(_SNAPSHOT_MAGIC, lsn, len(state))
    checksum = crc32c(state, crc32c(header))
    return b"".join((header, state, _SNAPSHOT_CRC.pack(checksum)))


def decode_snapshot(data: bytes) -> tuple[int, bytes] | str:
    """(lsn, state) from the bytes of snapshot.bin, or the reason they are invalid."""
    overhead = _SNAPSHOT_HEADER.size + _SNAPSHOT_CRC.size
    if len(data) < overhead:
        return f"{len(data)} bytes, shorter than a snapshot header"
    magic, lsn, state_bytes = _SNAPSHOT_HEADER.unpack_from(data, 0)
    if magic != _SNAPSHOT_MAGIC:
        return f"bad magic {magic!r}"
    if state_bytes > SNAPSHOT_BYTES_MAX or len(data) != overhead + state_bytes:
        return f"state length {state_bytes} does not match the file size {len(data)}"
    view = memoryview(data)
    state_end = _SNAPSHOT_HEADER.size + state_bytes
    checksum = crc32c(
        view[_SNAPSHOT_HEADER.size : state_end], crc32c(view[: _SNAPSHOT_HEADER.size])
    )
    (expected,) = _SNAPSHOT_CRC.unpack_from(data, state_end)
    if checksum != expected:
        return "checksum failed"
    return lsn, data[_SNAPSHOT_HEADER.size : state_end]
