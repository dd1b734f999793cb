"""The runtime's fsync runs in the loop's own thread, even with disk I/O in threads.

Handing each pass's fsync to a worker thread and back woke two threads on the
critical path of every message; a pass's sync is inline (snapshots still go
to a thread). Same stand-ins as test_runtime_sync_defer.
"""

from __future__ import annotations

import threading

import trio
import trio.testing

from node.net.base import Received
from node.runtime import NodeRuntime
from tests.unit.test_runtime_sync_defer import PEER, Engine, Transport


class ThreadRecordingEngine(Engine):
    def __init__(self, clock: trio.testing.MockClock) -> None:
        super().__init__(clock)
        self.sync_threads: list[threading.Thread] = []

    def sync(self) -> None:
        self.sync_threads.append(threading.current_thread())
        super().sync()


async def test_a_pass_that_sends_syncs_inline_then_sends() -> None:
    clock = trio.testing.MockClock()
    engine = ThreadRecordingEngine(clock)
    transport = Transport()
    runtime = NodeRuntime(
        engine,  # type: ignore[arg-type]
        transport,
        clock_ms=lambda: int(trio.current_time() * 1000),
        disk_io_in_thread=True,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        await transport.send_channel.send(Received(PEER, b"send"))
        with trio.fail_after(5):
            while not transport.sent:
                await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    assert engine.sync_threads == [threading.main_thread()]
    assert [kind for kind, _, _ in engine.trace] == ["sync", "send"]
