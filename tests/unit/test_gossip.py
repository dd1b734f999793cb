"""The gossip engine: verify, dedup, replace, forward, limits, pruning, anti-entropy."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.gossip import (
    ActionPublish,
    Effect,
    GossipDigest,
    GossipEngine,
    GossipItem,
    GossipItems,
    GossipRefusal,
    NotifyRefused,
    NotifyRemoved,
    NotifyStored,
    PeerConnected,
    ReceiveDigest,
    ReceiveItems,
    SendToPeer,
    TimerTick,
    gossip_from_wire,
    receive,
)
from node.limits import (
    GOSSIP_DIGEST_ENTRIES_MAX,
    GOSSIP_ITEMS_PER_MESSAGE_MAX,
    GOSSIP_ITEMS_PER_ORIGIN_MAX,
    GOSSIP_ORIGIN_BURST_ITEMS,
    GOSSIP_ORIGIN_REFILL_MS,
    GOSSIP_ROUND_INTERVAL_MS,
    GOSSIP_ROUND_ITEMS_MAX,
)
from node.wire import DecodeError, pack, unpack

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000


def key(n: int) -> bytes:
    return bytes([n]) * 32


A, B, C, M = key(1), key(2), key(3), key(9)


def verify(item: GossipItem) -> str | None:
    return None if item.body == b"signed" else "bad signature"


def item(
    origin: bytes = M, n: int = 1, seq: int = 1, expires_ms: int = NOW_MS + HOUR_MS
) -> GossipItem:
    return GossipItem(origin, "route", bytes([n]), seq, expires_ms, b"signed")


def engine(own: bytes = A, peers: tuple[bytes, ...] = (B, C)) -> GossipEngine:
    return GossipEngine(own, peers, verify)


def sends(effects: list[Effect]) -> dict[bytes, list[GossipItem]]:
    out: dict[bytes, list[GossipItem]] = {}
    for effect in effects:
        if isinstance(effect, SendToPeer) and isinstance(effect.message, GossipItems):
            out.setdefault(effect.peer, []).extend(effect.message.items)
    return out


def refused(effects: list[Effect]) -> list[GossipRefusal]:
    return [e.reason for e in effects if isinstance(e, NotifyRefused)]


def test_verified_item_is_stored_and_forwarded_to_every_peer_but_the_sender() -> None:
    gossip = engine()
    effects = gossip.handle(ReceiveItems(B, (item(),)), NOW_MS)
    assert NotifyStored(item()) in effects
    assert sends(effects) == {C: [item()]}
    assert gossip.held() == {item().name: 1}


def test_duplicate_and_older_are_dropped_silently_newer_replaces() -> None:
    gossip = engine()
    gossip.handle(ReceiveItems(B, (item(seq=2),)), NOW_MS)
    assert gossip.handle(ReceiveItems(C, (item(seq=2), item(seq=1))), NOW_MS) == []
    effects = gossip.handle(ReceiveItems(C, (item(seq=3),)), NOW_MS)
    assert NotifyStored(item(seq=3)) in effects
    assert sends(effects) == {B: [item(seq=3)]}
    assert gossip.held() == {item().name: 3}


def test_invalid_item_is_neither_stored_nor_forwarded() -> None:
    gossip = engine()
    forged = GossipItem(M, "route", b"\x01", 1, NOW_MS + HOUR_MS, b"forged")
    effects = gossip.handle(ReceiveItems(B, (forged,)), NOW_MS)
    assert refused(effects) == [GossipRefusal.INVALID]
    assert sends(effects) == {} and gossip.held() == {}


@pytest.mark.parametrize(
    ("expires_ms", "reason"),
    [(NOW_MS, GossipRefusal.EXPIRED), (NOW_MS + 30 * 24 * HOUR_MS, GossipRefusal.EXPIRY_TOO_FAR)],
)
def test_expiry_bounds(expires_ms: int, reason: GossipRefusal) -> None:
    effects = engine().handle(ReceiveItems(B, (item(expires_ms=expires_ms),)), NOW_MS)
    assert refused(effects) == [reason]


def test_untrusted_peer_is_refused() -> None:
    gossip = engine()
    assert refused(gossip.handle(ReceiveItems(M, (item(),)), NOW_MS)) == [
        GossipRefusal.UNTRUSTED_PEER
    ]
    assert gossip.held() == {}


def test_rate_limit_per_origin_refills_with_time() -> None:
    gossip = engine()
    burst = tuple(item(n=n % 250, seq=n + 1) for n in range(GOSSIP_ORIGIN_BURST_ITEMS))
    for one in burst:
        gossip.handle(ReceiveItems(B, (one,)), NOW_MS)
    late = item(n=251)
    assert refused(gossip.handle(ReceiveItems(B, (late,)), NOW_MS)) == [GossipRefusal.RATE_LIMITED]
    other_origin = item(origin=key(8))
    assert refused(gossip.handle(ReceiveItems(B, (other_origin,)), NOW_MS)) == []
    later_ms = NOW_MS + GOSSIP_ORIGIN_REFILL_MS
    assert refused(gossip.handle(ReceiveItems(B, (late,)), later_ms)) == []


def test_items_per_origin_are_bounded_but_replacement_is_allowed() -> None:
    gossip = engine()
    for n in range(GOSSIP_ITEMS_PER_ORIGIN_MAX):
        effects = gossip.handle(
            ActionPublish(GossipItem(A, "offer", n.to_bytes(2), 1, NOW_MS + HOUR_MS, b"")), NOW_MS
        )
        assert refused(effects) == []
    extra = GossipItem(A, "offer", b"\xff\xff", 1, NOW_MS + HOUR_MS, b"")
    assert refused(gossip.handle(ActionPublish(extra), NOW_MS)) == [GossipRefusal.ORIGIN_FULL]
    newer = GossipItem(A, "offer", (0).to_bytes(2), 2, NOW_MS + HOUR_MS, b"")
    assert refused(gossip.handle(ActionPublish(newer), NOW_MS)) == []


def test_publish_only_our_own_items_and_forward_to_every_peer() -> None:
    gossip = engine()
    assert refused(gossip.handle(ActionPublish(item()), NOW_MS)) == [GossipRefusal.NOT_OURS]
    ours = item(origin=A)
    assert sends(gossip.handle(ActionPublish(ours), NOW_MS)) == {B: [ours], C: [ours]}


def test_forwarded_items_are_batched_per_message_limit() -> None:
    gossip = engine()
    items = tuple(item(origin=A, n=n) for n in range(GOSSIP_ITEMS_PER_MESSAGE_MAX + 1))
    effects: list[Effect] = []
    for one in items:
        effects += gossip.handle(ActionPublish(one), NOW_MS)
    assert sum(len(items) for items in sends(effects).values()) == 2 * len(items)


def test_expired_items_are_pruned_on_tick() -> None:
    gossip = engine()
    gossip.handle(ReceiveItems(B, (item(expires_ms=NOW_MS + 10),)), NOW_MS)
    effects = gossip.handle(TimerTick(), NOW_MS + 10)
    assert NotifyRemoved(item(expires_ms=NOW_MS + 10)) in effects
    assert gossip.held() == {}


def test_digest_answer_sends_what_the_peer_lacks_or_holds_older() -> None:
    gossip = engine()
    for n in range(3):
        gossip.handle(ReceiveItems(B, (item(n=n, seq=5),)), NOW_MS)
    digest = GossipDigest(None, None, ((item(n=0).name, 5), (item(n=1).name, 4)))
    effects = gossip.handle(ReceiveDigest(C, digest), NOW_MS)
    assert sends(effects) == {C: [item(n=1, seq=5), item(n=2, seq=5)]}


def test_anti_entropy_walks_ranges_bounded_per_round() -> None:
    gossip = engine()
    count = GOSSIP_DIGEST_ENTRIES_MAX + 10
    for n in range(count):
        gossip.handle(
            ActionPublish(GossipItem(A, "offer", n.to_bytes(2), 1, NOW_MS + HOUR_MS, b"")), NOW_MS
        )
    first = gossip.handle(PeerConnected(B), NOW_MS)
    digests = [e.message for e in first if isinstance(e.message, GossipDigest)]  # type: ignore[union-attr]
    assert len(digests) == 1 and len(digests[0].entries) == GOSSIP_DIGEST_ENTRIES_MAX
    assert digests[0].high is not None
    soon = gossip.handle(TimerTick(), NOW_MS + 1)
    assert [e for e in soon if isinstance(e, SendToPeer) and e.peer == B] == []
    second = gossip.handle(TimerTick(), NOW_MS + GOSSIP_ROUND_INTERVAL_MS)
    tail = [e.message for e in second if isinstance(e, SendToPeer) and e.peer == B]
    assert isinstance(tail[0], GossipDigest) and len(tail[0].entries) == 10
    assert tail[0].low == digests[0].high and tail[0].high is None
    empty = GossipEngine(B, (A,), verify)
    answer = gossip.handle(ReceiveDigest(B, GossipDigest(None, None, ())), NOW_MS)
    assert len(sends(answer)[B]) == GOSSIP_ROUND_ITEMS_MAX
    assert empty.held() == {}


def digests_to(peer: bytes, effects: list[Effect]) -> list[GossipDigest]:
    return [
        e.message
        for e in effects
        if isinstance(e, SendToPeer) and e.peer == peer and isinstance(e.message, GossipDigest)
    ]


def test_once_a_walk_went_round_rounds_send_summaries_and_a_mismatch_still_syncs() -> None:
    a, b = GossipEngine(A, (B,), verify), GossipEngine(B, (A,), verify)
    for n in range(3):
        a.handle(ReceiveItems(B, (item(n=n),)), NOW_MS)
        b.handle(ReceiveItems(A, (item(n=n),)), NOW_MS)
    (full,) = digests_to(B, a.handle(PeerConnected(B), NOW_MS))
    assert full.summary is None and len(full.entries) == 3  # the first walk lists entries
    assert sends(b.handle(ReceiveDigest(A, full), NOW_MS)) == {}
    later = NOW_MS + GOSSIP_ROUND_INTERVAL_MS
    (summary,) = digests_to(B, a.handle(TimerTick(), later))
    assert summary.entries == () and summary.summary is not None and summary.summary[0] == 3
    assert b.handle(ReceiveDigest(A, summary), later) == []  # same items: nothing at all
    # A newer seq that only A holds: B's answer lists its entries, A sends what B lacks.
    a.handle(ReceiveItems(B, (item(n=1, seq=2),)), later)
    later += GOSSIP_ROUND_INTERVAL_MS
    (summary,) = digests_to(B, a.handle(TimerTick(), later))
    (answer,) = digests_to(A, b.handle(ReceiveDigest(A, summary), later))
    assert answer.summary is None and (item(n=1).name, 1) in answer.entries
    assert sends(a.handle(ReceiveDigest(B, answer), later)) == {B: [item(n=1, seq=2)]}


def test_a_summary_answer_is_bounded_whatever_range_it_names() -> None:
    gossip = engine()
    count = GOSSIP_DIGEST_ENTRIES_MAX + 40
    for n in range(count):
        origin = key(20 + n % 3)  # below each origin's burst of tokens
        stored = GossipItem(origin, "offer", n.to_bytes(2), 1, NOW_MS + HOUR_MS, b"signed")
        gossip.handle(ReceiveItems(B, (stored,)), NOW_MS)
    summary = GossipDigest(None, None, (), (3, bytes(8)))
    (answer,) = digests_to(C, gossip.handle(ReceiveDigest(C, summary), NOW_MS))
    assert len(answer.entries) == GOSSIP_DIGEST_ENTRIES_MAX
    assert answer.high == answer.entries[-1][0]  # the rest of the range: a later round


def test_wire_round_trip_and_strictness() -> None:
    one = item()
    summary = GossipDigest(one.name, None, (), (7, bytes(range(8))))
    for message in (GossipItems((one,)), GossipDigest(None, one.name, ((one.name, 3),)), summary):
        assert gossip_from_wire(unpack(pack(message.to_wire()), 1 << 20)) == message
    digest: dict[str, Any] = {"msgType": "DIGEST", "low": None, "high": None, "entries": []}
    for bad in (
        [1, bytes(8), 3],  # not [count, fingerprint]
        [1, bytes(7)],  # a short fingerprint
        [GOSSIP_DIGEST_ENTRIES_MAX + 1, bytes(8)],  # more than a digest may list
    ):
        with pytest.raises(DecodeError):
            gossip_from_wire({**digest, "summary": bad})
    with pytest.raises(DecodeError):  # a summary lists no entries
        gossip_from_wire({**digest, "entries": [[list(one.name), 1]], "summary": [1, bytes(8)]})
    with pytest.raises(DecodeError):
        gossip_from_wire({"msgType": "GOSSIP", "items": []})
    with pytest.raises(DecodeError):
        gossip_from_wire({"msgType": "GOSSIP", "items": [[M, "route", b"", 1, 2, b""]]})
    with pytest.raises(DecodeError):
        gossip_from_wire({"msgType": "DIGEST", "low": None, "high": None, "entries": [], "x": 1})


# --- convergence under loss and link flaps ------------------------------------------------


def connected_graph(rng: random.Random, size: int) -> set[tuple[int, int]]:
    edges = {(rng.randrange(n), n) for n in range(1, size)}  # a random tree ...
    for _ in range(size):  # ... plus a few more links
        a, b = rng.sample(range(size), 2)
        edges.add((min(a, b), max(a, b)))
    return edges


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(2, 7),
    loss=st.floats(0.0, 0.6),
    publishes=st.integers(1, 25),
)
def test_lossy_flapping_mesh_converges_after_faults_stop(
    seed: int, size: int, loss: float, publishes: int
) -> None:
    rng = random.Random(seed)
    edges = connected_graph(rng, size)
    keys = [key(n + 1) for n in range(size)]
    neighbours = {n: [b if a == n else a for a, b in edges if n in (a, b)] for n in range(size)}
    nodes = {
        keys[n]: GossipEngine(keys[n], [keys[p] for p in neighbours[n]], verify)
        for n in range(size)
    }
    queue: deque[tuple[bytes, SendToPeer]] = deque()
    now_ms = NOW_MS
    down: set[tuple[bytes, bytes]] = set()

    def emit(sender: bytes, effects: list[Effect]) -> None:
        queue.extend((sender, e) for e in effects if isinstance(e, SendToPeer))

    def deliver(lossy: bool) -> None:
        while queue:
            sender, send = queue.popleft()
            if lossy and (rng.random() < loss or (sender, send.peer) in down):
                continue
            emit(send.peer, nodes[send.peer].handle(receive(sender, send.message), now_ms))

    for step in range(publishes):
        origin = rng.choice(keys)
        n, seq = rng.randrange(4), step + 1
        lifetime_ms = rng.choice([HOUR_MS, 5 * GOSSIP_ROUND_INTERVAL_MS])
        published = GossipItem(origin, "route", bytes([n]), seq, now_ms + lifetime_ms, b"signed")
        emit(origin, nodes[origin].handle(ActionPublish(published), now_ms))
        if rng.random() < 0.3:  # a link flaps
            a, b = rng.choice(sorted(edges))
            link = (keys[a], keys[b])
            if link in down:
                down -= {link, link[::-1]}
                emit(keys[a], nodes[keys[a]].handle(PeerConnected(keys[b]), now_ms))
                emit(keys[b], nodes[keys[b]].handle(PeerConnected(keys[a]), now_ms))
            else:
                down |= {link, link[::-1]}
        deliver(lossy=True)
        now_ms += rng.randrange(0, 3_000)

    for _ in range(4 * size):  # faults stop; anti-entropy rounds run
        now_ms += GOSSIP_ROUND_INTERVAL_MS
        for node_key, node in nodes.items():
            emit(node_key, node.handle(TimerTick(), now_ms))
        deliver(lossy=False)

    live: dict[tuple[bytes, str, bytes], int] = {}
    for node in nodes.values():
        for name, held in node.items.items():
            if held.expires_ms > now_ms:
                live[name] = max(live.get(name, 0), held.seq)
    for node in nodes.values():
        assert node.held() == live
