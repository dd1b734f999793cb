"""Anti-entropy must not be held back by items the peer keeps refusing.

Found by the offers simulation (seed 1, 10 nodes): a node restarted with an
empty gossip store; each answer to its digest was the first
GOSSIP_ROUND_ITEMS_MAX items it lacked in name order, and those were offers of
validators it did not trust yet (refused), while the endorsements that would
make them trusted sort after them. It never trusted anyone beyond its peers.
And every peer sent the same first items, so a restarted node caught up at
one answer's worth per round whatever its number of peers.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.gossip import (
    GossipDigest,
    GossipEngine,
    GossipItem,
    GossipItems,
    ReceiveDigest,
    SendToPeer,
)
from node.limits import GOSSIP_ROUND_ITEMS_MAX

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000
HOLDER, FRESH, ORIGIN = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


def sent(effects: Sequence[object]) -> list[GossipItem]:
    return [
        item
        for effect in effects
        if isinstance(effect, SendToPeer) and isinstance(effect.message, GossipItems)
        for item in effect.message.items
    ]


def test_a_peer_refusing_the_first_items_still_gets_the_rest_in_later_rounds() -> None:
    holder = GossipEngine(HOLDER, (FRESH,), lambda item: None)
    offers = [
        GossipItem(ORIGIN, "offer", n.to_bytes(2, "big"), 1, NOW_MS + HOUR_MS, b"")
        for n in range(GOSSIP_ROUND_ITEMS_MAX + 5)
    ]
    endorsement = GossipItem(ORIGIN, "validator", b"subject", 1, NOW_MS + HOUR_MS, b"")
    for item in [*offers, endorsement]:
        holder.items[item.name] = item
    # The fresh peer refuses offers until it holds the endorsement: its digest stays empty.
    answers = [
        sent(holder.handle(ReceiveDigest(FRESH, GossipDigest(None, None, ())), NOW_MS + round_))
        for round_ in range(3)
    ]
    assert all(len(answer) <= GOSSIP_ROUND_ITEMS_MAX for answer in answers)
    assert endorsement in answers[0] + answers[1]
    everything = {item.name for answer in answers for item in answer}
    assert everything == {item.name for item in [*offers, endorsement]}


def test_a_peer_lacking_little_gets_it_all_in_one_answer_every_time() -> None:
    holder = GossipEngine(HOLDER, (FRESH,), lambda item: None)
    items = [
        GossipItem(ORIGIN, "offer", n.to_bytes(2, "big"), 1, NOW_MS + HOUR_MS, b"")
        for n in range(5)
    ]
    for item in items:
        holder.items[item.name] = item
    for round_ in range(2):
        answer = sent(holder.handle(ReceiveDigest(FRESH, GossipDigest(None, None, ())), NOW_MS))
        assert sorted(item.name for item in answer) == [item.name for item in items], round_


def test_peers_answering_one_restarted_node_send_it_different_items() -> None:
    """Each answerer starts at its own position: together they send more than one answer."""
    items = [
        GossipItem(bytes([origin]) * 32, "offer", n.to_bytes(2, "big"), 1, NOW_MS + HOUR_MS, b"")
        for origin in (10, 100, 200)
        for n in range(GOSSIP_ROUND_ITEMS_MAX)
    ]
    answers = []
    for own in (bytes([50]) * 32, bytes([150]) * 32):
        holder = GossipEngine(own, (FRESH,), lambda item: None)
        for item in items:
            holder.items[item.name] = item
        digest = GossipDigest(None, None, ())
        answers.append(
            {item.name for item in sent(holder.handle(ReceiveDigest(FRESH, digest), NOW_MS))}
        )
    assert len(answers[0]) == len(answers[1]) == GOSSIP_ROUND_ITEMS_MAX
    assert len(answers[0] | answers[1]) > GOSSIP_ROUND_ITEMS_MAX  # different slices
