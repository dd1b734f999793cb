"""One QUIC connection to one node: aioquic's sans-IO core plus our link state.

Rules:
- Both sides present a self-signed certificate of their node key. The server
  requests the client's certificate; on ``HandshakeCompleted`` each side reads
  the peer's ed25519 key from it and the endpoint decides: the dialer demands
  the key it dialed, the acceptor demands a certificate and ``authorize(key)``.
- After that check each side writes a zero-length "hello" frame on the one
  bidirectional stream (stream 0, opened by the dialer; the acceptor answers
  on it). A side counts the link open when it has read the other side's
  hello, so an open link is authenticated both ways, and nothing the peer
  wrote before its hello is ever delivered.
- States only move forward: HANDSHAKE -> AWAIT_HELLO -> OPEN -> CLOSING.
  CLOSING covers a close by us, by the peer, or by aioquic (idle timeout,
  protocol error); the connection is driven a little longer so its
  CONNECTION_CLOSE is sent and stray packets are answered, then forgotten.
- This module performs no I/O; ``trio.Event`` fields only wake the task that
  drives the link.
"""

from __future__ import annotations

import enum
import itertools
import math
import ssl
from collections import deque

import trio
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection, QuicConnectionState
from aioquic.quic.events import ConnectionTerminated
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.crypto import certificate_public_key
from node.limits import (
    API_FRAME_BYTES_MAX,
    PEER_FRAMES_PER_SECOND_MAX,
    QUIC_IDLE_TIMEOUT_S,
    QUIC_KEEPALIVE_INTERVAL_S,
    QUIC_MAX_DATAGRAM_BYTES,
    QUIC_PENDING_DATAGRAMS_MAX,
)
from node.net.framing import FrameDecoder, TokenBucket, encode_frame

ALPN = "ledgermesh/1"
STREAM_ID = 0  # the first client-initiated bidirectional stream
HELLO_FRAME = encode_frame(b"")


class CloseCode(enum.IntEnum):
    """Application close codes we send; the reason phrase says more."""

    SHUTDOWN = 0
    REFUSED = 1  # no client certificate, or a key not authorized
    KEY_MISMATCH = 2  # the dialed node presented another key
    PROTOCOL_VIOLATION = 3  # bad framing, unexpected stream, data before hello
    DUPLICATE = 4  # another connection to the same node was kept
    HANDSHAKE_TIMEOUT = 5


class LinkState(enum.Enum):
    HANDSHAKE = "handshake"
    AWAIT_HELLO = "await-hello"
    OPEN = "open"
    CLOSING = "closing"


class NodeQuicConnection(QuicConnection):
    """aioquic's connection with the few private hooks NOTES.md measured."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if not self._is_client:
            # aioquic sends a CertificateRequest only when this private flag is set.
            self.tls._request_client_certificate = True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        # A server connection whose first datagram held no valid packet has no
        # path, and aioquic would raise IndexError.
        if not self._network_paths:
            return []
        return super().datagrams_to_send(now)

    def issued_connection_ids(self) -> list[bytes]:
        """Our connection ids announced to the peer so far (sending announces them)."""
        return [cid.cid for cid in self._host_cids if cid.was_sent]

    @property
    def has_network_path(self) -> bool:
        return bool(self._network_paths)

    def peer_public_key(self) -> bytes | None:
        """The ed25519 key of the peer's certificate, None without one."""
        certificate = self.tls._peer_certificate
        if certificate is None:
            return None
        return certificate_public_key(certificate)

    def send_backlog_bytes(self) -> int:
        """Bytes written to our stream and not yet acknowledged by the peer."""
        stream = self._streams.get(STREAM_ID)
        if stream is None:
            return 0
        return stream.sender._buffer_stop - stream.sender._buffer_start

    def stream_end_offset(self) -> int:
        """Offset just past the last byte written to our stream."""
        stream = self._streams.get(STREAM_ID)
        return 0 if stream is None else stream.sender._buffer_stop

    def stream_acknowledged_offset(self) -> int:
        """Every byte of our stream before this offset was acknowledged."""
        stream = self._streams.get(STREAM_ID)
        return 0 if stream is None else stream.sender._buffer_start

    @property
    def close_event(self) -> ConnectionTerminated | None:
        """Set as soon as anyone starts closing, long before aioquic reports it."""
        return self._close_event

    @property
    def is_draining(self) -> bool:
        """True when the peer closed the connection."""
        return self._state is QuicConnectionState.DRAINING


def make_configuration(
    certificate: x509.Certificate | None,
    private_key: Ed25519PrivateKey | None,
    *,
    is_client: bool,
) -> QuicConfiguration:
    """Configuration for either side; peers are pinned by key, not by CA."""
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        certificate=certificate,
        private_key=private_key,
        verify_mode=ssl.CERT_NONE,
        idle_timeout=QUIC_IDLE_TIMEOUT_S,
        max_datagram_size=QUIC_MAX_DATAGRAM_BYTES,
    )


