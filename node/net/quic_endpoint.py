"""The QUIC endpoint: aioquic's sans-IO core driven from one trio UDP socket.

Rules:
- One UDP socket per endpoint serves both the connections we accept and the
  ones we dial. Datagrams are routed by destination connection id; the table
  follows ConnectionIdIssued / ConnectionIdRetired and loses a connection's
  ids when it ends.
- Every connection has one task in the endpoint's nursery. It holds a slot of
  the handshake limiter until the link is open or closed (deadline
  QUIC_HANDSHAKE_TIMEOUT_S), then sleeps until the aioquic timer, the next
  keep-alive ping, or a wake-up (datagram in, payload out). Each pass calls
  ``datagrams_to_send`` once, so all payloads queued since the last pass share
  datagrams, then re-arms the timer. ``now`` is always ``trio.current_time()``.
- ``send_nowait`` writes the frame into the stream at once (aioquic keeps it)
  and refuses when the bytes not yet acknowledged by the peer would pass
  PEER_SEND_QUEUE_BYTES_MAX. ``flush`` then transmits, in the caller's task,
  what the sends since the last flush wrote: one ``datagrams_to_send`` per
  connection, so a pass's frames share datagrams and leave without waiting
  for a scheduler turn; it re-arms the connection's timer (the send started
  loss detection) and routes connection ids issued on the way. Datagrams the
  kernel does not take at once are left, in order, to the connection's task.
  A sender that never calls ``flush`` loses nothing: the endpoint flushes at
  its next scheduler turn.
- One link per peer. A second open link to the same node is resolved the same
  way on both sides: the one dialed by the lower key wins; if the current one
  is older than QUIC_HANDSHAKE_TIMEOUT_S it is presumed dead (the peer
  restarted) and the newer wins. The loser closes without PeerDown/PeerUp,
  and what the peer had not acknowledged on it is written again on the
  winner (a frame may arrive twice, none is lost). When the peer's close of
  the loser arrives before the winner opened here, the peer stays connected
  for up to QUIC_HANDSHAKE_TIMEOUT_S and sends wait for the winner.
- Backpressure, not loss, on the way in: events wait in ``events``, a
  ``FairInbox`` with a queue per sender, taken in turns (a client's request
  waits behind one event of each busy peer, not behind their whole backlog).
  When the runtime falls behind, the inbox fills up to INCOMING_QUEUE_ITEMS_MAX
  and the connections of the senders with a backlog there stop reading from
  aioquic, which stops acknowledging and granting flow-control credit, so
  those peers slow down; a sender with fewer than
  INCOMING_QUEUE_ITEMS_PER_SENDER_MIN events waiting (a client) is still
  read. Memory stays bounded by the QUIC windows.
- Incoming payloads above PEER_FRAMES_PER_SECOND_MAX per connection are
  dropped and counted; the protocol above retransmits.
- Log lines are structlog key-value events; keys appear as 16 hex digits of
  the public key. The node key's seed is never logged.
"""

from __future__ import annotations

import enum
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field

import structlog
import trio
from aioquic._buffer import Buffer  # aioquic.buffer re-exports it implicitly
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from node.crypto import NodeKey, make_certificate
from node.limits import (
    API_FRAME_BYTES_MAX,
    CONNECTIONS_MAX,
    DATAGRAMS_PER_WAKE_MAX,
    PEER_SEND_QUEUE_BYTES_MAX,
    QUIC_CLOSE_LINGER_S,
    QUIC_CONCURRENT_HANDSHAKES_MAX,
    QUIC_HANDSHAKE_TIMEOUT_S,
    QUIC_MAX_DATAGRAM_BYTES,
    QUIC_SHUTDOWN_TIMEOUT_S,
    RECONNECT_BACKOFF_INITIAL_S,
    RECONNECT_BACKOFF_MAX_S,
    UDP_SEND_TIMEOUT_S,
)
from node.net.base import (
    ConnectError,
    PeerDown,
    PeerStatus,
    PeerUp,
    Received,
    TransportEvent,
    payload_is_valid,
)
from node.net.fair_inbox import FairInbox
from node.net.framing import LENGTH_PREFIX_BYTES, encode_frame
from node.net.quic_link import (
    HELLO_FRAME,
    STREAM_ID,
    CloseCode,
    Link,
    LinkState,
    NodeQuicConnection,
    make_configuration,
)
from node.net.quic_support import (
    describe_failure,
    format_address,
    open_udp_socket,
    short,
)
from node.nurseries import collapse_single_exception_group

