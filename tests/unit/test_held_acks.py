"""Delayed ACKs: an ACK-only message waits for a frame to ride on, never past its delay."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from node import wire
from node.held_acks import HeldAcks
from node.limits import ACK_DELAY_MS

PEER_A = b"a" * 32
PEER_B = b"b" * 32
ACK_PROPOSE_3 = wire.Ack(3, wire.MsgType.PROPOSE)
ACK_ACCEPT_5 = wire.Ack(5, wire.MsgType.ACCEPT)


def outbox(**by_peer: list[wire.PeerMessage]) -> defaultdict[bytes, list[wire.PeerMessage]]:
    peers = {"a": PEER_A, "b": PEER_B}
    box: defaultdict[bytes, list[wire.PeerMessage]] = defaultdict(list)
    for name, messages in by_peer.items():
        box[peers[name]] = list(messages)
    return box


def test_an_ack_alone_waits_and_leaves_alone_at_its_deadline() -> None:
    held = HeldAcks()
    first = outbox(a=[ACK_ACCEPT_5])
    held.apply(first, 1_000)
    assert dict(first) == {}
    assert held.next_due_ms() == 1_000 + ACK_DELAY_MS

    early = outbox()
    held.apply(early, 1_000 + ACK_DELAY_MS - 1)
    assert dict(early) == {}

    due = outbox()
    held.apply(due, 1_000 + ACK_DELAY_MS)
    assert dict(due) == {PEER_A: [ACK_ACCEPT_5]}
    assert len(held) == 0 and held.next_due_ms() is None


def test_a_held_ack_rides_on_the_next_frame_to_its_peer_only() -> None:
    held = HeldAcks()
    held.apply(outbox(a=[ACK_ACCEPT_5]), 1_000)
    propose = wire.Propose(9, 100, "USD", None, None)
    to_b = outbox(b=[propose])
    held.apply(to_b, 1_010)
    assert dict(to_b) == {PEER_B: [propose]}  # another peer's frame carries nothing of A's

    to_a = outbox(a=[propose])
    held.apply(to_a, 1_020)
    assert dict(to_a) == {PEER_A: [ACK_ACCEPT_5, propose]}
    assert len(held) == 0


def test_a_decision_makes_the_ack_of_its_propose_redundant() -> None:
    held = HeldAcks()
    held.apply(outbox(a=[ACK_PROPOSE_3, ACK_ACCEPT_5]), 1_000)
    accept = wire.Accept(3, b"p" * 32)
    later = outbox(a=[accept])
    held.apply(later, 1_050)
    assert dict(later) == {PEER_A: [ACK_ACCEPT_5, accept]}  # ACK of ACCEPT 5 is not ACK of 3

    same_pass = outbox(a=[ACK_PROPOSE_3, wire.Reject(3, "expired")])
    held.apply(same_pass, 2_000)
    assert same_pass[PEER_A] == [wire.Reject(3, "expired")]


def test_the_same_ack_held_twice_is_sent_once() -> None:
    held = HeldAcks()
    held.apply(outbox(a=[ACK_PROPOSE_3]), 1_000)
    held.apply(outbox(a=[ACK_PROPOSE_3]), 1_100)  # the peer repeated its PROPOSE
    due = outbox()
    held.apply(due, 1_000 + ACK_DELAY_MS)  # the first one's deadline counts
    assert dict(due) == {PEER_A: [ACK_PROPOSE_3]}


_ACKS = st.builds(
    wire.Ack, st.integers(0, 5), st.sampled_from([wire.MsgType.PROPOSE, wire.MsgType.ACCEPT])
)
_OTHERS = st.one_of(
    st.builds(wire.Accept, st.integers(0, 5), st.none()),
    st.builds(wire.Reject, st.integers(0, 5), st.just("no")),
    st.builds(
        wire.Propose, st.integers(0, 5), st.integers(1, 9), st.just("USD"), st.none(), st.none()
    ),
)
_PASS = st.tuples(
    st.integers(0, 150),  # ms since the pass before
    st.dictionaries(
        st.sampled_from([PEER_A, PEER_B]), st.lists(st.one_of(_ACKS, _OTHERS), max_size=4)
    ),
)


@given(st.lists(_PASS, max_size=30))
def test_every_ack_leaves_by_its_deadline_and_nothing_else_waits(passes: list) -> None:  # type: ignore[type-arg]
    held = HeldAcks()
    now = 0
    owed: dict[tuple[bytes, wire.Ack], int] = {}  # ACK -> the deadline it was first held with
    for gap, messages in passes:
        now += gap
        box: defaultdict[bytes, list[wire.PeerMessage]] = defaultdict(list)
        for peer, listed in messages.items():
            box[peer] = list(listed)
        others = {
            peer: [m for m in listed if not isinstance(m, wire.Ack)]
            for peer, listed in messages.items()
        }
        for peer, listed in messages.items():
            for message in listed:
                if isinstance(message, wire.Ack):
                    owed.setdefault((peer, message), now + ACK_DELAY_MS)
        held.apply(box, now)
        for peer, sent in box.items():
            # whatever is not an ACK leaves in this pass, in its order
            assert [m for m in sent if not isinstance(m, wire.Ack)] == others.get(peer, [])
            decided = {m.msg_id for m in sent if isinstance(m, wire.Accept | wire.Reject)}
            for key in [key for key in owed if key[0] == peer]:
                ack = key[1]
                covered = ack.ack_of is wire.MsgType.PROPOSE and ack.msg_id in decided
                if ack in sent or covered:
                    del owed[key]
            assert len([m for m in sent if isinstance(m, wire.Ack)]) == len(
                {m for m in sent if isinstance(m, wire.Ack)}
            )
        assert all(deadline > now for deadline in owed.values()), "an ACK stayed past its deadline"
