"""The runtime's fsync: before anything of a pass leaves, and no sooner than needed.

A pass that lets nothing out (say, a peer's ACK was recorded) does not wait for
its fsync; the next pass that sends or answers makes every earlier record
durable first, and records never wait more than SYNC_DEFER_MS_MAX for a sync.
The engine and transport here are stand-ins that record what the runtime does.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import trio
import trio.testing

from node.engine import Decisions
from node.limits import SYNC_DEFER_MS_MAX, TICK_INTERVAL_MS
from node.net.base import Received
from node.runtime import NodeRuntime

PEER = b"p" * 32


class Engine:
    """Each input is a record; an input b"send" also makes the pass send a frame."""

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.peer_names = {PEER: "peer"}
        self.appended = 0
        self.durable = 0
        self.passes = 0
        self.trace: list[tuple[str, float, int]] = []

    @property
    def sync_due(self) -> bool:
        return self.durable < self.appended

    def decide(self, batch: list[Any], now_ms: int, *, tick: bool) -> Decisions:
        self.passes += 1
        assert self.passes < 10_000, "the loop turns without waiting"
        decisions = Decisions(defaultdict(list), [])
        for event in batch:
            self.appended += 1
            if event.payload == b"send":
                decisions.outbox[PEER].append(object())  # type: ignore[arg-type]
        return decisions

    def sync(self) -> None:
        self.durable = self.appended
        self.trace.append(("sync", self.clock.current_time(), self.durable))

    def outgoing(self, decisions: Decisions) -> list[tuple[bytes, bytes]]:
        assert not self.sync_due, "nothing leaves before its record is durable"
        self.trace.append(("send", self.clock.current_time(), self.durable))
        return [(PEER, b"frame") for _ in decisions.outbox[PEER]]

    def snapshot_due(self) -> bool:
        return False


class Transport:
    def __init__(self) -> None:
        self.send_channel, self.events = trio.open_memory_channel[Any](100)
        self.sent: list[bytes] = []

    def send_nowait(self, peer_key: bytes, payload: bytes) -> bool:
        self.sent.append(payload)
        return True

    def flush(self) -> None:
        pass

    def statuses(self) -> list[Any]:
        return []


def runtime_of(engine: Engine, transport: Transport, clock: trio.testing.MockClock) -> NodeRuntime:
    return NodeRuntime(
        engine,  # type: ignore[arg-type]
        transport,
        clock_ms=lambda: int(clock.current_time() * 1000),
        disk_io_in_thread=False,
    )


def test_a_quiet_pass_does_not_wait_for_its_sync_and_the_next_send_makes_it_durable() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    engine = Engine(clock)
    transport = Transport()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime_of(engine, transport, clock).run)
            await transport.send_channel.send(Received(PEER, b"ack"))  # records, sends nothing
            await trio.sleep(0.001)
            assert engine.trace == [] and engine.sync_due  # not synced yet
            await transport.send_channel.send(Received(PEER, b"send"))
            await trio.sleep(0.001)
            assert engine.trace == [
                ("sync", engine.trace[0][1], 2),
                ("send", engine.trace[1][1], 2),
            ]
            assert transport.sent == [b"frame"]
            engine.trace.clear()
            await transport.send_channel.send(Received(PEER, b"ack"))
            await trio.sleep(0.001)
            started = clock.current_time()
            assert engine.trace == []
            await trio.sleep(SYNC_DEFER_MS_MAX / 1000 + 0.002)  # nothing else comes
            ((what, at, durable),) = engine.trace
            assert what == "sync" and durable == 3
            assert at - started <= SYNC_DEFER_MS_MAX / 1000
            assert SYNC_DEFER_MS_MAX < TICK_INTERVAL_MS  # sooner than the next tick
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


def test_the_deadline_wakes_an_overdue_pass_at_any_clock_reading() -> None:
    """The deferral's deadline, hit exactly under a mock clock, always makes its
    pass overdue (a float sum that rounds below it once made the loop spin)."""
    rng = random.Random(5)
    for start_s in [5.500928853887331] + [rng.uniform(0, 10**6) for _ in range(50)]:
        quiet_pass_is_synced_in_time(start_s)


def quiet_pass_is_synced_in_time(start_s: float) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    clock.jump(start_s)
    engine = Engine(clock)
    transport = Transport()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime_of(engine, transport, clock).run)
            await transport.send_channel.send(Received(PEER, b"ack"))
            await trio.sleep(SYNC_DEFER_MS_MAX / 1000 + 0.01)
            assert not engine.sync_due, start_s
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
