"""A fault-injecting UDP relay: what a real link between two node processes passes through.

Rules:
- One relay stands for one dialling direction of a link: node A's config says
  peer B is at the relay's port; the relay forwards A's datagrams to B's real
  port from a socket of its own per client address (so B's answers come back
  through it) and B's answers back to A. QUIC cannot tell it from a router.
- Faults apply per datagram, in both directions: ``cut`` drops everything,
  ``loss`` drops, ``duplicate`` sends twice, each copy delayed by a draw from
  ``delay_ms`` (so delays reorder). Every decision comes from the relay's own
  seeded RNG; only the timing of the real processes is not reproducible.
- Bounded: at most RELAY_FLOWS_MAX client addresses and
  RELAY_QUEUE_DATAGRAMS_MAX delayed datagrams; beyond them datagrams are
  dropped and counted, never queued without limit. Everything runs in the
  relay's nursery and stops with it.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from simulations.limits import (
    RELAY_DATAGRAM_BYTES_MAX,
    RELAY_FLOWS_MAX,
    RELAY_QUEUE_DATAGRAMS_MAX,
)

Address = tuple[str, int]
Send = Callable[[bytes], Awaitable[object]]


@dataclass
class LinkFaults:
    """The faults of one link, shared by both of its relays, changed while they run."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (0, 0)
    cut: bool = False


@dataclass
class RelayCounters:
    forwarded: int = 0
    lost: int = 0
    duplicated: int = 0
    cut: int = 0
    overflow: int = 0


@dataclass
class _Flow:
    upstream: trio.socket.SocketType
    client: Address


@dataclass
class FaultRelay:
    name: str
    target: Address
    faults: LinkFaults
    rng: random.Random
    host: str = "127.0.0.1"
    counters: RelayCounters = field(default_factory=RelayCounters)
    port: int = 0
    _socket: trio.socket.SocketType | None = None
    _flows: dict[Address, _Flow] = field(default_factory=dict)
    _delayed: int = 0

    async def bind(self) -> int:
        """Bind the listening socket (before the configs that name its port are written)."""
        self._socket = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await self._socket.bind((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        return self.port

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._socket is None:
            await self.bind()
        listening = self._socket
        assert listening is not None
        async with trio.open_nursery() as nursery:
            task_status.started()
            try:
                while True:
                    data, client = await listening.recvfrom(RELAY_DATAGRAM_BYTES_MAX)
                    flow = self._flows.get(client)
                    if flow is None:
                        flow = await self._open_flow(client, listening, nursery)
                        if flow is None:
                            continue
                    self._forward(data, flow.upstream.send, nursery)
            finally:
                listening.close()
                for flow in self._flows.values():
                    flow.upstream.close()

    async def _open_flow(
        self, client: Address, listening: trio.socket.SocketType, nursery: trio.Nursery
    ) -> _Flow | None:
        if len(self._flows) >= RELAY_FLOWS_MAX:
            self.counters.overflow += 1
            return None
        upstream = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await upstream.bind((self.host, 0))
        await upstream.connect(self.target)
        flow = _Flow(upstream, client)
        self._flows[client] = flow
        nursery.start_soon(self._answers, flow, listening, nursery)
        return flow

    async def _answers(
        self, flow: _Flow, listening: trio.socket.SocketType, nursery: trio.Nursery
    ) -> None:
        async def to_client(data: bytes) -> object:
            return await listening.sendto(data, flow.client)

        while True:
            try:
                data = await flow.upstream.recv(RELAY_DATAGRAM_BYTES_MAX)
            except ConnectionRefusedError:
                continue  # the target is down (killed); its restart will answer again
            self._forward(data, to_client, nursery)

    def _forward(self, data: bytes, send: Send, nursery: trio.Nursery) -> None:
        faults, counters, rng = self.faults, self.counters, self.rng
        if faults.cut:
            counters.cut += 1
            return
        if faults.loss and rng.random() < faults.loss:
            counters.lost += 1
            return
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            copies = 2
            counters.duplicated += 1
        low, high = faults.delay_ms
        for _ in range(copies):
            if self._delayed >= RELAY_QUEUE_DATAGRAMS_MAX:
                counters.overflow += 1
                continue
            self._delayed += 1
            nursery.start_soon(self._send_later, rng.randint(low, high) / 1000, data, send)

    async def _send_later(self, delay_s: float, data: bytes, send: Send) -> None:
        try:
            if delay_s > 0:
                await trio.sleep(delay_s)
            try:
                await send(data)
                self.counters.forwarded += 1
            except OSError:
                self.counters.lost += 1  # the receiving side's port is closed (killed)
        finally:
            self._delayed -= 1
