"""Transition tables: every proposal state against every message kind (h2's style).

Each row says, for a proposal in a given state and a message from the peer
about it: the refusal (or none), the messages we send, the records we write,
and the proposal's status afterwards. The tables must cover every pair.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import pytest

from node.snap import ActionDecide, ActionPropose, BilateralLedger, Direction
from node.wire import Accept, Ack, MsgType, Propose, Reject, SnapMessage
from tests.unit.test_snap_support import (
    NOW_MS,
    USD,
    condition_of,
    preimage_of,
    receive,
    record_kinds,
    refusals,
    run,
    sent,
)

EXPIRES_MS = NOW_MS + 60_000
OURS = Propose(0, 40, USD, condition_of(1), EXPIRES_MS)
THEIRS = Propose(0, 40, USD, condition_of(1), EXPIRES_MS)

Outcome = tuple[str | None, list[SnapMessage], list[str], str | None]
Setup = Callable[[], BilateralLedger]


# --- our proposal (msgId 0, conditional) and the peer's answers ---------------------


def our_pending() -> BilateralLedger:
    ledger = BilateralLedger({USD: None}, settled_kept_max=1)
    run(ledger, ActionPropose(40, USD, condition_of(1), EXPIRES_MS))
    return ledger


def our_pending_acked() -> BilateralLedger:
    ledger = our_pending()
    receive(ledger, Ack(0, MsgType.PROPOSE))
    return ledger


def our_accepted() -> BilateralLedger:
    ledger = our_pending()
    receive(ledger, Accept(0, preimage_of(1)))
    return ledger


def our_rejected() -> BilateralLedger:
    ledger = our_pending()
    receive(ledger, Reject(0, "no"))
    return ledger


def our_forgotten() -> BilateralLedger:
    ledger = our_rejected()
    run(ledger, ActionPropose(1, USD, None, None))
    receive(ledger, Accept(1))  # settles msgId 1, which pushes msgId 0 out
    return ledger


def our_never() -> BilateralLedger:
    return BilateralLedger({USD: None})


OUTGOING_STATES: dict[str, Setup] = {
    "pending": our_pending,
    "pending-acked": our_pending_acked,
    "accepted": our_accepted,
    "rejected": our_rejected,
    "forgotten": our_forgotten,
    "never": our_never,
}
ANSWERS: dict[str, SnapMessage] = {
    "accept": Accept(0, preimage_of(1)),
    "accept-wrong-preimage": Accept(0, preimage_of(2)),
    "reject": Reject(0, "no"),
    "reject-other-reason": Reject(0, "other"),
    "ack-propose": Ack(0, MsgType.PROPOSE),
}
ACK_ACCEPT, ACK_REJECT = Ack(0, MsgType.ACCEPT), Ack(0, MsgType.REJECT)
DECIDED = ["OutgoingDecided"]
EVIDENCE = ["EvidenceKept"]

OUTGOING_TABLE: dict[tuple[str, str], Outcome] = {
    ("pending", "accept"): (None, [ACK_ACCEPT], DECIDED, "accepted"),
    ("pending", "accept-wrong-preimage"): ("wrong-preimage", [], [], "pending"),
    ("pending", "reject"): (None, [ACK_REJECT], DECIDED, "rejected"),
    ("pending", "reject-other-reason"): (None, [ACK_REJECT], DECIDED, "rejected"),
    ("pending", "ack-propose"): (None, [], ["OutgoingProposeAcked"], "pending"),
    ("pending-acked", "accept"): (None, [ACK_ACCEPT], DECIDED, "accepted"),
    ("pending-acked", "accept-wrong-preimage"): ("wrong-preimage", [], [], "pending"),
    ("pending-acked", "reject"): (None, [ACK_REJECT], DECIDED, "rejected"),
    ("pending-acked", "reject-other-reason"): (None, [ACK_REJECT], DECIDED, "rejected"),
    ("pending-acked", "ack-propose"): (None, [], [], "pending"),
    ("accepted", "accept"): (None, [ACK_ACCEPT], [], "accepted"),
    ("accepted", "accept-wrong-preimage"): ("wrong-preimage", [], [], "accepted"),
    ("accepted", "reject"): ("contradiction", [], EVIDENCE, "accepted"),
    ("accepted", "reject-other-reason"): ("contradiction", [], EVIDENCE, "accepted"),
    ("accepted", "ack-propose"): (None, [], [], "accepted"),
    ("rejected", "accept"): ("contradiction", [], EVIDENCE, "rejected"),
    ("rejected", "accept-wrong-preimage"): ("wrong-preimage", [], [], "rejected"),
    ("rejected", "reject"): (None, [ACK_REJECT], [], "rejected"),
    ("rejected", "reject-other-reason"): ("contradiction", [], EVIDENCE, "rejected"),
    ("rejected", "ack-propose"): (None, [], [], "rejected"),
    ("forgotten", "accept"): (None, [ACK_ACCEPT], [], None),
    ("forgotten", "accept-wrong-preimage"): (None, [ACK_ACCEPT], [], None),
    ("forgotten", "reject"): (None, [ACK_REJECT], [], None),
    ("forgotten", "reject-other-reason"): (None, [ACK_REJECT], [], None),
    ("forgotten", "ack-propose"): (None, [], [], None),
    ("never", "accept"): ("unknown-msgid", [], [], None),
    ("never", "accept-wrong-preimage"): ("unknown-msgid", [], [], None),
    ("never", "reject"): ("unknown-msgid", [], [], None),
    ("never", "reject-other-reason"): ("unknown-msgid", [], [], None),
    ("never", "ack-propose"): ("unknown-msgid", [], [], None),
}


# --- the peer's proposal (msgId 0, conditional) and its messages ---------------------


def their_ledger() -> BilateralLedger:
    return BilateralLedger({USD: None}, settled_kept_max=1)


def their_pending() -> BilateralLedger:
    ledger = their_ledger()
    receive(ledger, THEIRS)
    return ledger


def their_accepted() -> BilateralLedger:
    ledger = their_pending()
    run(ledger, ActionDecide(0, True, preimage_of(1), ""))
    return ledger


def their_rejected() -> BilateralLedger:
    ledger = their_pending()
    run(ledger, ActionDecide(0, False, None, "no"))
    return ledger


def their_accepted_acked() -> BilateralLedger:
    ledger = their_accepted()
    receive(ledger, ACK_ACCEPT)
    return ledger


def their_forgotten() -> BilateralLedger:
    ledger = their_accepted_acked()
    receive(ledger, Propose(1, 5, USD), Ack(1, MsgType.ACCEPT))
    return ledger


INCOMING_STATES: dict[str, Setup] = {
    "unseen": their_ledger,
    "pending": their_pending,
    "accepted": their_accepted,
    "rejected": their_rejected,
    "accepted-acked": their_accepted_acked,
    "forgotten": their_forgotten,
}
MESSAGES: dict[str, SnapMessage] = {
    "propose": THEIRS,
    "propose-other": Propose(0, 41, USD, condition_of(1), EXPIRES_MS),
    "ack-accept": ACK_ACCEPT,
    "ack-reject": ACK_REJECT,
}
ACK_PROPOSE = Ack(0, MsgType.PROPOSE)
ACCEPT, REJECT = Accept(0, preimage_of(1)), Reject(0, "no")
PROPOSED = ["IncomingProposed"]
ACKED = ["IncomingDecisionAcked"]

INCOMING_TABLE: dict[tuple[str, str], Outcome] = {
    ("unseen", "propose"): (None, [ACK_PROPOSE], PROPOSED, "pending"),
    ("unseen", "propose-other"): (None, [ACK_PROPOSE], PROPOSED, "pending"),
    ("unseen", "ack-accept"): ("unknown-msgid", [], [], None),
    ("unseen", "ack-reject"): ("unknown-msgid", [], [], None),
    ("pending", "propose"): (None, [ACK_PROPOSE], [], "pending"),
    ("pending", "propose-other"): ("contradiction", [], EVIDENCE, "pending"),
    ("pending", "ack-accept"): ("unexpected-ack", [], [], "pending"),
    ("pending", "ack-reject"): ("unexpected-ack", [], [], "pending"),
    ("accepted", "propose"): (None, [ACCEPT], [], "accepted"),
    ("accepted", "propose-other"): ("contradiction", [], EVIDENCE, "accepted"),
    ("accepted", "ack-accept"): (None, [], ACKED, "accepted"),
    ("accepted", "ack-reject"): ("unexpected-ack", [], [], "accepted"),
    ("rejected", "propose"): (None, [REJECT], [], "rejected"),
    ("rejected", "propose-other"): ("contradiction", [], EVIDENCE, "rejected"),
    ("rejected", "ack-accept"): ("unexpected-ack", [], [], "rejected"),
    ("rejected", "ack-reject"): (None, [], ACKED, "rejected"),
    ("accepted-acked", "propose"): (None, [ACCEPT], [], "accepted"),
    ("accepted-acked", "propose-other"): ("contradiction", [], EVIDENCE, "accepted"),
    ("accepted-acked", "ack-accept"): (None, [], [], "accepted"),
    ("accepted-acked", "ack-reject"): ("unexpected-ack", [], [], "accepted"),
    ("forgotten", "propose"): ("stale", [], [], None),
    ("forgotten", "propose-other"): ("stale", [], [], None),
    ("forgotten", "ack-accept"): (None, [], [], None),
    ("forgotten", "ack-reject"): (None, [], [], None),
}


def test_tables_cover_every_pair() -> None:
    assert set(OUTGOING_TABLE) == set(product(OUTGOING_STATES, ANSWERS))
    assert set(INCOMING_TABLE) == set(product(INCOMING_STATES, MESSAGES))


def check_row(
    ledger: BilateralLedger, direction: Direction, message: SnapMessage, outcome: Outcome
) -> None:
    refusal, answers, written, status = outcome
    totals_before = ledger.totals()
    effects = receive(ledger, message)
    assert refusals(effects) == ([] if refusal is None else [refusal])
    assert sent(effects) == answers
    assert record_kinds(effects) == written
    view = ledger.proposal(direction, 0)
    assert (None if view is None else str(view.status)) == status
    if refusal is not None:
        assert ledger.totals() == totals_before


@pytest.mark.parametrize(("state", "answer"), sorted(OUTGOING_TABLE))
def test_outgoing_transitions(state: str, answer: str) -> None:
    ledger = OUTGOING_STATES[state]()
    check_row(ledger, Direction.OUTGOING, ANSWERS[answer], OUTGOING_TABLE[(state, answer)])


@pytest.mark.parametrize(("state", "message"), sorted(INCOMING_TABLE))
def test_incoming_transitions(state: str, message: str) -> None:
    ledger = INCOMING_STATES[state]()
    check_row(ledger, Direction.INCOMING, MESSAGES[message], INCOMING_TABLE[(state, message)])


def test_a_propose_beyond_the_next_msg_id_is_out_of_order_in_every_state() -> None:
    for setup in INCOMING_STATES.values():
        ledger = setup()
        ahead = ledger.next_msg_id(Direction.INCOMING) + 1
        effects = receive(ledger, Propose(ahead, 1, USD))
        assert refusals(effects) == ["out-of-order"] and sent(effects) == []
