"""Items a node's trust declines: remembered as known, so anti-entropy settles.

Neighbours on either side of an endorsement horizon hold different sets for good.
Before, the node that declined an item was sent it again every round, and every
summary between the two disagreed, so each round cost a full digest both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import node.gossip
from node.gossip import (
    Declined,
    Effect,
    GossipDigest,
    GossipEngine,
    GossipHave,
    GossipItem,
    GossipItems,
    GossipRefusal,
    Input,
    NotifyRefused,
    NotifyStored,
    PeerConnected,
    PolicyChanged,
    ReceiveDigest,
    ReceiveHave,
    ReceiveItems,
    SendToPeer,
    TimerTick,
)
from node.limits import GOSSIP_ROUND_INTERVAL_MS

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000
HOLDER, DECLINER, FRESH = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
ORIGIN, FAR = bytes([9]) * 32, bytes([8]) * 32


def item(n: int, origin: bytes = ORIGIN, seq: int = 1, body: bytes = b"signed") -> GossipItem:
    return GossipItem(origin, "validator", bytes([n]), seq, NOW_MS + HOUR_MS, body)


class Policy:
    """The decliner's trust: items of FAR are beyond its horizon until ``widen``."""

    def __init__(self) -> None:
        self.far_trusted = False

    def __call__(self, candidate: GossipItem) -> str | None:
        if candidate.body != b"signed":
            return "bad-signature"  # a forgery: never remembered
        if candidate.origin == FAR and not self.far_trusted:
            return Declined("endorsement-too-deep")
        return None


def sent_items(effects: Sequence[Effect], peer: bytes) -> list[GossipItem]:
    return [
        sent
        for effect in effects
        if isinstance(effect, SendToPeer) and effect.peer == peer
        if isinstance(effect.message, GossipItems)
        for sent in effect.message.items
    ]


def digests(effects: Sequence[Effect]) -> list[GossipDigest]:
    return [
        effect.message
        for effect in effects
        if isinstance(effect, SendToPeer) and isinstance(effect.message, GossipDigest)
    ]


def pair() -> tuple[GossipEngine, GossipEngine, Policy]:
    """HOLDER holds two near items and two far ones; DECLINER declines the far ones."""
    policy = Policy()
    holder = GossipEngine(HOLDER, (DECLINER,), lambda candidate: None)
    decliner = GossipEngine(DECLINER, (HOLDER,), policy)
    for made in (item(1), item(2), item(3, FAR), item(4, FAR)):
        holder.handle(ReceiveItems(DECLINER, (made,)), NOW_MS)  # as if from elsewhere
    return holder, decliner, policy


def deliver(engines: dict[bytes, GossipEngine], now_ms: int) -> dict[bytes, list[Effect]]:
    """A round: tick every engine, then deliver every message until all fall quiet.
    Returns what each engine put out."""
    out: dict[bytes, list[Effect]] = {own: [] for own in engines}
    queue: list[tuple[bytes, Effect]] = []
    for own, engine in engines.items():
        queue += [(own, effect) for effect in engine.handle(TimerTick(), now_ms)]
    while queue:
        sender, effect = queue.pop(0)
        out[sender].append(effect)
        if not isinstance(effect, SendToPeer) or effect.peer not in engines:
            continue
        message = effect.message
        event: Input
        if isinstance(message, GossipItems):
            event = ReceiveItems(sender, message.items)
        elif isinstance(message, GossipDigest):
            event = ReceiveDigest(sender, message)
        elif isinstance(message, GossipHave):
            event = ReceiveHave(sender, message)
        else:
            continue
        queue += [(effect.peer, answer) for answer in engines[effect.peer].handle(event, now_ms)]
    return out


def exchange(
    holder: GossipEngine, decliner: GossipEngine, now_ms: int
) -> tuple[list[Effect], list[Effect]]:
    out = deliver({HOLDER: holder, DECLINER: decliner}, now_ms)
    return out[HOLDER], out[DECLINER]


def test_a_declined_item_is_refused_once_then_known_and_not_sent_again() -> None:
    holder, decliner, _ = pair()
    from_holder, from_decliner = exchange(holder, decliner, NOW_MS)
    assert {sent.item_id for sent in sent_items(from_holder, DECLINER)} == {
        b"\x01",
        b"\x02",
        b"\x03",
        b"\x04",
    }
    refusals = [e for e in from_decliner if isinstance(e, NotifyRefused)]
    assert [(r.reason, r.detail) for r in refusals] == [
        (GossipRefusal.INVALID, "endorsement-too-deep")
    ] * 2
    assert set(decliner.held()) == {item(1).name, item(2).name}  # nothing far stored
    assert set(decliner.declined) == {item(3, FAR).name, item(4, FAR).name}
    # Every later round: the full digests list the far items as known, so nothing is
    # sent again; once each walk has gone round, summaries agree and answer nothing.
    for round_ in range(1, 4):
        now_ms = NOW_MS + round_ * GOSSIP_ROUND_INTERVAL_MS
        from_holder, from_decliner = exchange(holder, decliner, now_ms)
        assert sent_items(from_holder, DECLINER) == [], round_
        assert sent_items(from_decliner, HOLDER) == [], round_
    assert all(d.summary is not None for d in digests(from_holder + from_decliner))
    assert len(digests(from_holder + from_decliner)) == 2  # one summary each way, no answers


