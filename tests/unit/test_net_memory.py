"""The in-memory transport under trio's MockClock: delivery, faults, cuts, determinism."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from node.limits import INCOMING_QUEUE_ITEMS_MAX, PEER_SEND_QUEUE_BYTES_MAX
from node.net.base import PeerDown, PeerUp, Received, Transport, TransportEvent
from node.net.memory import CONTROL_EVENTS_RESERVED, MemoryEndpoint, MemoryNetwork

A = b"\xaa" * 32
B = b"\xbb" * 32
C = b"\xcc" * 32


@asynccontextmanager
async def running(network: MemoryNetwork) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        yield
        nursery.cancel_scope.cancel()


def drain(endpoint: Transport) -> list[TransportEvent]:
    events: list[TransportEvent] = []
    while True:
        try:
            events.append(endpoint.events.receive_nowait())
        except trio.WouldBlock:
            return events


def payloads(events: list[TransportEvent]) -> list[bytes]:
    return [event.payload for event in events if isinstance(event, Received)]


def linked_pair(seed: int) -> tuple[MemoryNetwork, MemoryEndpoint, MemoryEndpoint]:
    network = MemoryNetwork(seed)
    a, b = network.endpoint(A), network.endpoint(B)
    network.link(A, B)
    return network, a, b


async def test_link_delivers_in_order_after_peer_up(autojump_clock: trio.testing.MockClock) -> None:
    network, a, b = linked_pair(seed=1)
    async with running(network):
        assert drain(a) == [PeerUp(B)]
        assert drain(b) == [PeerUp(A)]
        sent = [f"payload {i}".encode() for i in range(500)]
        assert all(a.send_nowait(B, payload) for payload in sent)
        assert drain(b) == []  # nothing is delivered inside send_nowait
        await trio.sleep(0.001)
        assert drain(b) == [Received(A, payload) for payload in sent]
        (status,) = b.statuses()
        assert status.peer_key == A and status.connected and status.dropped_payloads == 0


async def test_send_to_unlinked_peer_is_refused_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network, a, _ = linked_pair(seed=1)
    network.endpoint(C)
    async with running(network):
        assert not a.send_nowait(C, b"hello")
        assert not a.send_nowait(C, b"hello")
        status = next(status for status in a.statuses() if status.peer_key == C)
        assert not status.connected and status.dropped_payloads == 2


async def test_loss_and_duplication_match_the_knobs(autojump_clock: trio.testing.MockClock) -> None:
    network, a, b = linked_pair(seed=42)
    network.set_faults(A, B, loss=0.2, duplicate=0.1)
    count = 3_000  # with duplicates, still below the receiver's channel
    async with running(network):
        for i in range(count):
            assert a.send_nowait(B, i.to_bytes(4, "big"))
        await trio.sleep(0.01)
        received = payloads(drain(b))
    distinct = set(received)
    assert 0.77 * count < len(distinct) < 0.83 * count  # 20% lost
    duplicated = len(received) - len(distinct)
    assert 0.07 * len(distinct) < duplicated < 0.13 * len(distinct)  # 10% doubled
    assert network.lost_payloads == count - len(distinct)
    assert network.duplicated_payloads == duplicated
    assert network.delivered_payloads == len(received)


async def test_delay_stays_in_range_and_reorders(autojump_clock: trio.testing.MockClock) -> None:
    network, a, b = linked_pair(seed=3)
    network.set_faults(A, B, delay_ms=(10, 50))
    delays_s: list[float] = []
    order: list[int] = []
    async with running(network):
        drain(b)
        start_s = trio.current_time()
        for i in range(200):
            assert a.send_nowait(B, i.to_bytes(4, "big"))
        with trio.fail_after(1):
            while len(order) < 200:
                event = await b.events.receive()
                assert isinstance(event, Received)
                order.append(int.from_bytes(event.payload, "big"))
                delays_s.append(trio.current_time() - start_s)
    assert min(delays_s) >= 0.010 and max(delays_s) <= 0.050
    assert sorted(order) == list(range(200))
    assert order != list(range(200))  # random delays reorder
    assert drain(a) == [PeerUp(B)]  # the reverse direction had no faults and no traffic


async def test_cut_loses_in_flight_and_heal_restores(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network, a, b = linked_pair(seed=5)
    network.set_faults(A, B, delay_ms=(100, 100))
    async with running(network):
        drain(a)
        drain(b)
        for i in range(10):
            assert a.send_nowait(B, bytes([i]))
        assert a.statuses()[0].queued_bytes == 10
        await trio.sleep(0.05)
        network.cut(A, B)
        assert drain(a) == [PeerDown(B)]
        assert drain(b) == [PeerDown(A)]
        assert not a.send_nowait(B, b"while cut")
        await trio.sleep(1)
        assert drain(b) == []  # in flight when cut: lost
        assert network.lost_payloads == 10
        assert a.statuses()[0].queued_bytes == 0

        network.heal(A, B)
        assert drain(a) == [PeerUp(B)]
        assert drain(b) == [PeerUp(A)]
        assert a.send_nowait(B, b"after heal")
        await trio.sleep(0.2)
        assert payloads(drain(b)) == [b"after heal"]
        status = a.statuses()[0]
        assert status.connected and status.reconnects == 1 and status.dropped_payloads == 1


async def test_one_way_cut_is_silent_and_loses_that_direction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network, a, b = linked_pair(seed=6)
    async with running(network):
        drain(a)
        drain(b)
        network.cut(A, B, both_ways=False)
        assert a.send_nowait(B, b"into the void")  # the sender cannot tell
        assert b.send_nowait(A, b"still flows")
        await trio.sleep(0.01)
        assert drain(b) == []
        assert drain(a) == [Received(B, b"still flows")]
        network.heal(A, B)
        assert drain(a) == [] and drain(b) == []  # no PeerDown was ever sent
        assert a.send_nowait(B, b"back")
        await trio.sleep(0.01)
        assert payloads(drain(b)) == [b"back"]


async def test_send_queue_is_bounded_in_bytes(autojump_clock: trio.testing.MockClock) -> None:
    network, a, b = linked_pair(seed=7)
    network.set_faults(A, B, delay_ms=(1_000, 1_000))
    big = bytes(256 * 1024)
    async with running(network):
        accepted = 0
        while a.send_nowait(B, big):
            accepted += 1
        assert accepted == PEER_SEND_QUEUE_BYTES_MAX // len(big)
        assert a.statuses()[0].dropped_payloads == 1
        await trio.sleep(1.5)
        assert len(payloads(drain(b))) == accepted
        assert a.send_nowait(B, big)  # drained: room again


async def test_full_receiver_drops_payloads_but_keeps_link_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network, a, b = linked_pair(seed=8)
    async with running(network):
        drain(b)
        for i in range(INCOMING_QUEUE_ITEMS_MAX):
            assert a.send_nowait(B, i.to_bytes(4, "big"))
        await trio.sleep(0.01)
        network.cut(A, B)
        events = drain(b)
    accepted = INCOMING_QUEUE_ITEMS_MAX - CONTROL_EVENTS_RESERVED
    assert len(payloads(events)) == accepted
    assert events[-1] == PeerDown(A)
    assert network.overflow_payloads == CONTROL_EVENTS_RESERVED
    assert b.statuses()[0].dropped_payloads == CONTROL_EVENTS_RESERVED


async def trace(seed: int) -> list[tuple[float, bytes, bytes]]:
    """Two senders with every fault on; what arrives, when and from whom."""
    network = MemoryNetwork(seed)
    endpoints = {key: network.endpoint(key) for key in (A, B, C)}
    network.link(A, C)
    network.link(B, C)
    for sender in (A, B):
        network.set_faults(sender, C, loss=0.1, duplicate=0.1, delay_ms=(0, 30))
    arrivals: list[tuple[float, bytes, bytes]] = []
    async with running(network):
        drain(endpoints[C])
        for i in range(300):
            endpoints[A].send_nowait(C, b"a%d" % i)
            endpoints[B].send_nowait(C, b"b%d" % i)
            if i % 50 == 0:
                await trio.sleep(0.005)
                network.cut(B, C)
                network.heal(B, C)
        with trio.move_on_after(1):
            while True:
                event = await endpoints[C].events.receive()
                if isinstance(event, Received):
                    arrivals.append((trio.current_time(), event.peer_key, event.payload))
    return arrivals


async def test_same_seed_same_trace(autojump_clock: trio.testing.MockClock) -> None:
    start_s = trio.current_time()
    first = [(time_s - start_s, key, payload) for time_s, key, payload in await trace(seed=11)]
    start_s = trio.current_time()
    second = [(time_s - start_s, key, payload) for time_s, key, payload in await trace(seed=11)]
    start_s = trio.current_time()
    other = [(time_s - start_s, key, payload) for time_s, key, payload in await trace(seed=12)]
    assert len(first) > 300
    assert [(key, payload) for _, key, payload in first] == [
        (key, payload) for _, key, payload in second
    ]
    assert [time_s for time_s, _, _ in first] == pytest.approx([time_s for time_s, _, _ in second])
    assert [payload for _, _, payload in first] != [payload for _, _, payload in other]
