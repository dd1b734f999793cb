"""One operator connection per node, shared by every task of the chaos run.

Rules:
- A node keeps one operator console at a time: a second connection with the
  operator key replaces the first, and answers meant for the first would be
  lost or, worse, matched to another request id. So every request to a node
  goes through one ``ApiClient`` held open by a task of the console's nursery;
  many requests may be in flight on it.
- A connection that fails (unreachable, timeout: the node was killed) is
  closed; the next request opens a new one. Errors reach the caller as the
  operator API's ``ApiError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from node.api.client import ApiClient
from node.api.protocol import ApiError
from tools.mesh import LocalNode

CONSOLE_TIMEOUT_S = 5.0  # a request to a killed node fails this soon
CONNECTION_FAILURES = frozenset({"unreachable", "timeout"})


@dataclass
class _Console:
    client: ApiClient | None = None
    closed: trio.Event = field(default_factory=trio.Event)
    lock: trio.Lock = field(default_factory=trio.Lock)


class Consoles:
    """The operator's consoles to every node; lives as long as ``nursery``."""

    def __init__(self, nodes: list[LocalNode], nursery: trio.Nursery) -> None:
        self.nodes = nodes
        self.nursery = nursery
        self.consoles = [_Console() for _ in nodes]

    async def call(self, index: int, op: str, **arguments: Any) -> Any:
        client = await self._client(index)
        try:
            return await client.call(op, **arguments)
        except ApiError as error:
            if error.code in CONNECTION_FAILURES:
                self._drop(index, client)
            raise

    def _drop(self, index: int, client: ApiClient) -> None:
        console = self.consoles[index]
        if console.client is client:
            console.client = None
            console.closed.set()

    def close_all(self) -> None:
        for index, console in enumerate(self.consoles):
            if console.client is not None:
                self._drop(index, console.client)

    async def _client(self, index: int) -> ApiClient:
        console = self.consoles[index]
        async with console.lock:
            if console.client is None:
                console.closed = trio.Event()
                opened: list[ApiClient | ApiError] = []
                ready = trio.Event()
                self.nursery.start_soon(self._hold, index, console.closed, opened, ready)
                await ready.wait()
                if isinstance(opened[0], ApiError):
                    raise opened[0]
                console.client = opened[0]
            return console.client

    async def _hold(
        self,
        index: int,
        closed: trio.Event,
        opened: list[ApiClient | ApiError],
        ready: trio.Event,
    ) -> None:
        try:
            async with self.nodes[index].client(timeout_s=CONSOLE_TIMEOUT_S) as client:
                opened.append(client)
                ready.set()
                await closed.wait()
        except ApiError as error:
            if not ready.is_set():
                opened.append(error)
                ready.set()
        finally:
            if not ready.is_set():
                opened.append(ApiError("unreachable", f"{self.nodes[index].name}: no connection"))
                ready.set()
