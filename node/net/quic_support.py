"""Small helpers of the QUIC transport: sockets, addresses, messages, nurseries.

Rules:
- Keys appear in logs and messages as the first 16 hex digits of the public
  key; a failure message names the address and says what happened.
- ``open_*`` context managers let a lone exception leave their nursery as
  itself (``node.nurseries``), so callers catch ``ConnectError``, not an
  ``ExceptionGroup``.
"""

from __future__ import annotations

import socket
from typing import Any

import trio

from node.limits import UDP_SOCKET_BUFFER_BYTES
from node.net.base import BindError
from node.net.quic_link import CloseCode, Link


def short(key: bytes | None) -> str:
    return "none" if key is None else key.hex()[:16]


def format_address(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def open_udp_socket(address: tuple[str, int]) -> trio.socket.SocketType:
    """A bound UDP socket with large kernel buffers; BindError on failure."""
    sock = trio.socket.socket(_family_of(address[0]), socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER_BYTES)
        await sock.bind(address)
    except OSError as error:
        sock.close()
        raise BindError(
            f"cannot listen on {format_address(address)}: {error.strerror or error}"
        ) from None
    return sock


def describe_failure(link: Link, where: str) -> str:
    """What a person should read when a dial did not open."""
    reason = link.close_reason or "connection closed"
    if link.closed_by_peer:
        return f"node at {where} refused the connection: {reason}"
    if reason == "handshake timeout":
        if link.datagrams_received == 0:
            return f"no node answering at {where}"
        return f"handshake with node at {where} timed out"
    if link.close_code is CloseCode.KEY_MISMATCH:
        return reason.replace("node key mismatch", f"node key mismatch at {where}", 1)
    return f"connection to node at {where} failed: {reason}"
