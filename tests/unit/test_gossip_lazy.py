"""Eager push to a few peers, HAVE to the others, WANT on demand: the lazy half of gossip."""

from __future__ import annotations

import random
from collections import deque
from typing import TypeVar

import pytest

from node.gossip import (
    ActionPublish,
    Effect,
    GossipEngine,
    GossipHave,
    GossipItem,
    GossipItems,
    GossipRefusal,
    GossipWant,
    ItemName,
    NotifyRefused,
    ReceiveHave,
    ReceiveItems,
    ReceiveWant,
    SendToPeer,
    TimerTick,
    gossip_from_wire,
    receive,
)
from node.limits import (
    GOSSIP_EAGER_FANOUT,
    GOSSIP_HAVE_ENTRIES_MAX,
    GOSSIP_WANT_NAMES_MAX,
    GOSSIP_WANT_TIMEOUT_MS,
    GOSSIP_WANTS_PER_PEER_MAX,
)
from node.wire import DecodeError, pack, unpack

Message = TypeVar("Message")
NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000


def key(n: int) -> bytes:
    return n.to_bytes(2) * 16


A, M = key(1), key(999)
PEERS = tuple(key(n) for n in range(2, 8))  # six peers: three eager, three lazy
B, C, D = PEERS[:3]


def verify(item: GossipItem) -> str | None:
    return None if item.body == b"signed" else "bad signature"


def item(
    n: int = 1, seq: int = 1, origin: bytes = M, expires_ms: int = NOW_MS + HOUR_MS
) -> GossipItem:
    return GossipItem(origin, "offer", n.to_bytes(2), seq, expires_ms, b"signed")


def engine(fanout: int | None = GOSSIP_EAGER_FANOUT) -> GossipEngine:
    return GossipEngine(A, PEERS, verify, eager_fanout=fanout)


def messages(effects: list[Effect], kind: type[Message]) -> dict[bytes, list[Message]]:
    out: dict[bytes, list[Message]] = {}
    for effect in effects:
        if isinstance(effect, SendToPeer) and isinstance(effect.message, kind):
            out.setdefault(effect.peer, []).append(effect.message)
    return out


def full_copies(effects: list[Effect]) -> dict[bytes, list[GossipItem]]:
    out: dict[bytes, list[GossipItem]] = {}
    for peer, sent in messages(effects, GossipItems).items():
        out[peer] = [one for message in sent for one in message.items]
    return out


def wanted_names(effects: list[Effect]) -> dict[bytes, list[ItemName]]:
    return {
        peer: [name for message in sent for name in message.names]
        for peer, sent in messages(effects, GossipWant).items()
    }


def test_new_item_goes_in_full_to_the_fanout_and_as_a_have_to_the_rest() -> None:
    effects = engine().handle(ReceiveItems(B, (item(),)), NOW_MS)
    eager = full_copies(effects)
    haves = messages(effects, GossipHave)
    assert len(eager) == GOSSIP_EAGER_FANOUT and B not in eager
    assert sorted([*eager, *haves]) == sorted(set(PEERS) - {B})
    assert all(sent == [GossipHave(((item().name, 1),))] for sent in haves.values())
    again = engine().handle(ReceiveItems(B, (item(),)), NOW_MS)
    assert full_copies(again) == eager  # the choice is deterministic
    chosen = {
        tuple(sorted(full_copies(engine().handle(ReceiveItems(B, (item(n),)), NOW_MS))))
        for n in range(20)
    }
    assert len(chosen) > 5  # ... yet differs from item to item


def test_the_origin_and_its_peers_push_to_every_peer() -> None:
    ours = item(origin=A)
    published = engine().handle(ActionPublish(ours), NOW_MS)
    assert sorted(full_copies(published)) == sorted(PEERS)
    theirs = item(origin=B)
    first_hop = engine().handle(ReceiveItems(B, (theirs,)), NOW_MS)
    assert sorted(full_copies(first_hop)) == sorted(set(PEERS) - {B})
    assert messages(first_hop, GossipHave) == {}


