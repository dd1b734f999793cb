"""Read-only views of a node's log, for ``ledgermesh log inspect`` and ``log verify``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.config import LOG_DIRECTORY, load_config
from node.engine import identity_of
from node.state import NodeState, log_record_to_json
from node.storage.disk import RealDisk
from node.storage.frames import SNAPSHOT_NAME, decode_snapshot
from node.storage.log import CorruptLogError, scan_records, verify_log
from node.wire import DecodeError

PROGRESS_EVERY_RECORDS = 50_000


def _disk(log_directory: Path) -> RealDisk:
    if not log_directory.is_dir():
        raise FileNotFoundError(f"no log directory at {log_directory}")
    return RealDisk(log_directory)


def inspect_log(log_directory: Path) -> Iterator[dict[str, Any]]:
    """Every record as a JSON-ready map, with its lsn, file and offset."""
    for location in scan_records(_disk(log_directory)):
        try:
            rendered = log_record_to_json(location.payload)
        except DecodeError as error:
            rendered = {"type": "undecodable", "reason": str(error)}
        yield {"lsn": location.lsn, "file": location.file, "offset": location.offset, **rendered}


def verify_log_directory(directory: Path, *, progress: bool = False) -> dict[str, Any]:
    """Check every frame's checksum, every record's decoding and the snapshot."""
    identity = identity_of(load_config(directory))
    disk = _disk(directory / LOG_DIRECTORY)
    report = verify_log(disk)
    problems = [
        f"{problem.kind} in {problem.file} at offset {problem.offset}: {problem.reason}"
        for problem in report.problems
    ]
    show = progress and sys.stderr.isatty()
    decoded = 0
    try:
        for location in scan_records(disk):
            try:
                log_record_to_json(location.payload)
            except DecodeError as error:
                problems.append(
                    f"undecodable record {location.lsn} in {location.file} "
                    f"at offset {location.offset}: {error}"
                )
            decoded += 1
            if show and decoded % PROGRESS_EVERY_RECORDS == 0:
                print(f"\rverified {decoded:,} records", end="", file=sys.stderr, flush=True)
    except CorruptLogError:
        pass  # already reported by verify_log, with its offset
    if show:
        print("\r", end="", file=sys.stderr)
    snapshot_state = "none"
    if report.snapshot_lsn is not None:
        snapshot_state = "ok"
        decoded_snapshot = decode_snapshot(disk.read(SNAPSHOT_NAME))
        try:
            if isinstance(decoded_snapshot, str):
                raise DecodeError("bad-snapshot", decoded_snapshot)
            NodeState.from_snapshot(decoded_snapshot[1], {}, identity)
        except DecodeError as error:
            snapshot_state = "bad"
            problems.append(f"snapshot: {error}")
    fatal = any(problem.fatal for problem in report.problems) or len(problems) > len(
        report.problems
    )
    return {
        "ok": not fatal,
        "segments": report.segments,
        "records": report.records,
        "first_lsn": report.first_lsn,
        "next_lsn": report.next_lsn,
        "snapshot_lsn": report.snapshot_lsn,
        "snapshot": snapshot_state,
        "problems": problems,
    }
