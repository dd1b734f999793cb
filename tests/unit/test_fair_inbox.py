"""The QUIC endpoint's inbox: senders take turns, each sender's order kept, bounded by waiting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.net.base import PeerDown, PeerUp, Received, TransportEvent
from node.net.fair_inbox import FairInbox

PEER, OTHER_PEER, CLIENT = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def frame(sender: bytes, number: int) -> Received:
    return Received(sender, number.to_bytes(4, "big"))


def take_all(inbox: FairInbox) -> list[TransportEvent]:
    events: list[TransportEvent] = []
    while True:
        try:
            events.append(inbox.receive_nowait())
        except trio.WouldBlock:
            return events


def test_a_request_behind_a_peer_backlog_comes_out_second() -> None:
    inbox = FairInbox(items_max=100_000)
    for number in range(5_000):
        inbox.put(PEER, frame(PEER, number))
    inbox.put(CLIENT, Received(CLIENT, b"status"))
    assert inbox.receive_nowait() == frame(PEER, 0)
    assert inbox.receive_nowait() == Received(CLIENT, b"status")
    assert take_all(inbox) == [frame(PEER, number) for number in range(1, 5_000)]
    assert len(inbox) == 0


def test_each_sender_keeps_its_order_and_senders_alternate() -> None:
    inbox = FairInbox()
    inbox.put(PEER, PeerUp(PEER))
    for number in range(3):
        inbox.put(PEER, frame(PEER, number))
        inbox.put(OTHER_PEER, frame(OTHER_PEER, number))
    inbox.put(PEER, PeerDown(PEER))
    assert take_all(inbox) == [
        PeerUp(PEER),
        frame(OTHER_PEER, 0),
        frame(PEER, 0),
        frame(OTHER_PEER, 1),
        frame(PEER, 1),
        frame(OTHER_PEER, 2),
        frame(PEER, 2),
        PeerDown(PEER),
    ]


def test_only_senders_with_a_backlog_are_held_back_at_the_limit() -> None:
    inbox = FairInbox(items_max=10, items_per_sender_min=2)
    for number in range(10):
        inbox.put(PEER, frame(PEER, number))
    assert inbox.must_wait(PEER)
    inbox.put(CLIENT, PeerUp(CLIENT))
    assert not inbox.must_wait(CLIENT)  # fewer than the minimum of its own: still read
    inbox.put(CLIENT, Received(CLIENT, b"status"))
    assert inbox.must_wait(CLIENT)
    inbox.receive_nowait()
    inbox.receive_nowait()
    assert not inbox.must_wait(CLIENT)  # below the minimum again
    for _ in range(2):
        inbox.receive_nowait()
    assert not inbox.must_wait(PEER)  # below the limit


async def test_a_waiting_connection_resumes_when_its_backlog_is_taken() -> None:
    inbox = FairInbox(items_max=4, items_per_sender_min=4)
    for number in range(4):
        inbox.put(PEER, frame(PEER, number))
    resumed = trio.Event()

    async def connection() -> None:
        await inbox.wait_for_room(PEER)
        resumed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection)
        await trio.testing.wait_all_tasks_blocked()
        assert not resumed.is_set()
        inbox.receive_nowait()
        await trio.testing.wait_all_tasks_blocked()
        assert resumed.is_set()


async def test_receive_waits_for_an_event_then_ends_after_close() -> None:
    inbox = FairInbox()
    async with trio.open_nursery() as nursery:
        got: list[TransportEvent] = []

        async def reader() -> None:
            async for event in inbox:
                got.append(event)

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        inbox.put(PEER, frame(PEER, 1))
        inbox.put(PEER, frame(PEER, 2))
        inbox.close()
        inbox.put(PEER, frame(PEER, 3))  # after close: dropped
    assert got == [frame(PEER, 1), frame(PEER, 2)]
    with pytest.raises(trio.EndOfChannel):
        inbox.receive_nowait()


async def test_a_sender_under_its_minimum_wakes_its_own_connection_only() -> None:
    """Over the limit, PEER's backlog draining below its minimum lets PEER's
    connection read again, and leaves OTHER_PEER's (still at its minimum) asleep:
    before, every waiting connection woke to check again."""
    inbox = FairInbox(items_max=6, items_per_sender_min=3)
    for number in range(3):
        inbox.put(PEER, frame(PEER, number))
        inbox.put(OTHER_PEER, frame(OTHER_PEER, number))
    for number in range(3, 6):
        inbox.put(OTHER_PEER, frame(OTHER_PEER, number))
    checks = {PEER: 0, OTHER_PEER: 0}  # how often each connection looked again
    original = inbox.must_wait

    def counting(key: bytes) -> bool:
        checks[key] += 1
        return original(key)

    inbox.must_wait = counting  # type: ignore[method-assign,assignment]
    resumed: dict[bytes, trio.Event] = {PEER: trio.Event(), OTHER_PEER: trio.Event()}

    async def connection(sender: bytes) -> None:
        await inbox.wait_for_room(sender)
        resumed[sender].set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection, PEER)
        nursery.start_soon(connection, OTHER_PEER)
        await trio.testing.wait_all_tasks_blocked()
        before = dict(checks)
        assert inbox.receive_nowait() == frame(PEER, 0)  # PEER: 2 left, under 3; 8 held
        await trio.testing.wait_all_tasks_blocked()
        assert resumed[PEER].is_set() and not resumed[OTHER_PEER].is_set()
        assert checks[OTHER_PEER] == before[OTHER_PEER]  # not woken at all
        take_all(inbox)
        await trio.testing.wait_all_tasks_blocked()
        assert resumed[OTHER_PEER].is_set()  # under the limit: everyone reads