def test_without_fanout_the_engine_floods() -> None:
    effects = engine(fanout=None).handle(ReceiveItems(B, (item(),)), NOW_MS)
    assert sorted(full_copies(effects)) == sorted(set(PEERS) - {B})
    assert messages(effects, GossipHave) == {}


def test_haves_of_a_batch_are_batched_per_peer() -> None:
    effects = engine().handle(ReceiveItems(B, tuple(item(n) for n in range(10))), NOW_MS)
    haves = messages(effects, GossipHave)
    lazy_entries = sum(len(have.entries) for sent in haves.values() for have in sent)
    assert all(len(sent) == 1 for sent in haves.values())
    eager_copies = sum(len(copies) for copies in full_copies(effects).values())
    assert eager_copies == 10 * GOSSIP_EAGER_FANOUT
    assert lazy_entries == 10 * (len(PEERS) - 1 - GOSSIP_EAGER_FANOUT)


def test_have_of_a_missing_or_newer_item_is_wanted_from_the_announcer_at_once() -> None:
    gossip = engine()
    gossip.handle(ReceiveItems(B, (item(n=1, seq=1), item(n=2, seq=5))), NOW_MS)
    have = GossipHave(((item(n=1, seq=2).name, 2), (item(n=2).name, 5), (item(n=3).name, 1)))
    effects = gossip.handle(ReceiveHave(C, have), NOW_MS)
    assert wanted_names(effects) == {C: [item(n=1).name, item(n=3).name]}
    later = gossip.handle(ReceiveHave(D, have), NOW_MS)
    assert wanted_names(later) == {}  # already asked C


def test_want_is_answered_with_what_we_hold_and_unknown_names_are_ignored() -> None:
    gossip = engine()
    gossip.handle(ReceiveItems(B, (item(n=1, expires_ms=NOW_MS + 10),)), NOW_MS)
    want = GossipWant((item(n=1).name, item(n=2).name))
    assert full_copies(gossip.handle(ReceiveWant(C, want), NOW_MS)) == {
        C: [item(n=1, expires_ms=NOW_MS + 10)]
    }
    gossip.handle(TimerTick(), NOW_MS + 10)  # the item expires and is pruned
    assert gossip.handle(ReceiveWant(C, want), NOW_MS + 10) == []


@pytest.mark.parametrize(
    "event",
    [ReceiveHave(M, GossipHave(((item().name, 1),))), ReceiveWant(M, GossipWant((item().name,)))],
)
def test_have_and_want_from_an_untrusted_peer_are_refused(event: ReceiveHave | ReceiveWant) -> None:
    gossip = engine()
    gossip.handle(ReceiveItems(B, (item(n=2),)), NOW_MS)
    effects = gossip.handle(event, NOW_MS)
    assert effects == [NotifyRefused(GossipRefusal.UNTRUSTED_PEER, M.hex())]
    assert gossip.wanted == {}


def test_announcers_get_no_copy_of_what_they_announced() -> None:
    gossip = engine()
    have = GossipHave(((item().name, 1),))
    gossip.handle(ReceiveHave(C, have), NOW_MS)
    gossip.handle(ReceiveHave(D, have), NOW_MS)
    effects = gossip.handle(ReceiveItems(B, (item(),)), NOW_MS)  # B answers before C does
    assert sorted(full_copies(effects)) == sorted(set(PEERS) - {B, C, D})
    assert messages(effects, GossipHave) == {}
    assert gossip.wanted == {} and gossip.wants_per_peer == {}


def test_unanswered_want_goes_to_the_next_announcer_then_is_dropped() -> None:
    gossip = engine()
    have = GossipHave(((item().name, 1),))
    gossip.handle(ReceiveHave(B, have), NOW_MS)
    gossip.handle(ReceiveHave(C, have), NOW_MS)
    assert wanted_names(gossip.handle(TimerTick(), NOW_MS + GOSSIP_WANT_TIMEOUT_MS - 1)) == {}
    retry = gossip.handle(TimerTick(), NOW_MS + GOSSIP_WANT_TIMEOUT_MS)
    assert wanted_names(retry) == {C: [item().name]}
    gossip.handle(TimerTick(), NOW_MS + 2 * GOSSIP_WANT_TIMEOUT_MS)
    assert gossip.wanted == {} and gossip.wants_per_peer == {}


