"""An in-memory network of transports for tests and simulations.

Rules:
- Deterministic for a seed: all randomness comes from one ``random.Random(seed)``
  drawn in the order of ``send_nowait`` calls; time is ``trio.current_time()``,
  so the network runs under ``trio.testing.MockClock``. Payloads due at the
  same instant are delivered in the order they were sent (a sequence number
  breaks ties); nothing reads the wall clock or ``os.urandom``.
- Nothing is delivered inside ``send_nowait``: ``run()`` delivers each payload
  when its delay has passed, even a zero delay, as a real network would.
- Faults are per direction: ``loss`` and ``duplicate`` are probabilities per
  payload, each copy gets its own delay drawn uniformly from ``delay_ms``, so
  random delays reorder. A duplicate shares nothing with the original.
- ``cut`` takes a link down (PeerDown on both sides) and loses what is in
  flight; ``heal`` brings it back (PeerUp on both sides). A one-way cut
  (``both_ways=False``) silently loses that direction's payloads, in flight
  and later, without events, as a real network would until a timeout.
- Like the QUIC transport, sends are refused (False, counted) when the link is
  down or the bytes in flight towards the peer would pass
  PEER_SEND_QUEUE_BYTES_MAX. Unlike it, a receiver whose ``events`` channel
  is nearly full drops incoming payloads and counts them (a simulation must
  not stall the whole network for one slow node); PeerUp / PeerDown keep
  CONTROL_EVENTS_RESERVED slots and are never dropped.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass

import trio

from node.limits import API_FRAME_BYTES_MAX, INCOMING_QUEUE_ITEMS_MAX, PEER_SEND_QUEUE_BYTES_MAX
from node.net.base import (
    PeerDown,
    PeerStatus,
    PeerUp,
    Received,
    TransportEvent,
    payload_is_valid,
)

CONTROL_EVENTS_RESERVED = 64  # channel slots kept for PeerUp / PeerDown
assert CONTROL_EVENTS_RESERVED < INCOMING_QUEUE_ITEMS_MAX


@dataclass
class _Direction:
    """Faults and counters of one direction (sender -> receiver) of a link."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (0, 0)
    cut: bool = False  # one-way cut: payloads vanish silently
    generation: int = 0  # bumped by a cut; older payloads in flight are lost
    in_flight_bytes: int = 0


@dataclass
class _Pair:
    up: bool = True


@dataclass
class _PeerCounters:
    connected: bool = False
    since_s: float | None = None
    dropped_payloads: int = 0
    reconnects: int = 0


@dataclass(frozen=True)
class _Flight:
    sender: bytes
    receiver: bytes
    payload: bytes
    generation: int


class MemoryEndpoint:
    """One node's transport on a ``MemoryNetwork``; implements ``Transport``."""

    def __init__(self, network: MemoryNetwork, key: bytes) -> None:
        self.key = key
        self._network = network
        events_send, events_receive = trio.open_memory_channel[TransportEvent](
            INCOMING_QUEUE_ITEMS_MAX
        )
        self._events_send = events_send
        self.events: trio.MemoryReceiveChannel[TransportEvent] = events_receive
        self._peers: dict[bytes, _PeerCounters] = {}

    def send_nowait(self, peer_key: bytes, payload: bytes) -> bool:
        assert payload_is_valid(payload, API_FRAME_BYTES_MAX), len(payload)
        return self._network._send(self.key, peer_key, payload)

    def flush(self) -> None:
        """Nothing to do: the network delivers on its own schedule."""

    def statuses(self) -> list[PeerStatus]:
        return [
            PeerStatus(
                peer_key=peer_key,
                connected=counters.connected,
                since_s=counters.since_s,
                queued_bytes=self._network._in_flight_bytes(self.key, peer_key),
                dropped_payloads=counters.dropped_payloads,
                reconnects=counters.reconnects,
            )
            for peer_key, counters in self._peers.items()
        ]

    def _counters(self, peer_key: bytes) -> _PeerCounters:
        counters = self._peers.get(peer_key)
        if counters is None:
            counters = self._peers[peer_key] = _PeerCounters()
        return counters

    def _set_connected(self, peer_key: bytes, connected: bool) -> None:
        counters = self._counters(peer_key)
        if counters.connected == connected:
            return
        if connected and counters.since_s is not None:
            counters.reconnects += 1
        counters.connected = connected
        counters.since_s = trio.current_time()
        event: TransportEvent = PeerUp(peer_key) if connected else PeerDown(peer_key)
        try:
            self._events_send.send_nowait(event)
        except trio.WouldBlock:
            raise AssertionError(
                f"events of {self.key.hex()[:16]} not read: {CONTROL_EVENTS_RESERVED} "
                "link changes queued behind a full channel"
            ) from None
        except trio.BrokenResourceError:
            pass  # the node stopped reading for good

    def _receive(self, peer_key: bytes, payload: bytes) -> bool:
        statistics = self._events_send.statistics()
        free = statistics.max_buffer_size - statistics.current_buffer_used
        if free <= CONTROL_EVENTS_RESERVED:
            self._counters(peer_key).dropped_payloads += 1
            return False
        try:
            self._events_send.send_nowait(Received(peer_key, payload))
        except trio.BrokenResourceError:
            return False
        return True


