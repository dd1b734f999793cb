"""One simulated node: its real engine, its real log on a simulated disk, and its pass state.

Rules:
- A node runs exactly the code a real node runs (``NodeEngine``, ``AppendLog``,
  ``recover_state``); only the disk (``SimulatedDisk``) and the clock (the
  simulator's) differ. The simulator drives it like ``NodeRuntime`` does:
  decide a batch, fsync, then let out what the batch decided.
- ``ObservedLog`` is the real log, remembering the records appended since the
  last sync, so the simulator can tell which records became durable (after a
  sync) or survived a crash (a torn prefix of them may).
- ``sent_lsn`` is how many records the node's state reflected when it last
  let anything out; after a crash the recovered log must hold at least that
  many, or a message left based on state that was lost.
- A crash throws away the engine, the log object and everything in memory;
  only the disk survives, less what a power failure loses. A restart recovers
  from it, as ``ledgermesh run`` does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from node.config import NodeConfig
from node.crypto import NodeKey
from node.engine import Decisions, NodeEngine, recover_state
from node.net.base import PeerStatus, TransportEvent
from node.storage.disk import SimulatedCrash, SimulatedDisk
from node.storage.log import AppendLog
from simulations.limits import SIMULATED_SEGMENT_BYTES_MAX, SNAPSHOT_EVERY_RECORDS_RANGE


class ObservedLog(AppendLog):
    """The real append-only log, remembering what was appended since the last sync."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsynced: list[bytes] = []

    def append(self, payload: bytes) -> int:
        lsn = super().append(payload)
        self.unsynced.append(payload)
        return lsn


class SimNode:
    """A node of the simulated mesh, alive or crashed."""

    def __init__(
        self, index: int, config: NodeConfig, key: NodeKey, peers: list[int], rng: random.Random
    ) -> None:
        self.index = index
        self.name = config.name
        self.config = config
        self.key = key
        self.peers = peers
        self.peer_names = {peer.public_key: peer.name for peer in config.peers}
        self.rng = rng  # this node's own stream: preimages, snapshot cadence, torn writes
        self.disk = SimulatedDisk()
        self.log: ObservedLog | None = None
        self.engine: NodeEngine | None = None
        self.alive = False
        self.life = 0
        self.inbox: list[TransportEvent] = []
        self.pass_scheduled = False
        self.busy = False  # inside an fsync or a snapshot write: the next pass waits
        self.held: Decisions | None = None  # decided, waiting for its fsync
        self.tick_due = False  # the clock ticked since the node's last pass
        self.sent_lsn = 0
        self.snapshot_every_records = 0
        self.armed_crash: str | None = None  # "in-sync" or "in-snapshot"
        self.down_ms: int = 0
        self.passes = 0
        self.syncs = 0
        self.snapshots = 0
        self.torn_bytes = 0  # bytes cut from torn tails at restarts

    # --- life ------------------------------------------------------------------------

    def start(
        self,
        now_ms: int,
        link_statuses: Callable[[], list[PeerStatus]],
        link_clock_s: Callable[[], float],
    ) -> tuple[int, int]:
        """Open the log (cutting a torn tail), rebuild the state, make an engine.

        Returns (records in the recovered log, bytes cut from a torn tail)."""
        log, report = ObservedLog.open(self.disk, segment_bytes_max=SIMULATED_SEGMENT_BYTES_MAX)
        assert isinstance(log, ObservedLog)  # ``open`` builds ``cls``
        state, replayed = recover_state(log, self.config)
        self.log = log
        self.engine = NodeEngine(
            self.config,
            self.key,
            log,
            state,
            started_ms=now_ms,
            link_statuses=link_statuses,
            link_clock_s=link_clock_s,
            random_bytes=self.rng.randbytes,
            recovery={"recovered_records": replayed, "truncated_bytes": report.truncated_bytes},
        )
        self.alive = True
        self.life += 1
        self.inbox = []
        self.pass_scheduled = False
        self.busy = False
        self.held = None
        self.tick_due = False
        self.armed_crash = None
        self.snapshot_every_records = self.rng.randint(*SNAPSHOT_EVERY_RECORDS_RANGE)
        self.torn_bytes += report.truncated_bytes
        return log.next_lsn, report.truncated_bytes

    def crash(self, during: str) -> None:
        """Die now. ``during`` is "sync", "snapshot" or "idle": what the disk was doing."""
        assert self.alive and self.engine is not None
        rng = self.rng
        if during == "sync":
            # Power fails before the write, or between the write and the fsync.
            self.disk.schedule_crash(rng.randint(0, 1))
            self._expect_crash(self.engine.sync)
        elif during == "snapshot":
            # Before the atomic write, or while old segments are being removed.
            self.disk.schedule_crash(rng.randint(0, 2))
            self._expect_crash(self.engine.write_snapshot)
        self.disk.crash(rng, zero_fill_tail=rng.random() < 0.5)
        self.alive = False
        self.engine = None
        self.held = None
        self.inbox = []
        self.pass_scheduled = False
        self.busy = False
        self.armed_crash = None

    @staticmethod
    def _expect_crash(operation: Callable[[], None]) -> None:
        try:
            operation()
        except SimulatedCrash:
            return
        # The scheduled point lay beyond what the operation touched (an empty sync,
        # a snapshot with no segment to remove): the process dies right after it.

    # --- queries -----------------------------------------------------------------------

    def has_work(self) -> bool:
        """Messages awaiting an ACK, or pending proposals: the node is not quiet."""
        assert self.engine is not None
        for ledger in self.engine.state.ledgers.values():
            if ledger.unacked_count() or ledger.pending_count():
                return True
        return False

    def pending(self) -> int:
        if self.engine is None:
            return 0
        return sum(ledger.pending_count() for ledger in self.engine.state.ledgers.values())

    def unacked(self) -> int:
        if self.engine is None:
            return 0
        return sum(ledger.unacked_count() for ledger in self.engine.state.ledgers.values())
