"""Durable storage of the node: the append-only log and its snapshot.

Synchronous code with no knowledge of the protocols; the runtime calls it from
its shell (``sync`` in a worker thread). See ``log`` for the rules and the
on-disk format, ``disk`` for the real and simulated file systems.
"""

from node.storage.disk import (
    AppendFile,
    Disk,
    RealDisk,
    SimulatedCrash,
    SimulatedDisk,
)
from node.storage.log import (
    AppendLog,
    CorruptLogError,
    CorruptSnapshotError,
    LogFailedError,
    LogProblem,
    RecordLocation,
    RecoveryReport,
    VerifyReport,
    scan_records,
    verify_log,
)

__all__ = [
    "AppendFile",
    "AppendLog",
    "CorruptLogError",
    "CorruptSnapshotError",
    "Disk",
    "LogFailedError",
    "LogProblem",
    "RealDisk",
    "RecordLocation",
    "RecoveryReport",
    "SimulatedCrash",
    "SimulatedDisk",
    "VerifyReport",
    "scan_records",
    "verify_log",
]