__all__ = ["QuicEndpoint", "open_quic_endpoint"]

_DATAGRAM_RECEIVE_BYTES = 2048  # above QUIC_MAX_DATAGRAM_BYTES of any of our peers
assert QUIC_MAX_DATAGRAM_BYTES < _DATAGRAM_RECEIVE_BYTES


class Enqueued(enum.Enum):
    SENT = "sent"
    NOT_CONNECTED = "not-connected"
    QUEUE_FULL = "queue-full"


@dataclass
class _Peer:
    key: bytes
    dialed: bool
    active: Link | None = None
    since_s: float | None = None
    ever_up: bool = False
    dropped_payloads: int = 0
    throttled_payloads: int = 0
    reconnects: int = 0
    changed: trio.Event = field(default_factory=trio.Event)
    # Switching: the peer closed our active connection as a duplicate, so it
    # kept another one that has not opened on our side yet. Until it does (or
    # QUIC_HANDSHAKE_TIMEOUT_S passes) the peer counts as connected, and the
    # frames it had not acknowledged, and new sends, wait in ``carried``.
    switching: bool = False
    switch_episode: int = 0
    carried: list[bytes] = field(default_factory=list)
    carried_bytes: int = 0

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class QuicEndpoint:
    """A node's QUIC transport. Create it with ``open_quic_endpoint``."""

    def __init__(
        self,
        key: NodeKey,
        name: str,
        sock: trio.socket.SocketType,
        authorize: Callable[[bytes], bool],
        *,
        accept_incoming: bool,
    ) -> None:
        certificate, private_key = make_certificate(key, name)
        self._public_key = key.public_key
        self._server_configuration = make_configuration(certificate, private_key, is_client=False)
        self._client_configuration = make_configuration(certificate, private_key, is_client=True)
        self._cid_bytes = self._server_configuration.connection_id_length
        self._sock = sock
        # The same socket without trio's checkpoint per call: datagrams already
        # queued are read, and datagrams the kernel takes at once are sent, in
        # one go (trio's socket is for waiting). Closed by ``close``.
        self._raw = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
        self._raw.setblocking(False)
        self._family = sock.family
        self._authorize = authorize
        self._accept_incoming = accept_incoming
        self._routes: dict[bytes, Link] = {}
        self._links: set[Link] = set()
        self._peers: dict[bytes, _Peer] = {}
        self.events = FairInbox()
        self._handshake_limiter = trio.CapacityLimiter(QUIC_CONCURRENT_HANDSHAKES_MAX)
        self._random = random.Random()  # backoff jitter only
        self._nursery: trio.Nursery | None = None
        self._unflushed: dict[Link, None] = {}  # written by send_nowait, in order
        self._flush_wanted = trio.Event()
        self._log = structlog.get_logger().bind(node=name, key=short(self._public_key))
        self.refused_connections = 0  # CONNECTIONS_MAX reached
        self.violations = 0  # connections closed for breaking the protocol

    # --- the Transport interface ---------------------------------------------

    @property
    def local_address(self) -> tuple[str, int]:
        address = self._sock.getsockname()
        return (str(address[0]), int(address[1]))

    def send_nowait(self, peer_key: bytes, payload: bytes) -> bool:
        """Write ``payload`` into the peer's stream; it leaves at ``flush``."""
        return self.enqueue(peer_key, payload, transmit=False) is Enqueued.SENT

    def flush(self) -> None:
        """Transmit now what ``send_nowait`` wrote since the last flush."""
        if not self._unflushed:
            return
        links, self._unflushed = self._unflushed, {}
        now = trio.current_time()
        for link in links:
            if link.unsent or link.state is not LinkState.OPEN:
                link.wake.set()  # its task sends (in order) or closes
                continue
            datagrams = link.quic.datagrams_to_send(now)
            for cid in link.quic.issued_connection_ids():
                self._add_route(cid, link)  # before the peer may use it
            for index, (data, address) in enumerate(datagrams):
                try:
                    self._raw.sendto(data, address)
                except BlockingIOError:  # the kernel's buffer is full: the task waits
                    link.unsent.extend(datagrams[index:])
                    link.wake.set()
                    break
                except OSError as error:  # QUIC retransmits what is lost here
                    self._log.debug("quic.send_error", error=str(error))
                    break
            link.rearm()

    async def _flush_loop(self) -> None:
        """Flush for a sender that did not: at the first scheduler turn after a send."""
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted = trio.Event()
            self.flush()

    def statuses(self) -> list[PeerStatus]:
        return [
            PeerStatus(
                peer_key=peer.key,
                connected=peer.active is not None or peer.switching,
                since_s=peer.since_s,
                queued_bytes=peer.carried_bytes
                if peer.active is None
                else peer.active.quic.send_backlog_bytes(),
                dropped_payloads=peer.dropped_payloads,
                reconnects=peer.reconnects,
                throttled_payloads=peer.throttled_payloads,
            )
            for peer in self._peers.values()
        ]

    def enqueue(self, peer_key: bytes, payload: bytes, *, transmit: bool = True) -> Enqueued:
        """``send_nowait`` with the reason for a refusal; with ``transmit`` the
        connection's task sends it at the caller's next yield, without a flush."""
        assert payload_is_valid(payload, API_FRAME_BYTES_MAX), len(payload)
        peer = self._peers.get(peer_key)
        if peer is None:
            return Enqueued.NOT_CONNECTED
        link = peer.active
        frame_bytes = LENGTH_PREFIX_BYTES + len(payload)
        if link is None and peer.switching:
            if peer.carried_bytes + frame_bytes > PEER_SEND_QUEUE_BYTES_MAX:
                peer.dropped_payloads += 1
                return Enqueued.QUEUE_FULL
            peer.carried.append(encode_frame(payload))
            peer.carried_bytes += frame_bytes
            return Enqueued.SENT
        if link is None:
            peer.dropped_payloads += 1
            return Enqueued.NOT_CONNECTED
        if link.quic.send_backlog_bytes() + frame_bytes > PEER_SEND_QUEUE_BYTES_MAX:
            if peer.dropped_payloads & (peer.dropped_payloads - 1) == 0:  # 0, 1, 2, 4...
                self._log.warning(
                    "quic.send_queue_full", peer=short(peer_key), dropped=peer.dropped_payloads
                )
            peer.dropped_payloads += 1
            return Enqueued.QUEUE_FULL
        link.write(encode_frame(payload), wake=transmit)
        if not transmit:
            if not self._unflushed:
                self._flush_wanted.set()
            self._unflushed[link] = None
        return Enqueued.SENT

    # --- services --------------------------------------------------------------

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(self._receive_loop)
        nursery.start_soon(self._flush_loop)

    def dial_forever(self, peer_key: bytes, address: tuple[str, int]) -> None:
        assert self._nursery is not None
        self._peer(peer_key, dialed=True)
        self._nursery.start_soon(self._dial_loop, peer_key, address)

    async def connect_once(
        self, peer_key: bytes, address: tuple[str, int], timeout_s: float
    ) -> Link:
        """Dial once and wait for the link to open; ConnectError otherwise."""
        where = format_address(address)
        resolved = await self._resolve(address, timeout_s)
        if resolved is None:
            raise ConnectError(f"cannot resolve node address {where}")
        self._peer(peer_key, dialed=True)
        link = self._start_dial(peer_key, resolved, timeout_s)
        if link is None:
            raise ConnectError(f"cannot dial {where}: too many connections")
        await link.settled.wait()  # the link task enforces the handshake deadline
        if link.state is LinkState.OPEN:
            return link
        raise ConnectError(describe_failure(link, where))

    async def stop(self) -> None:
        """Close every connection (within a bound, even when cancelled), end the
        ``events`` channel, and cancel the endpoint's tasks."""
        with trio.CancelScope(shield=True), trio.move_on_after(QUIC_SHUTDOWN_TIMEOUT_S):
            await self.close_all()
        self.events.close()
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def close_all(self) -> None:
        """Close every connection and send the CONNECTION_CLOSE frames once."""
        now = trio.current_time()
        for link in list(self._links):
            self._close_link(link, CloseCode.SHUTDOWN, "node shutting down")
            for data, address in link.quic.datagrams_to_send(now):
                try:
                    await self._sock.sendto(data, address)
                except OSError:
                    break

    # --- receiving ---------------------------------------------------------------

    def close(self) -> None:
        """Release the endpoint's second handle on the socket."""
        self._raw.close()

    async def _receive_loop(self) -> None:
        # The one await without a deadline: a listener waits for datagrams forever.
        while True:
            try:
                data, address = await self._sock.recvfrom(_DATAGRAM_RECEIVE_BYTES)
            except OSError as error:  # e.g. ICMP errors reported on some systems
                self._log.debug("quic.receive_error", error=str(error))
                await trio.sleep(0.01)
                continue
            self._datagram_received(data, address)
            # Then what else is queued, up to a bound: each connection task wakes
            # once for all of its datagrams, and acknowledges them together.
            for _ in range(DATAGRAMS_PER_WAKE_MAX):
                try:
                    data, address = self._raw.recvfrom(_DATAGRAM_RECEIVE_BYTES)
                except OSError:  # BlockingIOError: nothing queued; others: next await
                    break
                self._datagram_received(data, address)

    def _datagram_received(self, data: bytes, address: NetworkAddress) -> None:
        now = trio.current_time()
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=self._cid_bytes)
        except ValueError:
            return
        link = self._routes.get(header.destination_cid)
        if link is None:
            link = self._accept(header.destination_cid, header.packet_type, header.version, data)
            if link is None:
                return
            link.address = address  # for logs; aioquic tracks the path itself
        link.datagram_received(data, address, now)

    def _accept(
        self, destination_cid: bytes, packet_type: QuicPacketType, version: int | None, data: bytes
    ) -> Link | None:
        if (
            not self._accept_incoming
            or packet_type is not QuicPacketType.INITIAL
            or len(data) < SMALLEST_MAX_DATAGRAM_SIZE
            or version not in self._server_configuration.supported_versions
        ):
            return None
        if len(self._links) >= CONNECTIONS_MAX:
            self.refused_connections += 1
            if self.refused_connections & (self.refused_connections - 1) == 0:
                self._log.warning("quic.connections_full", refused=self.refused_connections)
            return None
        quic = NodeQuicConnection(
            configuration=self._server_configuration,
            original_destination_connection_id=destination_cid,
        )
        link = Link(
            quic,
            is_dialer=False,
            expected_key=None,
            address=None,
            handshake_timeout_s=QUIC_HANDSHAKE_TIMEOUT_S,
        )
        self._add_link(link, destination_cid)
        return link

    # --- dialing -----------------------------------------------------------------

    async def _resolve(self, address: tuple[str, int], timeout_s: float) -> NetworkAddress | None:
        with trio.move_on_after(timeout_s):
            try:
                infos = await trio.socket.getaddrinfo(
                    address[0], address[1], family=self._family, type=socket.SOCK_DGRAM
                )
            except OSError:
                return None
            return infos[0][4] if infos else None
        return None

    def _start_dial(
        self, peer_key: bytes, address: NetworkAddress, timeout_s: float
    ) -> Link | None:
        if len(self._links) >= CONNECTIONS_MAX:
            return None
        quic = NodeQuicConnection(configuration=self._client_configuration)
        link = Link(
            quic,
            is_dialer=True,
            expected_key=peer_key,
            address=address,
            handshake_timeout_s=timeout_s,
        )
        self._add_link(link, None)
        return link

    async def _dial_loop(self, peer_key: bytes, address: tuple[str, int]) -> None:
        peer = self._peers[peer_key]
        backoff_s = RECONNECT_BACKOFF_INITIAL_S
        where = format_address(address)
        while True:
            while peer.active is not None or peer.switching:
                await peer.changed.wait()
            resolved = await self._resolve(address, QUIC_HANDSHAKE_TIMEOUT_S)
            link = None
            if resolved is not None:
                link = self._start_dial(peer_key, resolved, QUIC_HANDSHAKE_TIMEOUT_S)
            if link is not None:
                self._log.debug("quic.dial", peer=short(peer_key), address=where)
                await link.settled.wait()
            if link is not None and link.state is LinkState.OPEN:
                backoff_s = RECONNECT_BACKOFF_INITIAL_S
                while peer.active is not None or peer.switching:
                    await peer.changed.wait()
            elif peer.active is None:
                reason = "cannot resolve" if resolved is None else "no free connection"
                if link is not None:
                    reason = describe_failure(link, where)
                self._log.info(
                    "quic.dial_failed", peer=short(peer_key), address=where, reason=reason
                )
                backoff_s = min(backoff_s * 2, RECONNECT_BACKOFF_MAX_S)
            # Jitter keeps two nodes that lost each other from redialing in lockstep.
            delay_s = backoff_s * self._random.uniform(0.5, 1.0)
            self._log.debug("quic.reconnect_scheduled", peer=short(peer_key), delay_s=delay_s)
            await trio.sleep(delay_s)

    # --- one connection's task --------------------------------------------------

    def _add_link(self, link: Link, original_cid: bytes | None) -> None:
        assert self._nursery is not None
        self._links.add(link)
        if original_cid is not None:
            self._add_route(original_cid, link)
        self._add_route(link.quic.host_cid, link)
        self._nursery.start_soon(self._run_link, link)

    async def _run_link(self, link: Link) -> None:
        try:
            async with self._handshake_limiter:
                link.admit(trio.current_time())
                if not link.quic.has_network_path:
                    return  # the first datagram held no valid packet
                with trio.move_on_after(link.handshake_timeout_s):
                    await self._drive(link, lambda: link.settled.is_set())
            if not link.settled.is_set():
                self._close_link(link, CloseCode.HANDSHAKE_TIMEOUT, "handshake timeout")
            await self._drive(link, lambda: link.state is LinkState.CLOSING)
            with trio.move_on_after(QUIC_CLOSE_LINGER_S):
                await self._drive(link, lambda: link.terminated)
        finally:
            self._forget(link)

    async def _drive(self, link: Link, done: Callable[[], bool]) -> None:
        while not (done() or link.terminated):
            if not link.wake.is_set():
                with trio.move_on_at(link.next_deadline()) as link.sleep_scope:
                    await link.wake.wait()
                link.sleep_scope = None
            link.wake = trio.Event()
            now = trio.current_time()
            link.handle_timers(now)
            link.forget_acknowledged()  # frames kept for a replacement: only the unacked
            if (
                link.state is LinkState.OPEN
                and link.peer_key is not None
                and self.events.must_wait(link.peer_key)
            ):
                await self.events.wait_for_room(link.peer_key)  # backpressure: stop reading
                now = trio.current_time()
            self._handle_quic_events(link, now)
            await self._transmit(link, now)
            link.notify_space(PEER_SEND_QUEUE_BYTES_MAX)

    async def _transmit(self, link: Link, now: float) -> None:
        # After what an earlier flush could not send: datagrams leave in order.
        link.unsent.extend(link.quic.datagrams_to_send(now))
        # Sending can issue connection ids: route them before the peer may use them.
        self._handle_quic_events(link, now)
        unsent = link.unsent
        with trio.move_on_after(UDP_SEND_TIMEOUT_S):
            while unsent:  # a flush while we wait for room adds to it
                data, address = unsent[0]
                try:
                    try:
                        self._raw.sendto(data, address)
                    except BlockingIOError:  # the kernel's buffer is full: wait for room
                        await self._sock.sendto(data, address)
                except OSError as error:  # QUIC retransmits what is lost here
                    self._log.debug("quic.send_error", error=str(error))
                    break
                unsent.popleft()
        unsent.clear()  # not sent in time, or failed: QUIC retransmits

    def _forget(self, link: Link) -> None:
        self._on_link_closing(link, link.close_reason or "connection ended", by_peer=False)
        self._links.discard(link)
        for cid in link.cids:
            if self._routes.get(cid) is link:
                del self._routes[cid]
        link.cids.clear()
        link.terminated = True
        peer = self._peers.get(link.peer_key) if link.peer_key is not None else None
        if (
            peer is not None
            and not peer.dialed
            and peer.active is None
            and not peer.switching
            and not any(other.peer_key == peer.key for other in self._links)
        ):
            del self._peers[peer.key]  # forget clients that went away: bounded memory

    def _add_route(self, cid: bytes, link: Link) -> None:
        self._routes[cid] = link
        link.cids.add(cid)

    # --- aioquic events ------------------------------------------------------------

    def _handle_quic_events(self, link: Link, now: float) -> None:
        quic = link.quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                self._on_stream_data(link, event, now)
            elif isinstance(event, ConnectionIdIssued):
                self._add_route(event.connection_id, link)
            elif isinstance(event, ConnectionIdRetired):
                if self._routes.get(event.connection_id) is link:
                    del self._routes[event.connection_id]
                link.cids.discard(event.connection_id)
            elif isinstance(event, HandshakeCompleted):
                self._on_handshake_completed(link)
            elif isinstance(event, StreamReset | StopSendingReceived):
                self._violation(link, "stream reset by peer")
            elif isinstance(event, ConnectionTerminated):
                link.terminated = True
        close_event = quic.close_event
        if close_event is not None and link.state is not LinkState.CLOSING:
            reason = close_event.reason_phrase or f"error code {close_event.error_code}"
            self._on_link_closing(link, reason, by_peer=quic.is_draining)

    def _on_handshake_completed(self, link: Link) -> None:
        key = link.quic.peer_public_key()
        if link.is_dialer:
            if key != link.expected_key:
                self._close_link(
                    link,
                    CloseCode.KEY_MISMATCH,
                    f"node key mismatch: expected {short(link.expected_key)}, got {short(key)}",
                )
                return
            link.peer_key = key
            link.state = LinkState.AWAIT_HELLO
            link.write(HELLO_FRAME)
        elif key is None:
            self._close_link(link, CloseCode.REFUSED, "no client certificate")
        elif not self._authorize(key):
            link.peer_key = key
            self._close_link(link, CloseCode.REFUSED, "key not authorized")
        else:
            link.peer_key = key
            link.state = LinkState.AWAIT_HELLO

    def _on_stream_data(self, link: Link, event: StreamDataReceived, now: float) -> None:
        if link.state is LinkState.CLOSING:
            return
        if link.state is LinkState.HANDSHAKE or event.stream_id != STREAM_ID:
            self._violation(link, f"unexpected data on stream {event.stream_id}")
            return
        frames = link.decoder.feed(event.data)
        for frame in frames:
            if link.state is LinkState.AWAIT_HELLO:
                if frame:
                    self._violation(link, "payload before hello")
                    return
                if not link.is_dialer:
                    link.write(HELLO_FRAME)
                self._on_link_open(link, now)
            elif link.state is not LinkState.OPEN:
                return  # closed as a duplicate while reading
            elif frame:
                self._deliver(link, frame, now)
        if link.decoder.error is not None:
            self._violation(link, link.decoder.error)
        elif event.end_stream:
            self._violation(link, "stream finished by peer")

    def _deliver(self, link: Link, payload: bytes, now: float) -> None:
        assert link.bucket is not None and link.peer_key is not None
        if not link.bucket.take(now):
            link.throttled_payloads += 1
            peer = self._peers[link.peer_key]
            peer.throttled_payloads += 1
            if link.throttled_payloads & (link.throttled_payloads - 1) == 0:
                self._log.warning(
                    "quic.peer_throttled",
                    peer=short(link.peer_key),
                    throttled=peer.throttled_payloads,
                )
            return
        self._emit(Received(link.peer_key, payload))

    def _on_link_open(self, link: Link, now: float) -> None:
        assert link.peer_key is not None
        link.open(now)
        peer = self._peer(link.peer_key, dialed=False)
        current = peer.active
        if current is not None and not self._new_link_wins(current, link, now):
            self._close_link(link, CloseCode.DUPLICATE, "duplicate connection")
            return
        if current is not None:
            # Read what already arrived on the old connection (which may close
            # it), then, in a simultaneous dial (the two connections dialed by
            # the two sides, the old one young), carry what the peer has not
            # acknowledged on it over to the new one: the replacement loses
            # nothing, and the peer does the same on its side. Never when the
            # peer redialed: the new connection may be another process (a
            # restarted node, a new client session with the same key).
            self._handle_quic_events(current, now)
        carried: list[bytes] | None = None  # None: not a replacement
        if current is not None and peer.active is current:
            assert current.opened_s is not None
            race = current.is_dialer != link.is_dialer
            race = race and now - current.opened_s <= QUIC_HANDSHAKE_TIMEOUT_S
            carried = current.unacknowledged_frames() if race else []
        elif peer.switching:
            carried = self._end_switch(peer)
        peer.active = link
        if carried is not None:
            if current is not None:  # a no-op when it is closing already
                self._close_link(current, CloseCode.DUPLICATE, "replaced by another connection")
            for frame in carried:
                link.write(frame)
            self._log.info(
                "quic.connection_replaced",
                peer=short(peer.key),
                dialed=link.is_dialer,
                carried=len(carried),
            )
            return
        peer.since_s = now
        if peer.ever_up:
            peer.reconnects += 1
        peer.ever_up = True
        self._log.info(
            "quic.connected",
            peer=short(peer.key),
            address=format_address(link.address),
            dialed=link.is_dialer,
            reconnects=peer.reconnects,
        )
        self._emit(PeerUp(peer.key))
        peer.notify()

    def _end_switch(self, peer: _Peer) -> list[bytes]:
        """Leave the switching state; returns the carried frames."""
        carried = peer.carried
        peer.switching = False
        peer.carried = []
        peer.carried_bytes = 0
        return carried

    async def _switch_deadline(self, peer: _Peer, episode: int) -> None:
        await trio.sleep(QUIC_HANDSHAKE_TIMEOUT_S)
        if not peer.switching or peer.switch_episode != episode:
            return
        peer.dropped_payloads += len(self._end_switch(peer))
        peer.since_s = trio.current_time()
        reason = "the connection that replaced it never opened"
        self._log.info("quic.disconnected", peer=short(peer.key), reason=reason, by_peer=True)
        self._emit(PeerDown(peer.key))
        peer.notify()
        forgettable = not peer.dialed and self._peers.get(peer.key) is peer
        if forgettable and not any(other.peer_key == peer.key for other in self._links):
            del self._peers[peer.key]  # a client that went away: bounded memory, as in _forget

    def _new_link_wins(self, current: Link, new: Link, now: float) -> bool:
        """The same choice on both sides of a simultaneous dial."""
        assert current.opened_s is not None
        if now - current.opened_s > QUIC_HANDSHAKE_TIMEOUT_S:
            return True  # not a race: the peer redialed, so it lost the old one
        new_dialer = new.dialer_key or self._public_key
        current_dialer = current.dialer_key or self._public_key
        return new_dialer <= current_dialer

    def _violation(self, link: Link, reason: str) -> None:
        self.violations += 1
        self._close_link(link, CloseCode.PROTOCOL_VIOLATION, reason)

    def _close_link(self, link: Link, code: CloseCode, reason: str) -> None:
        if link.state is LinkState.CLOSING:
            return
        link.quic.close(error_code=code, reason_phrase=reason)
        link.close_code = code
        self._on_link_closing(link, reason, by_peer=False)
        link.wake.set()

    def _on_link_closing(self, link: Link, reason: str, *, by_peer: bool) -> None:
        if link.state is LinkState.CLOSING:
            return
        previous = link.state
        link.state = LinkState.CLOSING
        link.close_reason = reason
        link.closed_by_peer = by_peer
        link.settled.set()
        link.notify_space(PEER_SEND_QUEUE_BYTES_MAX)
        peer = self._peers.get(link.peer_key) if link.peer_key is not None else None
        if peer is not None and peer.active is link:
            close_event = link.quic.close_event
            duplicate = (
                close_event is not None
                and close_event.frame_type is None  # an application close, not QUIC's own
                and close_event.error_code == CloseCode.DUPLICATE
            )
            peer.active = None
            winner_coming = any(
                other is not link
                and other.peer_key == peer.key
                and other.state is not LinkState.CLOSING
                for other in self._links
            )
            if by_peer and duplicate and winner_coming and self._nursery is not None:
                # The peer kept a connection we have not opened yet: carry over.
                peer.carried = link.unacknowledged_frames()
                peer.carried_bytes = sum(map(len, peer.carried))
                peer.switching = True
                peer.switch_episode += 1
                self._nursery.start_soon(self._switch_deadline, peer, peer.switch_episode)
                self._log.debug("quic.connection_switching", peer=short(peer.key))
                return
            peer.since_s = trio.current_time()
            self._log.info(
                "quic.disconnected",
                peer=short(peer.key),
                reason=reason,
                by_peer=by_peer,
                dropped=peer.dropped_payloads,
                throttled=peer.throttled_payloads,
            )
            self._emit(PeerDown(peer.key))
            peer.notify()
        elif previous is not LinkState.OPEN:
            refused = by_peer or link.close_code in (CloseCode.REFUSED, CloseCode.KEY_MISMATCH)
            self._log.info(
                "quic.handshake_refused" if refused else "quic.handshake_failed",
                peer=short(link.peer_key or link.expected_key),
                address=format_address(link.address) if link.address else None,
                reason=reason,
                by_peer=by_peer,
            )

    def _peer(self, key: bytes, *, dialed: bool) -> _Peer:
        peer = self._peers.get(key)
        if peer is None:
            peer = self._peers[key] = _Peer(key=key, dialed=dialed)
        elif dialed:
            peer.dialed = True
        return peer

    # --- events to the runtime ------------------------------------------------------

    def _emit(self, event: TransportEvent) -> None:
        self.events.put(event.peer_key, event)


@asynccontextmanager
async def open_quic_endpoint(
    key: NodeKey,
    name: str,
    listen: tuple[str, int],
    dial: Mapping[bytes, tuple[str, int]],
    authorize: Callable[[bytes], bool],
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> AsyncIterator[QuicEndpoint]:
    """Listen on ``listen``, keep links to ``dial`` up, accept keys ``authorize`` allows.

    The UDP socket is bound before this yields (``task_status.started`` gets
    the bound address). On exit every connection is closed with a
    CONNECTION_CLOSE, then the endpoint's tasks are cancelled.
    """
    sock = await open_udp_socket(listen)
    with sock:
        endpoint = QuicEndpoint(key, name, sock, authorize, accept_incoming=True)
        with closing(endpoint), collapse_single_exception_group():
            async with trio.open_nursery() as nursery:
                endpoint.start(nursery)
                for peer_key, address in dial.items():
                    if peer_key != key.public_key:
                        endpoint.dial_forever(peer_key, address)
                endpoint._log.info("quic.listening", address=format_address(endpoint.local_address))
                task_status.started(endpoint.local_address)
                try:
                    yield endpoint
                finally:
                    await endpoint.stop()