class MemoryNetwork:
    """Endpoints that reach each other through seeded, faulty, in-memory links."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._random = random.Random(seed)
        self._endpoints: dict[bytes, MemoryEndpoint] = {}
        self._pairs: dict[frozenset[bytes], _Pair] = {}
        self._directions: dict[tuple[bytes, bytes], _Direction] = {}
        self._in_flight: list[tuple[float, int, _Flight]] = []
        self._sequence = itertools.count()
        self._sleep_scope: trio.CancelScope | None = None
        self.sent_payloads = 0  # accepted by send_nowait
        self.lost_payloads = 0  # by loss, a cut, or a one-way cut
        self.duplicated_payloads = 0  # extra copies created
        self.delivered_payloads = 0  # handed to a receiver's events channel
        self.overflow_payloads = 0  # dropped at a receiver's full channel

    def endpoint(self, key: bytes) -> MemoryEndpoint:
        assert key not in self._endpoints, "one endpoint per key"
        endpoint = self._endpoints[key] = MemoryEndpoint(self, key)
        return endpoint

    def link(self, a: bytes, b: bytes) -> None:
        """Let ``a`` and ``b`` talk; both get PeerUp."""
        assert a != b and a in self._endpoints and b in self._endpoints
        if frozenset((a, b)) not in self._pairs:
            self._pairs[frozenset((a, b))] = _Pair(up=False)
        self.heal(a, b)

    def set_faults(
        self,
        a: bytes,
        b: bytes,
        *,
        loss: float = 0,
        duplicate: float = 0,
        delay_ms: tuple[int, int] = (0, 0),
    ) -> None:
        """Faults of the direction a -> b, for payloads sent from now on."""
        assert 0 <= loss <= 1 and 0 <= duplicate <= 1
        assert 0 <= delay_ms[0] <= delay_ms[1]
        direction = self._direction(a, b)
        direction.loss = loss
        direction.duplicate = duplicate
        direction.delay_ms = delay_ms

    def cut(self, a: bytes, b: bytes, *, both_ways: bool = True) -> None:
        """Take the link down: payloads in flight are lost."""
        pair = self._pairs[frozenset((a, b))]
        directions = [(a, b), (b, a)] if both_ways else [(a, b)]
        for sender, receiver in directions:
            direction = self._direction(sender, receiver)
            direction.generation += 1
            if not both_ways:
                direction.cut = True
        if both_ways and pair.up:
            pair.up = False
            self._endpoints[a]._set_connected(b, False)
            self._endpoints[b]._set_connected(a, False)

    def heal(self, a: bytes, b: bytes) -> None:
        """Bring the link back in both directions; PeerUp if it was down."""
        pair = self._pairs[frozenset((a, b))]
        self._direction(a, b).cut = False
        self._direction(b, a).cut = False
        if not pair.up:
            pair.up = True
            self._endpoints[a]._set_connected(b, True)
            self._endpoints[b]._set_connected(a, True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver payloads when due, forever; start it in the test's nursery."""
        task_status.started()
        while True:
            now = trio.current_time()
            while self._in_flight and self._in_flight[0][0] <= now:
                _, _, flight = heapq.heappop(self._in_flight)
                self._deliver(flight)
            next_s = self._in_flight[0][0] if self._in_flight else math.inf
            with trio.CancelScope(deadline=next_s) as scope:
                self._sleep_scope = scope
                await trio.sleep_forever()
            self._sleep_scope = None

    # --- internals ----------------------------------------------------------------

    def _direction(self, sender: bytes, receiver: bytes) -> _Direction:
        direction = self._directions.get((sender, receiver))
        if direction is None:
            direction = self._directions[(sender, receiver)] = _Direction()
        return direction

    def _in_flight_bytes(self, sender: bytes, receiver: bytes) -> int:
        direction = self._directions.get((sender, receiver))
        return 0 if direction is None else direction.in_flight_bytes

    def _send(self, sender: bytes, receiver: bytes, payload: bytes) -> bool:
        counters = self._endpoints[sender]._counters(receiver)
        pair = self._pairs.get(frozenset((sender, receiver)))
        direction = self._direction(sender, receiver)
        if pair is None or not pair.up:
            counters.dropped_payloads += 1
            return False
        if direction.in_flight_bytes + len(payload) > PEER_SEND_QUEUE_BYTES_MAX:
            counters.dropped_payloads += 1
            return False
        self.sent_payloads += 1
        if direction.cut or (direction.loss and self._random.random() < direction.loss):
            self.lost_payloads += 1
            return True
        copies = 1
        if direction.duplicate and self._random.random() < direction.duplicate:
            copies = 2
            self.duplicated_payloads += 1
        now = trio.current_time()
        low_ms, high_ms = direction.delay_ms
        for _ in range(copies):
            delay_ms = self._random.uniform(low_ms, high_ms) if high_ms else 0.0
            due_s = now + delay_ms / 1000
            flight = _Flight(sender, receiver, payload, direction.generation)
            heapq.heappush(self._in_flight, (due_s, next(self._sequence), flight))
            direction.in_flight_bytes += len(payload)
            if self._sleep_scope is not None and due_s < self._sleep_scope.deadline:
                self._sleep_scope.deadline = due_s
        return True

    def _deliver(self, flight: _Flight) -> None:
        direction = self._direction(flight.sender, flight.receiver)
        direction.in_flight_bytes -= len(flight.payload)
        pair = self._pairs[frozenset((flight.sender, flight.receiver))]
        if not pair.up or direction.cut or flight.generation != direction.generation:
            self.lost_payloads += 1
            return
        if self._endpoints[flight.receiver]._receive(flight.sender, flight.payload):
            self.delivered_payloads += 1
        else:
            self.overflow_payloads += 1
