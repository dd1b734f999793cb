"""The shell under trio: the node's engine, its log, its QUIC endpoint and the clock.

Rules:
- ``NodeRuntime`` loops: take every input ready now (up to
  INPUTS_PER_PASS_MAX), let the engine decide, fsync once (group commit), then
  send what the pass decided and flush it onto the network. Nothing leaves the
  node before the record that causes it is durable.
- The pass's fsync runs in the loop's own thread, blocking it. A worker thread
  let the transport read datagrams meanwhile, but handing the fsync over and
  back woke two threads, and on a busy machine each wake-up cost more than the
  fsync (measured 0.2-0.5 ms each way against a 0.3-0.4 ms fsync, on the
  critical path of every message). What arrives during the fsync waits in the
  socket's buffer (UDP_SOCKET_BUFFER_BYTES) and is read right after; QUIC's
  timers fire that much late. Snapshots, long writes, still go to a thread.
- A pass that lets nothing out skips its fsync: the next pass that sends or
  answers syncs every earlier record first, and the loop wakes to sync by
  SYNC_DEFER_MS_MAX (on trio's monotonic clock) after the first unsynced pass,
  plus at most one pass.
- A pass takes at most PEER_INPUTS_PER_PASS_MAX inputs from peers; the rest
  wait for the next pass. An answer leaves only once its whole pass is decided
  and synced, so under gossip load a short pass is what keeps the operator's
  and customers' requests answered promptly; the QUIC transport takes senders
  in turns, so a request is in the next pass. Requests themselves are not
  limited below INPUTS_PER_PASS_MAX: a pass of many requests shares one fsync.
- All decisions live in ``node.engine``; this module only moves bytes between
  the engine, the disk and the network, and owns the process: the directory
  lock, signals, startup checks.
- A failing disk stops the node: it cannot keep its promises without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from node.check_ahead import CheckAhead, open_check_ahead
from node.config import KEY_FILE, LOCK_FILE, LOG_DIRECTORY, load_config
from node.crypto import load_key_file
from node.engine import NodeEngine, recover_state
from node.limits import (
    GC_YOUNG_THRESHOLD,
    INPUTS_PER_PASS_MAX,
    PEER_INPUTS_PER_PASS_MAX,
    SYNC_DEFER_MS_MAX,
    TICK_INTERVAL_MS,
)
from node.net.base import Transport, TransportEvent
from node.net.quic import open_quic_endpoint
from node.nurseries import collapse_single_exception_group
from node.storage.disk import RealDisk
from node.storage.log import AppendLog, RecoveryReport

log = structlog.get_logger()


class StartupError(Exception):
    """Raised when a node cannot start: its key does not match its config, and the like."""


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class NodeRuntime:
    """Drives a NodeEngine under trio: events from the transport, fsync, then send."""

    def __init__(
        self,
        engine: NodeEngine,
        transport: Transport,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        disk_io_in_thread: bool = True,
    ) -> None:
        """``disk_io_in_thread``: write snapshots in a worker thread so the node keeps
        receiving; off for a simulated disk under a mock clock, where a thread would
        let the clock jump while the write runs. A pass's fsync is always inline."""
        self.engine = engine
        self.transport = transport
        self.clock_ms = clock_ms
        self.disk_io_in_thread = disk_io_in_thread

    async def _disk_io(self, operation: Callable[[], None]) -> None:
        if self.disk_io_in_thread:
            await trio.to_thread.run_sync(operation)
        else:
            operation()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Decide in passes: every input ready now, one fsync, then what the pass let out."""
        task_status.started()
        next_tick_ms = self.clock_ms() + TICK_INTERVAL_MS
        sync_by_s: float | None = None  # when the first unsynced pass's records must sync
        while True:
            batch: list[TransportEvent] = []
            wake_s = trio.current_time() + max(0, next_tick_ms - self.clock_ms()) / 1000
            if sync_by_s is not None:  # an absolute deadline on the monotonic clock
                wake_s = min(wake_s, sync_by_s)
            with trio.move_on_at(wake_s):
                batch.append(await self.transport.events.receive())
            peer_inputs = sum(map(self._from_peer, batch))
            while len(batch) < INPUTS_PER_PASS_MAX and peer_inputs < PEER_INPUTS_PER_PASS_MAX:
                try:
                    event = self.transport.events.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(event)
                peer_inputs += self._from_peer(event)
            now_ms = self.clock_ms()
            tick = now_ms >= next_tick_ms
            if tick:
                next_tick_ms = now_ms + TICK_INTERVAL_MS
            decisions = self.engine.decide(batch, now_ms, tick=tick)
            leaving = bool(decisions.replies) or any(decisions.outbox.values())
            if self.engine.sync_due and sync_by_s is None:
                sync_by_s = trio.current_time() + SYNC_DEFER_MS_MAX / 1000
            # A pass that lets nothing out need not wait for its fsync: the next pass
            # that does (or SYNC_DEFER_MS_MAX later) makes its records durable first.
            # A crash meanwhile loses only decisions nobody outside has seen. The wait
            # above ends at the deadline itself (move_on_at), so a pass it wakes is
            # always overdue: the loop never turns without waiting.
            overdue = sync_by_s is not None and (
                trio.current_time() >= sync_by_s or self.engine.snapshot_due()
            )
            if self.engine.sync_due and (leaving or overdue):
                self.engine.sync()  # inline: see the module's rules
            if not self.engine.sync_due:
                sync_by_s = None
            if leaving:
                for key, payload in self.engine.outgoing(decisions):
                    self.transport.send_nowait(key, payload)
                self.transport.flush()
            if not self.engine.sync_due and self.engine.snapshot_due():
                await self._disk_io(self.engine.write_snapshot)
                settle_long_lived()

    def _from_peer(self, event: TransportEvent) -> bool:
        return event.peer_key in self.engine.peer_names

    async def shutdown(self) -> None:
        """Make everything durable and leave a snapshot, so the next start is quick."""
        if self.engine.sync_due:
            await self._disk_io(self.engine.sync)
        if self.engine.snapshot_due(force=True):
            await self._disk_io(self.engine.write_snapshot)


# --- starting a node from its directory -----------------------------------------


def lock_directory(directory: Path) -> int:
    """Hold an exclusive lock on the node directory for the life of the process.

    Two processes appending to one log would corrupt it; the second one stops
    before it reads anything.
    """
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(f"another node is already running on {directory}") from None
    return fd


def open_log(directory: Path) -> tuple[AppendLog, RecoveryReport]:
    (directory / LOG_DIRECTORY).mkdir(exist_ok=True)
    return AppendLog.open(RealDisk(directory / LOG_DIRECTORY))


async def run_node(
    directory: Path,
    *,
    listen: tuple[str, int] | None = None,
    task_status: trio.TaskStatus[NodeRuntime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node of ``directory`` until cancelled; then leave a snapshot."""
    config = load_config(directory)
    key = load_key_file(directory / KEY_FILE)
    if key.public_key != config.public_key:
        raise StartupError(
            f"{directory / KEY_FILE} does not hold the key named in the config "
            f"({config.public_key.hex()[:16]}...)"
        )
    lock_fd = lock_directory(directory)
    started = time.monotonic()
    log_, report = open_log(directory)
    state, replayed = recover_state(log_, config)
    recovery = {
        "recovered_records": replayed,
        "recovery_s": round(time.monotonic() - started, 3),
        "truncated_bytes": report.truncated_bytes,
        "snapshot_lsn": report.snapshot_lsn,
    }
    log.info("log recovered", directory=str(directory), **recovery)
    settle_long_lived()
    if report.truncated_bytes:
        log.warning(
            "torn log tail cut",
            file=report.truncated_file,
            offset=report.truncated_from_offset,
            bytes=report.truncated_bytes,
        )
    dial = {peer.public_key: peer.address for peer in config.peers if peer.address is not None}
    engines: list[NodeEngine] = []  # the engine, once the endpoint it needs is open

    def authorize(client_key: bytes) -> bool:
        return bool(engines) and engines[0].knows_key(client_key)

    try:
        with _checker() as checker:
            async with open_quic_endpoint(
                key, config.name, listen or config.listen, dial, authorize
            ) as transport:
                engine = NodeEngine(
                    config,
                    key,
                    log_,
                    state,
                    started_ms=wall_clock_ms(),
                    link_statuses=transport.statuses,
                    link_clock_s=trio.current_time,
                    recovery=recovery,
                )
                engine.accounts.checker = checker
                engines.append(engine)
                runtime = NodeRuntime(engine, transport)
                log.info("node running", name=config.name, listen=transport.local_address)
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(runtime.run)
                        task_status.started(runtime)
                finally:
                    with trio.CancelScope(shield=True):
                        await runtime.shutdown()
    finally:
        log_.close()
        os.close(lock_fd)


def _checker() -> contextlib.AbstractContextManager[CheckAhead | None]:
    """The signature checker process; none when LEDGERMESH_CHECK_AHEAD=0."""
    if os.environ.get("LEDGERMESH_CHECK_AHEAD", "1") == "0":
        return contextlib.nullcontext()
    return open_check_ahead()


def settle_long_lived() -> None:
    """Move every object alive now out of the cyclic collector's sight.

    A validator's state (chains, records, routes) lives as long as the process
    and holds no reference cycles, yet every full collection walked all of it:
    the pause grew with history (three quarters of a snapshot's time with
    40,000 entries). Called after recovery and after each snapshot, when what
    is alive is mostly state; reference counting still frees it all.
    """
    gc.collect()
    gc.freeze()


def run_node_forever(directory: Path) -> None:
    """The ``ledgermesh run`` command: run until SIGINT or SIGTERM."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            await run_node(directory)
            nursery.cancel_scope.cancel()

    with collapse_single_exception_group():
        trio.run(main)
    log.info("node stopped", directory=str(directory))


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signal_number in signals:
            log.info("stopping", signal=signal.Signals(signal_number).name)
            scope.cancel()
            return
