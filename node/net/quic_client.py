"""A one-connection QUIC client for operators and customers (CLI, tools, tests).

Rules:
- The client is a QuicEndpoint that accepts nothing and dials once: same
  certificates, framing, limits and key pinning as node-to-node links. It
  opens only after the node has checked our key and answered our hello, so a
  refusal is reported by ``open_quic_client`` itself, never later.
- Every await is bounded by ``timeout_s``. Failures are typed:
  ``ConnectError`` (no answer, key mismatch, refused), ``ConnectionLostError``
  (the connection closed), ``TransportTimeoutError`` (no progress in time).
- No reconnection: a caller that wants another try opens a new client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing

import trio

from node.crypto import NodeKey
from node.net.base import (
    ConnectionLostError,
    PeerDown,
    Received,
    TransportError,
    TransportTimeoutError,
)
from node.net.quic_endpoint import Enqueued, QuicEndpoint
from node.net.quic_link import Link
from node.net.quic_support import (
    format_address,
    open_udp_socket,
)
from node.nurseries import collapse_single_exception_group


class QuicClient:
    """An open connection to one node. Create it with ``open_quic_client``."""

    def __init__(
        self,
        endpoint: QuicEndpoint,
        link: Link,
        server: tuple[str, int],
        server_key: bytes,
        timeout_s: float,
    ) -> None:
        self._endpoint = endpoint
        self._link = link
        self._where = format_address(server)
        self._server_key = server_key
        self._timeout_s = timeout_s
        self._lost = False

    @property
    def server_key(self) -> bytes:
        return self._server_key

    @property
    def local_address(self) -> tuple[str, int]:
        return self._endpoint.local_address

    async def send(self, payload: bytes) -> None:
        """Queue ``payload``; waits (at most ``timeout_s``) while the send queue is full."""
        with trio.move_on_after(self._timeout_s):
            while True:
                result = self._endpoint.enqueue(self._server_key, payload)
                if result is Enqueued.SENT:
                    return
                if result is Enqueued.NOT_CONNECTED:
                    raise ConnectionLostError(self._lost_message())
                self._link.space_wanted = True
                await self._link.space.wait()
        raise TransportTimeoutError(
            f"node at {self._where} did not take {len(payload)} bytes within {self._timeout_s} s"
        )

    async def receive(self) -> bytes:
        """The next payload from the node, waiting at most ``timeout_s``."""
        if self._lost:
            raise ConnectionLostError(self._lost_message())
        with trio.move_on_after(self._timeout_s):
            while True:
                event = await self._endpoint.events.receive()
                if isinstance(event, Received):
                    return event.payload
                if isinstance(event, PeerDown):
                    self._lost = True
                    raise ConnectionLostError(self._lost_message())
        raise TransportTimeoutError(
            f"no answer from node at {self._where} within {self._timeout_s} s"
        )

    def _lost_message(self) -> str:
        reason = self._link.close_reason or "connection closed"
        return f"connection to node at {self._where} lost: {reason}"


@asynccontextmanager
async def open_quic_client(
    key: NodeKey, server: tuple[str, int], server_key: bytes, *, timeout_s: float
) -> AsyncIterator[QuicClient]:
    """Connect to the node at ``server`` that must hold ``server_key``.

    Raises ConnectError when nobody answers within ``timeout_s``, the node
    presents another key, or the node refuses ours.
    """
    local = ("::", 0) if ":" in server[0] else ("0.0.0.0", 0)
    sock = await open_udp_socket(local)
    failure: TransportError | None = None
    with sock:
        endpoint = QuicEndpoint(
            key, "ledgermesh-client", sock, _authorize_nobody, accept_incoming=False
        )
        with closing(endpoint), collapse_single_exception_group():
            async with trio.open_nursery() as nursery:
                endpoint.start(nursery)
                try:
                    link = await endpoint.connect_once(server_key, server, timeout_s)
                except TransportError as error:
                    failure = error
                    nursery.cancel_scope.cancel()
                else:
                    try:
                        yield QuicClient(endpoint, link, server, server_key, timeout_s)
                    finally:
                        await endpoint.stop()
    if failure is not None:
        raise failure


def _authorize_nobody(key: bytes) -> bool:
    return False
