"""A directory of files, real or simulated, as the log sees it.

Rules:
- The log touches files only through ``Disk`` and ``AppendFile``, so the same
  code runs on real files and on ``SimulatedDisk`` in seeded crash simulations.
- Durability is explicit. ``AppendFile.write`` is buffered and promises
  nothing; ``AppendFile.sync`` makes every byte written so far durable.
  ``truncate``, ``write_atomic``, ``remove`` and the creation of a file by
  ``open_append`` are durable when they return (``RealDisk`` fsyncs the file and
  the directory).
- ``write_atomic`` leaves either the old file or the new one, never a mix: it
  writes a temporary file, fsyncs it, renames it over the target and fsyncs the
  directory.
- ``SimulatedDisk`` models the fsync boundary: ``crash(rng)`` keeps every synced
  byte and a random prefix of the unsynced ones, deterministically for a given
  ``rng``. ``schedule_crash`` stops the "process" in the middle of a later
  operation, to crash inside a sync or a snapshot write.
- Operating failures (disk full, fsync error) surface as ``OSError`` from
  ``RealDisk``; nothing here swallows them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

TEMPORARY_SUFFIX = ".tmp"  # write_atomic's temporary files; never a log or snapshot name


class AppendFile(Protocol):
    """One file open for appending."""

    def write(self, data: bytes) -> None:
        """Append ``data``; buffered, not durable."""

    def sync(self) -> None:
        """Make everything written so far durable (flush + fsync)."""

    def size(self) -> int:
        """Bytes in the file, synced or not."""

    def close(self) -> None:
        """Close without syncing."""


class Disk(Protocol):
    """A flat directory of files; the log only touches files through this."""

    def list(self) -> list[str]:
        """Names of the files in the directory, sorted."""

    def read(self, name: str) -> bytes:
        """The whole file."""

    def open_append(self, name: str) -> AppendFile:
        """Open ``name`` for appending, creating it (durably) if missing."""

    def truncate(self, name: str, size: int) -> None:
        """Cut ``name`` to ``size`` bytes, durably."""

    def write_atomic(self, name: str, data: bytes) -> None:
        """Replace ``name`` by ``data`` all at once, durably."""

    def remove(self, name: str) -> None:
        """Remove ``name``, durably."""


def _assert_plain_name(name: str) -> None:
    # Names come from the log, never from outside; a path here is a bug.
    assert name and "/" not in name and name not in (".", ".."), name


# --- real files --------------------------------------------------------------


class RealAppendFile:
    """A real file open for appending; ``sync`` is flush + ``os.fsync``."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._size = size

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._size += len(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()


class RealDisk:
    """Real files in ``path``, with real fsyncs of files and of the directory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.mkdir(parents=True, exist_ok=True)

    def list(self) -> list[str]:
        return sorted(entry.name for entry in os.scandir(self._path) if entry.is_file())

    def read(self, name: str) -> bytes:
        _assert_plain_name(name)
        return (self._path / name).read_bytes()

    def open_append(self, name: str) -> RealAppendFile:
        _assert_plain_name(name)
        path = self._path / name
        existed = path.exists()
        file = path.open("ab")
        if not existed:
            # A new file is only durable once its directory entry is.
            self._sync_directory()
        return RealAppendFile(file, file.tell())

    def truncate(self, name: str, size: int) -> None:
        _assert_plain_name(name)
        assert size >= 0, size
        descriptor = os.open(self._path / name, os.O_RDWR)
        try:
            os.ftruncate(descriptor, size)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def write_atomic(self, name: str, data: bytes) -> None:
        _assert_plain_name(name)
        temporary = self._path / (name + TEMPORARY_SUFFIX)
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._path / name)
        self._sync_directory()

    def remove(self, name: str) -> None:
        _assert_plain_name(name)
        os.remove(self._path / name)
        self._sync_directory()

    def _sync_directory(self) -> None:
        descriptor = os.open(self._path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# --- simulated files ---------------------------------------------------------


class SimulatedCrash(Exception):
    """Raised by a ``SimulatedDisk`` operation when a scheduled crash point is reached.

    The operation did not complete, and every later operation raises this too,
    as if the process had died, until ``crash(rng)`` is called.
    """


@dataclass
class _SimulatedFile:
    data: bytearray
    synced_bytes: int  # the durable prefix of data


class SimulatedAppendFile:
    """A simulated file open for appending; belongs to one life of the disk."""

    def __init__(self, disk: SimulatedDisk, name: str, life: int) -> None:
        self._disk = disk
        self._name = name
        self._life = life

    def write(self, data: bytes) -> None:
        self._disk._append(self._name, self._life, data)

    def sync(self) -> None:
        self._disk._sync(self._name, self._life)

    def size(self) -> int:
        return len(self._disk._file(self._name, self._life).data)

    def close(self) -> None:
        pass


class SimulatedDisk:
    """In-memory files that model the fsync boundary, for crash simulations.

    Creating, truncating, removing and atomically replacing a file are durable
    at once (``RealDisk`` fsyncs the directory); appended bytes are durable
    after ``AppendFile.sync``.
    """

    def __init__(self) -> None:
        self._files: dict[str, _SimulatedFile] = {}
        self._incomplete_atomic_writes: set[str] = set()  # temporary names
        self._operations_before_crash: int | None = None
        self._dead = False
        self._life = 0  # bumped by crash(); handles from an earlier life are stale

    # --- fault injection ---

    def schedule_crash(self, after_operations: int) -> None:
        """Let ``after_operations`` more changes through, then fail the next one.

        Changes are: file writes, syncs, creations, truncations, atomic writes
        and removals. The failing operation raises ``SimulatedCrash`` without
        taking effect, except ``write_atomic``, which leaves its temporary file.
        """
        assert after_operations >= 0, after_operations
        self._operations_before_crash = after_operations

    def crash(self, rng: random.Random, *, zero_fill_tail: bool = False) -> None:
        """Lose what a power failure may lose; afterwards the disk can be reopened.

        Every file keeps its synced bytes and a random prefix of its unsynced
        ones (a torn write). With ``zero_fill_tail``, a random suffix of that
        kept prefix reads as zeros, as ext4 can leave it. Temporary files of
        atomic writes that did not complete vanish.
        """
        for name in sorted(self._incomplete_atomic_writes):
            self._files.pop(name, None)
        self._incomplete_atomic_writes.clear()
        for name in sorted(self._files):
            file = self._files[name]
            kept_bytes = file.synced_bytes + rng.randint(0, len(file.data) - file.synced_bytes)
            del file.data[kept_bytes:]
            if zero_fill_tail and kept_bytes > file.synced_bytes:
                zeros_from = rng.randint(file.synced_bytes, kept_bytes)
                file.data[zeros_from:] = bytes(kept_bytes - zeros_from)
            file.synced_bytes = kept_bytes
        self._operations_before_crash = None
        self._dead = False
        self._life += 1

    def corrupt(self, name: str, offset: int, xor: int = 0xFF) -> None:
        """Flip bits of one byte, as bit rot would (durable; for tests)."""
        assert 0 < xor <= 0xFF, xor
        self._files[name].data[offset] ^= xor

    def synced_bytes(self, name: str) -> int:
        """The durable prefix of ``name`` (for tests)."""
        return self._files[name].synced_bytes

    def contents(self) -> dict[str, bytes]:
        """Every file, synced bytes or not (for tests; works after a scheduled crash)."""
        return {name: bytes(file.data) for name, file in sorted(self._files.items())}

    # --- Disk ---

    def list(self) -> list[str]:
        self._check_alive()
        return sorted(self._files)

    def read(self, name: str) -> bytes:
        self._check_alive()
        if name not in self._files:
            raise FileNotFoundError(name)
        return bytes(self._files[name].data)

    def open_append(self, name: str) -> SimulatedAppendFile:
        _assert_plain_name(name)
        if name not in self._files:
            self._count_change()
            self._files[name] = _SimulatedFile(bytearray(), 0)
        self._check_alive()
        return SimulatedAppendFile(self, name, self._life)

    def truncate(self, name: str, size: int) -> None:
        self._count_change()
        file = self._files[name]
        assert 0 <= size <= len(file.data), (name, size)
        del file.data[size:]
        file.synced_bytes = size

    def write_atomic(self, name: str, data: bytes) -> None:
        _assert_plain_name(name)
        temporary = name + TEMPORARY_SUFFIX
        if self._crash_is_due():
            self._files[temporary] = _SimulatedFile(bytearray(data), 0)
            self._incomplete_atomic_writes.add(temporary)
            self._die()
        self._count_change()
        self._files.pop(temporary, None)
        self._files[name] = _SimulatedFile(bytearray(data), len(data))

    def remove(self, name: str) -> None:
        self._count_change()
        if name not in self._files:
            raise FileNotFoundError(name)
        del self._files[name]

    # --- for SimulatedAppendFile ---

    def _file(self, name: str, life: int) -> _SimulatedFile:
        self._check_alive()
        assert life == self._life, f"{name}: file handle used after a crash"
        return self._files[name]

    def _append(self, name: str, life: int, data: bytes) -> None:
        self._count_change()
        self._file(name, life).data += data

    def _sync(self, name: str, life: int) -> None:
        self._count_change()
        file = self._file(name, life)
        file.synced_bytes = len(file.data)

    # --- crash points ---

    def _check_alive(self) -> None:
        if self._dead:
            raise SimulatedCrash("the simulated process has crashed; call crash(rng)")

    def _crash_is_due(self) -> bool:
        self._check_alive()
        return self._operations_before_crash == 0

    def _die(self) -> None:
        self._dead = True
        raise SimulatedCrash("scheduled crash point reached")

    def _count_change(self) -> None:
        if self._crash_is_due():
            self._die()
        if self._operations_before_crash is not None:
            self._operations_before_crash -= 1