class Link:
    """Our state around one ``NodeQuicConnection``."""

    def __init__(
        self,
        quic: NodeQuicConnection,
        *,
        is_dialer: bool,
        expected_key: bytes | None,
        address: NetworkAddress,
        handshake_timeout_s: float,
    ) -> None:
        self.quic = quic
        self.is_dialer = is_dialer
        self.expected_key = expected_key
        self.address = address
        self.handshake_timeout_s = handshake_timeout_s
        self.state = LinkState.HANDSHAKE
        self.peer_key: bytes | None = None
        self.decoder = FrameDecoder(API_FRAME_BYTES_MAX)
        self.bucket: TokenBucket | None = None
        self.cids: set[bytes] = set()
        self.opened_s: float | None = None
        self.next_ping_s = math.inf
        self.close_reason: str | None = None
        self.close_code: CloseCode | None = None  # set when we closed it
        self.closed_by_peer = False
        self.terminated = False
        self.datagrams_received = 0
        self.throttled_payloads = 0
        self.admitted = False
        self._pending: deque[tuple[bytes, NetworkAddress]] = deque()
        self._ping_ids = itertools.count()
        self.wake = trio.Event()  # something to do: datagram in, payload out
        self.sleep_scope: trio.CancelScope | None = None  # the task's wait for wake
        self.unsent: deque[tuple[bytes, NetworkAddress]] = deque()  # waiting for the kernel
        self.settled = trio.Event()  # OPEN or CLOSING
        self.space_wanted = False
        self.space = trio.Event()  # the send backlog drained (or the link closed)
        # Payload frames written and not known to be acknowledged, with the stream
        # offset each ends at: what a replacing connection must carry again.
        self._unacked: deque[tuple[int, bytes]] = deque()

    @property
    def dialer_key(self) -> bytes | None:
        """Key of the node that dialed this connection (ours if we did)."""
        return None if self.is_dialer else self.peer_key

    def datagram_received(self, data: bytes, address: NetworkAddress, now: float) -> None:
        self.datagrams_received += 1
        if self.admitted:
            self.quic.receive_datagram(data, address, now)
        elif len(self._pending) < QUIC_PENDING_DATAGRAMS_MAX:
            self._pending.append((data, address))
        self.wake.set()

    def admit(self, now: float) -> None:
        """The link got a handshake slot: start it, then feed what arrived meanwhile."""
        self.admitted = True
        if self.is_dialer:
            self.quic.connect(self.address, now=now)
        while self._pending:
            data, address = self._pending.popleft()
            self.quic.receive_datagram(data, address, now)
        self.wake.set()  # the first pass sends the Initial or the answer to it

    def open(self, now: float) -> None:
        self.state = LinkState.OPEN
        self.opened_s = now
        self.next_ping_s = now + QUIC_KEEPALIVE_INTERVAL_S
        self.bucket = TokenBucket(PEER_FRAMES_PER_SECOND_MAX, PEER_FRAMES_PER_SECOND_MAX, now)
        self.settled.set()

    def write(self, frame: bytes, *, wake: bool = True) -> None:
        """Write ``frame`` into the stream; ``wake``: the task transmits it (else the
        caller does, as the endpoint's ``flush``)."""
        self.quic.send_stream_data(STREAM_ID, frame)
        if frame != HELLO_FRAME:  # acknowledged ones are dropped once per pass (_drive)
            self._unacked.append((self.quic.stream_end_offset(), frame))
        if wake:
            self.wake.set()

    def rearm(self) -> None:
        """After a transmit outside the task: its wait ends at the timer aioquic set."""
        if self.sleep_scope is not None:
            self.sleep_scope.deadline = self.next_deadline()

    def unacknowledged_frames(self) -> list[bytes]:
        """Payload frames the peer has not acknowledged, oldest first. The peer
        may have read some of them (its acknowledgement lost or late): a frame
        carried onto another connection can arrive twice, never not at all."""
        self.forget_acknowledged()
        return [frame for _, frame in self._unacked]

    def forget_acknowledged(self) -> None:
        acknowledged = self.quic.stream_acknowledged_offset()
        unacked = self._unacked
        while unacked and unacked[0][0] <= acknowledged:
            unacked.popleft()

    def next_deadline(self) -> float:
        timer = self.quic.get_timer()
        deadline = math.inf if timer is None else timer
        if self.state is LinkState.OPEN:
            deadline = min(deadline, self.next_ping_s)
        return deadline

    def handle_timers(self, now: float) -> None:
        timer = self.quic.get_timer()
        if timer is not None and now >= timer:
            self.quic.handle_timer(now)
        if self.state is LinkState.OPEN and now >= self.next_ping_s:
            self.quic.send_ping(next(self._ping_ids))
            self.next_ping_s = now + QUIC_KEEPALIVE_INTERVAL_S

    def notify_space(self, backlog_bytes_max: int) -> None:
        if self.space_wanted and (
            self.state is LinkState.CLOSING or self.quic.send_backlog_bytes() < backlog_bytes_max
        ):
            self.space_wanted = False
            self.space.set()
            self.space = trio.Event()
