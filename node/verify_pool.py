"""Checking many signatures at once on every core (the shell's side).

ed25519 verification in libsodium runs without Python's global lock, so a
batch of signatures is split between the calling thread and a few worker
threads: on this 2-core machine a batch takes about half the time. The
objects remember their outcome (``SignedInstruction.verifies``), so the core
that asks next gets the answer without checking again. Small batches are
checked inline: handing work to a thread costs more than one verification.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from node.limits import VERIFY_POOL_BATCH_MIN, VERIFY_POOL_THREADS_MAX


class Verifiable(Protocol):
    def verifies(self) -> bool: ...


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # -1: no quota
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def usable_cpus() -> int:
    """Whole CPUs this process may use: its affinity (taskset, a container's
    cpuset), capped by a CPU quota (``docker --cpus``, a Kubernetes limit),
    not the machine's count."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this platform
        cpus = os.cpu_count() or 1
    quota = _cpu_quota()
    return cpus if quota is None else max(1, min(cpus, int(quota)))


def _cpu_quota() -> float | None:
    """The cgroup's CPU quota in CPUs, if one is set and readable."""
    try:
        if CGROUP_CPU_MAX.exists():
            quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int(CGROUP_V1_QUOTA.read_text())
        return None if quota_us <= 0 else quota_us / int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None


_pool: ThreadPoolExecutor | None = None
_threads = min(VERIFY_POOL_THREADS_MAX, max(1, usable_cpus() - 1))


def _check(items: Sequence[Verifiable]) -> None:
    for item in items:
        item.verifies()


def verify_all(items: Sequence[Verifiable]) -> None:
    """Check every item's signature now (the outcome is kept on each item)."""
    if len(items) < VERIFY_POOL_BATCH_MIN or _threads == 0:
        _check(items)
        return
    share = len(items) // (_threads + 1)
    futures = [
        _the_pool().submit(_check, items[index * share : (index + 1) * share])
        for index in range(_threads)
    ]
    _check(items[_threads * share :])
    for future in futures:
        future.result()


def _the_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads, thread_name_prefix="verify")
    return _pool