def test_without_the_memory_every_round_resends_and_summaries_disagree() -> None:
    """The behaviour the memory removes, kept as the baseline the test above improves on."""
    holder, decliner, policy = pair()

    def forgetful(candidate: GossipItem) -> str | None:
        problem = policy(candidate)
        return None if problem is None else str(problem)  # a plain refusal: not remembered

    decliner.verify = forgetful
    exchange(holder, decliner, NOW_MS)
    for round_ in range(1, 4):
        from_holder, _ = exchange(holder, decliner, NOW_MS + round_ * GOSSIP_ROUND_INTERVAL_MS)
        if round_ >= 2:  # the walks have gone round: summaries, which disagree
            assert len(sent_items(from_holder, DECLINER)) == 2
            assert any(d.summary is None for d in digests(from_holder))  # full answers


def test_policy_changed_forgets_and_the_items_come_again_and_are_stored() -> None:
    holder, decliner, policy = pair()
    exchange(holder, decliner, NOW_MS)
    exchange(holder, decliner, NOW_MS + GOSSIP_ROUND_INTERVAL_MS)
    policy.far_trusted = True
    assert decliner.handle(PolicyChanged(), NOW_MS) == []
    assert decliner.declined == {}
    stored: list[NotifyStored] = []
    for round_ in range(2, 5):
        _, from_decliner = exchange(holder, decliner, NOW_MS + round_ * GOSSIP_ROUND_INTERVAL_MS)
        stored += [e for e in from_decliner if isinstance(e, NotifyStored)]
    assert {e.item.item_id for e in stored} == {b"\x03", b"\x04"}
    assert set(decliner.held()) == set(holder.held())


def test_a_forgery_is_not_remembered_and_the_genuine_item_still_gets_in() -> None:
    decliner = GossipEngine(DECLINER, (HOLDER,), Policy())
    forged = item(5, body=b"forged")
    decliner.handle(ReceiveItems(HOLDER, (forged,)), NOW_MS)
    assert decliner.declined == {}
    effects = decliner.handle(ReceiveItems(HOLDER, (item(5),)), NOW_MS)
    assert any(isinstance(e, NotifyStored) for e in effects)


def test_a_newer_seq_of_a_declined_name_is_judged_again() -> None:
    policy = Policy()
    decliner = GossipEngine(DECLINER, (HOLDER,), policy)
    decliner.handle(ReceiveItems(HOLDER, (item(3, FAR, seq=1),)), NOW_MS)
    again = decliner.handle(ReceiveItems(HOLDER, (item(3, FAR, seq=1),)), NOW_MS)
    assert again == []  # the same seq: silently known
    policy.far_trusted = True  # (without PolicyChanged: only a newer seq is looked at)
    effects = decliner.handle(ReceiveItems(HOLDER, (item(3, FAR, seq=2),)), NOW_MS)
    assert any(isinstance(e, NotifyStored) for e in effects)
    assert decliner.declined == {}  # the held seq is newer than the declined one


def test_a_have_of_a_declined_item_asks_for_nothing() -> None:
    decliner = GossipEngine(DECLINER, (HOLDER,), Policy())
    decliner.handle(ReceiveItems(HOLDER, (item(3, FAR),)), NOW_MS)
    effects = decliner.handle(ReceiveHave(HOLDER, GossipHave(((item(3, FAR).name, 1),))), NOW_MS)
    assert effects == []
    newer = decliner.handle(ReceiveHave(HOLDER, GossipHave(((item(3, FAR).name, 2),))), NOW_MS)
    assert newer  # a newer seq is wanted


def test_a_declined_item_is_forgotten_when_it_expires() -> None:
    decliner = GossipEngine(DECLINER, (HOLDER,), Policy())
    decliner.handle(ReceiveItems(HOLDER, (item(3, FAR),)), NOW_MS)
    decliner.handle(PeerConnected(HOLDER), NOW_MS)
    decliner.handle(TimerTick(), NOW_MS + HOUR_MS - 1)
    assert item(3, FAR).name in decliner.declined
    decliner.handle(TimerTick(), NOW_MS + HOUR_MS)
    assert decliner.declined == {}
    (digest,) = digests(decliner.handle(PeerConnected(HOLDER), NOW_MS + HOUR_MS))
    assert digest.entries == ()


def test_at_most_the_bound_is_remembered_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node.gossip, "GOSSIP_DECLINED_MAX", 3)
    decliner = GossipEngine(DECLINER, (HOLDER,), Policy())
    for n in range(1, 6):
        decliner.handle(ReceiveItems(HOLDER, (item(n, FAR),)), NOW_MS + n)
    assert [name[2] for name in decliner.declined] == [b"\x03", b"\x04", b"\x05"]
    assert len(decliner.declined_expiries) <= 2 * 3 + 1


def test_a_peer_that_never_had_the_item_is_not_told_of_it() -> None:
    """HOLDER - DECLINER - FRESH in a line, FRESH beyond the far items too: DECLINER
    cannot send FRESH what it declined, so its summaries to FRESH must not count it."""
    policy = Policy()
    holder = GossipEngine(HOLDER, (DECLINER,), lambda candidate: None)
    decliner = GossipEngine(DECLINER, (HOLDER, FRESH), policy)
    fresh = GossipEngine(FRESH, (DECLINER,), policy)
    for made in (item(1), item(3, FAR)):
        holder.handle(ReceiveItems(DECLINER, (made,)), NOW_MS)
    engines = {HOLDER: holder, DECLINER: decliner, FRESH: fresh}
    deliver(engines, NOW_MS)
    assert set(decliner.declined) == {item(3, FAR).name}
    assert set(fresh.held()) == {item(1).name} and fresh.declined == {}
    for round_ in range(1, 4):
        out = deliver(engines, NOW_MS + round_ * GOSSIP_ROUND_INTERVAL_MS)
    # Quiet: one summary per walk (two links, both ways), nothing answered.
    sent = [d for effects in out.values() for d in digests(effects)]
    assert len(sent) == 4 and all(d.summary is not None for d in sent)
