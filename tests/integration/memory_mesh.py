"""A simulated mesh for integration tests: real runtimes on the in-memory network.

Each node runs the real shell (runtime, cores, log on a simulated disk); the
operator speaks the real API over the same network. Time is trio's clock, so
tests run under MockClock.
"""

from __future__ import annotations

import random
from typing import Any

import trio

from node.api.protocol import Request, decode_response, encode_request
from node.config import NodeConfig, PeerConfig
from node.crypto import NodeKey
from node.engine import NodeEngine, recover_state
from node.net.base import Received
from node.net.memory import MemoryEndpoint, MemoryNetwork
from node.runtime import NodeRuntime
from node.storage.disk import SimulatedDisk
from node.storage.log import AppendLog

UNIT = "1E-2 USD"
LIMIT = 10**12


def simulated_ms() -> int:
    return 1_800_000_000_000 + int(trio.current_time() * 1000)


class Operator:
    """The operator's client, speaking the real API over the in-memory network."""

    def __init__(self, endpoint: MemoryEndpoint) -> None:
        self.endpoint = endpoint
        self.next_id = 0

    async def call(self, node_key: bytes, op: str, **args: Any) -> Any:
        self.next_id += 1
        request_id = self.next_id
        assert self.endpoint.send_nowait(node_key, encode_request(Request(request_id, op, args)))
        with trio.fail_after(30):
            while True:
                event = await self.endpoint.events.receive()
                if isinstance(event, Received) and event.peer_key == node_key:
                    answer_id, result = decode_response(event.payload)
                    if answer_id == request_id:
                        return result


class SimulatedNode:
    def __init__(self, name: str, key: NodeKey, operator: NodeKey, network: MemoryNetwork):
        self.name = name
        self.key = key
        self.operator = operator
        self.disk = SimulatedDisk()
        self.endpoint = network.endpoint(key.public_key)
        self.config: NodeConfig | None = None
        self.scope: trio.CancelScope | None = None
        self.runtime: NodeRuntime | None = None

    def trust(self, other: SimulatedNode) -> None:
        self.trust_key(other.name, other.key.public_key)

    def trust_key(self, name: str, public_key: bytes) -> None:
        peer = PeerConfig(name, public_key, None, {UNIT: LIMIT})
        self.config = NodeConfig(
            self.name, ("memory", 0), self.key.public_key, self.operator.public_key, (peer,)
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED):
        assert self.config is not None
        log, _ = AppendLog.open(self.disk)
        state, _ = recover_state(log, self.config)
        engine = NodeEngine(
            self.config,
            self.key,
            log,
            state,
            started_ms=simulated_ms(),
            link_statuses=self.endpoint.statuses,
            link_clock_s=trio.current_time,
        )
        runtime = NodeRuntime(engine, self.endpoint, clock_ms=simulated_ms, disk_io_in_thread=False)
        self.runtime = runtime
        with trio.CancelScope() as self.scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.run)
                task_status.started()

    def crash(self, rng: random.Random) -> None:
        """Stop at once; unsynced writes vanish or tear, as after a power cut."""
        assert self.scope is not None
        self.scope.cancel()
        self.disk.crash(rng)
        while True:  # what the kernel had buffered for the dead process is gone
            try:
                self.endpoint.events.receive_nowait()
            except trio.WouldBlock:
                break
