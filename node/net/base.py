"""What every transport offers the runtime: events, statuses and typed failures.

Rules:
- A transport moves opaque payloads between nodes named by their 32-byte
  ed25519 public key. It is best-effort: the protocol above retransmits until
  acknowledged, so a transport may drop a payload on disconnect or when the
  queue towards a peer is full, and counts every payload it refuses.
- ``send_nowait`` never blocks and never raises for an operating condition:
  it returns False (and counts) when the peer is not connected or its queue is
  full. Payloads are 1..API_FRAME_BYTES_MAX bytes; anything else is a bug in
  the caller and fails an assertion.
- Events come out of one bounded source, in the order each peer's link state
  changed: ``PeerUp`` once per live link, then that link's ``Received``
  payloads, then ``PeerDown`` when it goes. A link replaced by another link to
  the same peer produces no events. Different peers' events may interleave in
  any order (the QUIC endpoint takes the senders in turns).
- Operating failures of the shell (cannot bind, cannot connect, connection
  lost, no answer in time) are the flat set of ``TransportError`` subclasses
  below. A misbehaving peer never makes an exception escape: its connection is
  closed, counted and logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PeerUp:
    """A link to ``peer_key`` is established and authenticated both ways."""

    peer_key: bytes


@dataclass(frozen=True)
class PeerDown:
    """The link to ``peer_key`` is gone; payloads in flight may be lost."""

    peer_key: bytes


@dataclass(frozen=True)
class Received:
    """``payload`` arrived from ``peer_key``."""

    peer_key: bytes
    payload: bytes


TransportEvent = PeerUp | PeerDown | Received


@dataclass(frozen=True)
class PeerStatus:
    """A snapshot of one peer's link, for operators and tests.

    ``since_s`` is ``trio.current_time()`` when ``connected`` last changed.
    ``dropped_payloads`` counts sends refused (not connected, queue full) and
    payloads the network lost on the way in where the transport can tell.
    ``throttled_payloads`` counts incoming payloads dropped by the rate limit.
    """

    peer_key: bytes
    connected: bool
    since_s: float | None
    queued_bytes: int
    dropped_payloads: int
    reconnects: int
    throttled_payloads: int = 0


class EventSource(Protocol):
    """Where the runtime takes transport events: a trio channel, or ``FairInbox``."""

    async def receive(self) -> TransportEvent:
        """The next event, waiting for one."""
        ...

    def receive_nowait(self) -> TransportEvent:
        """The next event; ``trio.WouldBlock`` when none is ready."""
        ...


class Transport(Protocol):
    """The interface the runtime is written against (QUIC or in-memory)."""

    @property
    def events(self) -> EventSource:
        """Bounded (INCOMING_QUEUE_ITEMS_MAX) source of transport events."""
        ...

    def send_nowait(self, peer_key: bytes, payload: bytes) -> bool:
        """Queue ``payload`` for ``peer_key``; False (and counted) if refused."""
        ...

    def flush(self) -> None:
        """Hint that a batch of ``send_nowait`` calls is complete."""
        ...

    def statuses(self) -> list[PeerStatus]:
        """One status per known peer."""
        ...


class TransportError(Exception):
    """Base of the transport's operating failures; never raised itself."""


class BindError(TransportError):
    """Raised when the endpoint cannot bind its UDP socket (address in use, bad address)."""


class ConnectError(TransportError):
    """Raised when a client connection cannot be established.

    Nobody answers in time, the node presents another key than expected, or
    the node refuses our key. The message says which, with the address.
    """


class ConnectionLostError(TransportError):
    """Raised when an established client connection closes (peer closed, idle timeout)."""


class TransportTimeoutError(TransportError):
    """Raised when a client send or receive does not complete within its timeout."""


def payload_is_valid(payload: bytes, payload_bytes_max: int) -> bool:
    """The size rule shared by all transports (for assertions)."""
    return 0 < len(payload) <= payload_bytes_max