def test_outstanding_wants_per_peer_are_bounded() -> None:
    gossip = engine()
    count = GOSSIP_WANTS_PER_PEER_MAX + GOSSIP_HAVE_ENTRIES_MAX
    names = [(item(n=n).name, 1) for n in range(count)]
    asked: list[ItemName] = []
    for start in range(0, count, GOSSIP_HAVE_ENTRIES_MAX):
        have = GossipHave(tuple(names[start : start + GOSSIP_HAVE_ENTRIES_MAX]))
        effects = gossip.handle(ReceiveHave(B, have), NOW_MS)
        assert all(
            len(want.names) <= GOSSIP_WANT_NAMES_MAX
            for want in messages(effects, GossipWant).get(B, [])
        )
        asked += wanted_names(effects).get(B, [])
    assert len(asked) == GOSSIP_WANTS_PER_PEER_MAX
    gossip.handle(ReceiveItems(B, (item(n=0),)), NOW_MS)  # one answer frees one slot
    more = gossip.handle(ReceiveHave(B, GossipHave((names[-1],))), NOW_MS)
    assert wanted_names(more) == {B: [names[-1][0]]}


def test_have_and_want_wire_round_trip_and_strictness() -> None:
    for message in (GossipHave(((item().name, 3),)), GossipWant((item().name, item(2).name))):
        assert gossip_from_wire(unpack(pack(message.to_wire()), 1 << 20)) == message
    too_many = [[list(item(n).name), 1] for n in range(GOSSIP_HAVE_ENTRIES_MAX + 1)]
    for bad in (
        {"msgType": "HAVE", "entries": []},
        {"msgType": "HAVE", "entries": too_many},
        {"msgType": "WANT", "names": [list(item(n).name) for n in range(17)]},
        {"msgType": "WANT", "names": [[M, "offer", b""]]},
    ):
        with pytest.raises(DecodeError):
            gossip_from_wire(bad)


# --- a seeded 30-node mesh: eager pushes and pulls alone reach everyone -------------------


def seeded_mesh(size: int, seed: int) -> list[tuple[int, int]]:
    """Node i links to 3 random earlier nodes (all of them while fewer exist)."""
    rng = random.Random(seed)
    return [(j, i) for i in range(1, size) for j in sorted(rng.sample(range(i), min(3, i)))]


def spread(size: int, seed: int, fanout: int | None, publishes: int) -> tuple[bool, float]:
    """Publish from random origins; deliver in FIFO order (unit latency), no ticks, so
    no anti-entropy. Returns (everyone holds everything, full copies per delivery)."""
    rng = random.Random(seed)
    keys = [key(n + 1) for n in range(size)]
    edges = seeded_mesh(size, seed)
    nodes = {
        keys[n]: GossipEngine(
            keys[n], [keys[b if a == n else a] for a, b in edges if n in (a, b)], verify, fanout
        )
        for n in range(size)
    }
    queue: deque[tuple[bytes, SendToPeer]] = deque()
    copies = 0
    for step in range(publishes):
        origin = rng.choice(keys)
        published = GossipItem(origin, "offer", bytes([step]), 1, NOW_MS + HOUR_MS, b"signed")
        effects = nodes[origin].handle(ActionPublish(published), NOW_MS)
        queue.extend((origin, e) for e in effects if isinstance(e, SendToPeer))
        while queue:
            sender, send = queue.popleft()
            if isinstance(send.message, GossipItems):
                copies += len(send.message.items)
            effects = nodes[send.peer].handle(receive(sender, send.message), NOW_MS)
            queue.extend((send.peer, e) for e in effects if isinstance(e, SendToPeer))
    everyone = all(len(node.items) == publishes for node in nodes.values())
    return everyone, copies / (publishes * (size - 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thirty_node_mesh_every_item_reaches_every_node_with_fewer_copies(seed: int) -> None:
    lazy_complete, lazy_copies = spread(30, seed, GOSSIP_EAGER_FANOUT, publishes=20)
    flood_complete, flood_copies = spread(30, seed, None, publishes=20)
    assert lazy_complete and flood_complete
    assert lazy_copies < 0.8 * flood_copies
