"""Rules of the SNAP bilateral ledger, one at a time."""

from __future__ import annotations

import pytest

import node.snap.ledger as ledger_module
import node.snap.state as state_module
from node.limits import (
    AMOUNT_MAX,
    CLOCK_SKEW_MS_MAX,
    EXPIRY_IN_FUTURE_MS_MAX,
    REASON_LENGTH_MAX,
    RETRANSMIT_INTERVAL_MS,
)
from node.snap import (
    ActionDecide,
    ActionLearnPreimage,
    ActionPropose,
    BilateralLedger,
    Direction,
    EvidenceKept,
    NotifyFinal,
    NotifyProposed,
    NotifyRefused,
    OutgoingDecided,
    PartyBalance,
    PeerConnected,
    PersistRecord,
    ProposalStatus,
    SendMessages,
    TimerTick,
)
from node.wire import Accept, Ack, MsgType, Propose, Reject, snap_to_json
from tests.unit.test_snap_support import (
    EUR,
    FRAME,
    NOW_MS,
    USD,
    condition_of,
    finals,
    preimage_of,
    receive,
    record_kinds,
    records,
    refusals,
    replayed,
    run,
    sent,
)

LATER_MS = NOW_MS + 60_000


def conditional(msg_id: int, amount: int, n: int, expires_at_ms: int = LATER_MS) -> Propose:
    return Propose(msg_id, amount, USD, condition_of(n), expires_at_ms)


# --- our proposals ---------------------------------------------------------------------


def test_propose_records_then_sends_and_moves_balances() -> None:
    ledger = BilateralLedger({USD: None})
    effects = run(ledger, ActionPropose(30, USD, None, None))
    assert record_kinds(effects) == ["OutgoingProposed"]
    assert isinstance(effects[0], PersistRecord)
    assert NotifyProposed(0) in effects
    assert sent(effects) == [Propose(0, 30, USD)]
    assert ledger.balances()[USD].ours == PartyBalance(current=-30, payable=30, receivable=0)
    assert ledger.balances()[USD].theirs == PartyBalance(current=0, payable=0, receivable=30)
    assert NotifyProposed(1) in run(ledger, ActionPropose(1, USD, None, None, msg_id=1))


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (ActionPropose(0, USD, None, None), "bad-amount"),
        (ActionPropose(-5, USD, None, None), "bad-amount"),
        (ActionPropose(AMOUNT_MAX + 1, USD, None, None), "bad-amount"),
        (ActionPropose(5, "USD", None, None), "bad-unit"),
        (ActionPropose(5, EUR, None, None), "unknown-unit"),
        (ActionPropose(5, USD, condition_of(1), None), "bad-condition"),
        (ActionPropose(5, USD, None, LATER_MS), "bad-condition"),
        (ActionPropose(5, USD, condition_of(1)[:31], LATER_MS), "bad-condition"),
        (ActionPropose(5, USD, condition_of(1), NOW_MS), "expired"),
        (
            ActionPropose(5, USD, condition_of(1), NOW_MS + EXPIRY_IN_FUTURE_MS_MAX + 1),
            "expiry-too-far",
        ),
        (ActionPropose(5, USD, None, None, msg_id=1), "bad-msg-id"),
    ],
)
def test_propose_refusals_leave_the_state_alone(action: ActionPropose, reason: str) -> None:
    ledger = BilateralLedger({USD: None})
    before = ledger.to_snapshot()
    effects = run(ledger, action)
    assert len(effects) == 1 and isinstance(effects[0], NotifyRefused)
    assert effects[0].reason == reason and effects[0].message is None
    assert ledger.to_snapshot() == before


def test_propose_at_the_furthest_expiry_is_allowed() -> None:
    ledger = BilateralLedger({USD: None})
    expires_at_ms = NOW_MS + EXPIRY_IN_FUTURE_MS_MAX
    assert NotifyProposed(0) in run(ledger, ActionPropose(5, USD, condition_of(1), expires_at_ms))


def test_propose_in_any_unit_when_unknown_units_are_allowed() -> None:
    ledger = BilateralLedger({}, unknown_units_allowed=True)
    assert NotifyProposed(0) in run(ledger, ActionPropose(5, EUR, None, None))


def test_too_many_pending_outgoing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "PENDING_PROPOSALS_PER_PEER_MAX", 2)
    ledger = BilateralLedger({USD: None})
    run(ledger, ActionPropose(1, USD, None, None))
    run(ledger, ActionPropose(1, USD, None, None))
    assert refusals(run(ledger, ActionPropose(1, USD, None, None))) == ["too-many-pending"]
    receive(ledger, Accept(0))
    assert NotifyProposed(2) in run(ledger, ActionPropose(1, USD, None, None))


# --- the peer's proposals --------------------------------------------------------------


def test_unconditional_proposal_is_accepted_at_once() -> None:
    ledger = BilateralLedger({USD: None})
    effects = receive(ledger, Propose(0, 25, USD))
    assert record_kinds(effects) == ["IncomingProposed", "IncomingDecided"]
    assert sent(effects) == [Accept(0)]
    assert finals(effects) == [NotifyFinal(Direction.INCOMING, 0, True, None, None)]
    assert ledger.balances()[USD].ours == PartyBalance(25, 0, 0)
    assert ledger.balances()[USD].theirs == PartyBalance(-25, 0, 0)


def test_without_auto_decide_a_proposal_waits() -> None:
    ledger = BilateralLedger({USD: None}, auto_decide=False)
    effects = receive(ledger, Propose(0, 25, USD))
    assert record_kinds(effects) == ["IncomingProposed"]
    assert sent(effects) == [Ack(0, MsgType.PROPOSE)]
    assert ledger.balances()[USD].ours == PartyBalance(0, 0, 25)
    assert ledger.balances()[USD].theirs == PartyBalance(-25, 25, 0)


def test_out_of_order_proposal_is_refused_without_a_trace() -> None:
    ledger = BilateralLedger({USD: None})
    effects = receive(ledger, Propose(1, 25, USD))
    assert refusals(effects) == ["out-of-order"]
    assert records(effects) == [] and sent(effects) == []
    assert ledger.next_msg_id(Direction.INCOMING) == 0


def test_repeats_get_the_first_answer_and_no_second_effect() -> None:
    ledger = BilateralLedger({USD: None}, auto_decide=False)
    receive(ledger, conditional(0, 5, n=1))
    again = receive(ledger, conditional(0, 5, n=1))
    assert records(again) == [] and sent(again) == [Ack(0, MsgType.PROPOSE)]
    receive(ledger, Propose(1, 7, USD))
    run(ledger, ActionDecide(1, False, None, "no thanks"))
    again = receive(ledger, Propose(1, 7, USD))
    assert records(again) == [] and finals(again) == []
    assert sent(again) == [Reject(1, "no thanks")]


def test_contradicting_proposal_is_refused_and_kept_as_evidence() -> None:
    ledger = BilateralLedger({USD: None})
    receive(ledger, Propose(0, 25, USD))
    totals_before = ledger.totals()
    effects = receive(ledger, Propose(0, 26, USD))
    assert refusals(effects) == ["contradiction"]
    assert records(effects) == [
        EvidenceKept("contradiction", snap_to_json(Propose(0, 26, USD)), FRAME, NOW_MS)
    ]
    assert sent(effects) == []
    assert ledger.totals() == totals_before
    assert ledger.evidence()[0].frame_raw == FRAME


def test_evidence_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "EVIDENCE_PER_PEER_MAX", 2)
    monkeypatch.setattr(state_module, "EVIDENCE_PER_PEER_MAX", 2)
    ledger = BilateralLedger({USD: None})
    receive(ledger, Propose(0, 25, USD))
    for amount in (1, 2, 3):
        assert refusals(receive(ledger, Propose(0, amount, USD))) == ["contradiction"]
    assert len(ledger.evidence()) == 2


def rejected_reason(ledger: BilateralLedger, message: Propose, now_ms: int = NOW_MS) -> str | None:
    """The reason the ledger rejected ``message`` on receipt, None if it did not."""
    effects = receive(ledger, message, now_ms=now_ms)
    assert refusals(effects) == []
    rejections = [m for m in sent(effects) if isinstance(m, Reject)]
    return rejections[0].reason if rejections else None


def test_unknown_unit_is_rejected() -> None:
    ledger = BilateralLedger({USD: None})
    assert rejected_reason(ledger, Propose(0, 5, EUR)) == "unknown-unit"
    assert ledger.totals()[EUR].rejected_in_count == 1


def test_credit_limit_exactly_at_and_one_over() -> None:
    ledger = BilateralLedger({USD: 100}, auto_decide=False)
    assert rejected_reason(ledger, conditional(0, 60, n=1)) is None  # receivable 60
    assert rejected_reason(ledger, Propose(1, 41, USD)) == "credit-limit"
    assert rejected_reason(ledger, Propose(2, 40, USD)) is None  # exactly 100
    assert rejected_reason(ledger, Propose(3, 1, USD)) == "credit-limit"


def test_credit_limit_counts_accepted_and_our_pending() -> None:
    ledger = BilateralLedger({USD: 100})
    assert rejected_reason(ledger, Propose(0, 100, USD)) is None  # accepted: current 100
    assert rejected_reason(ledger, Propose(1, 1, USD)) == "credit-limit"
    run(ledger, ActionPropose(10, USD, None, None))  # our pending lowers our current
    assert rejected_reason(ledger, Propose(2, 10, USD)) is None
    assert rejected_reason(ledger, Propose(3, 1, USD)) == "credit-limit"


def test_lowered_limit_affects_only_new_proposals() -> None:
    ledger = BilateralLedger({USD: 100})
    receive(ledger, Propose(0, 80, USD))
    ledger.set_units({USD: 50})
    assert ledger.balances()[USD].ours.current == 80
    assert rejected_reason(ledger, Propose(1, 1, USD)) == "credit-limit"


def test_expiry_rules_on_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = BilateralLedger({USD: None})
    assert rejected_reason(ledger, conditional(0, 5, 1, expires_at_ms=NOW_MS)) == "expired"
    assert rejected_reason(ledger, conditional(1, 5, 1, expires_at_ms=NOW_MS + 1)) is None
    too_far_ms = NOW_MS + EXPIRY_IN_FUTURE_MS_MAX
    assert rejected_reason(ledger, conditional(2, 5, 1, too_far_ms + 1)) == "expiry-too-far"
    assert rejected_reason(ledger, conditional(3, 5, 1, too_far_ms)) is None


def test_too_many_pending_incoming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "PENDING_PROPOSALS_PER_PEER_MAX", 2)
    ledger = BilateralLedger({USD: None})
    assert rejected_reason(ledger, conditional(0, 5, n=1)) is None
    assert rejected_reason(ledger, conditional(1, 5, n=2)) is None
    assert rejected_reason(ledger, conditional(2, 5, n=3)) == "too-many-pending"
    assert rejected_reason(ledger, Propose(3, 5, USD)) == "too-many-pending"


def test_outbox_full_refuses_new_proposals_until_acks_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ledger_module, "OUTBOX_MESSAGES_PER_PEER_MAX", 2)
    ledger = BilateralLedger({USD: None})
    receive(ledger, Propose(0, 1, USD), Propose(1, 1, USD))
    assert ledger.unacked_count() == 2
    effects = receive(ledger, Propose(2, 1, USD))
    assert refusals(effects) == ["outbox-full"] and records(effects) == []
    assert refusals(run(ledger, ActionPropose(1, USD, None, None))) == ["outbox-full"]
    receive(ledger, Ack(0, MsgType.ACCEPT))
    assert sent(receive(ledger, Propose(2, 1, USD))) == [Accept(2)]


def test_known_preimage_accepts_a_conditional_proposal() -> None:
    ledger = BilateralLedger({USD: None}, preimage_lookup={condition_of(1): preimage_of(1)}.get)
    effects = receive(ledger, conditional(0, 5, n=1))
    assert sent(effects) == [Accept(0, preimage_of(1))]
    assert sent(receive(ledger, conditional(1, 5, n=2))) == [Ack(1, MsgType.PROPOSE)]


def test_learning_a_preimage_accepts_what_it_unlocks() -> None:
    ledger = BilateralLedger({USD: None})
    receive(ledger, conditional(0, 5, n=1), conditional(1, 6, n=2), conditional(2, 7, n=1))
    assert run(ledger, ActionLearnPreimage(preimage_of(3))) == []
    effects = run(ledger, ActionLearnPreimage(preimage_of(1)))
    assert sent(effects) == [Accept(0, preimage_of(1)), Accept(2, preimage_of(1))]
    assert ledger.balances()[USD].ours == PartyBalance(12, 0, 6)
    assert run(ledger, ActionLearnPreimage(preimage_of(1))) == []
    assert refusals(run(ledger, ActionLearnPreimage(b"short"))) == ["bad-preimage"]


def test_no_acceptance_at_or_after_expiry() -> None:
    ledger = BilateralLedger({USD: None})
    receive(ledger, conditional(0, 5, n=1))
    assert run(ledger, ActionLearnPreimage(preimage_of(1)), now_ms=LATER_MS) == []
    decide = ActionDecide(0, True, preimage_of(1), "")
    assert refusals(run(ledger, decide, now_ms=LATER_MS)) == ["expired"]
    assert ledger.proposal(Direction.INCOMING, 0).status is ProposalStatus.PENDING  # type: ignore[union-attr]


def test_tick_rejects_expired_proposals() -> None:
    ledger = BilateralLedger({USD: None})
    receive(ledger, conditional(0, 5, n=1), conditional(1, 5, n=2, expires_at_ms=LATER_MS + 1))
    assert records(run(ledger, TimerTick(), now_ms=LATER_MS - 1)) == []
    effects = run(ledger, TimerTick(), now_ms=LATER_MS)
    assert Reject(0, "expired") in sent(effects)
    assert finals(effects) == [NotifyFinal(Direction.INCOMING, 0, False, None, "expired")]
    assert ledger.proposal(Direction.INCOMING, 1).status is ProposalStatus.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("decide", "reason"),
    [
        (ActionDecide(9, True, None, ""), "unknown-msgid"),
        (ActionDecide(0, True, None, ""), "wrong-preimage"),
        (ActionDecide(0, True, preimage_of(2), ""), "wrong-preimage"),
        (ActionDecide(1, True, preimage_of(1), ""), "unexpected-preimage"),
        (ActionDecide(0, False, None, "x" * (REASON_LENGTH_MAX + 1)), "bad-reason"),
        (ActionDecide(2, False, None, "no"), "not-pending"),
    ],
)
def test_decide_by_hand_refusals(decide: ActionDecide, reason: str) -> None:
    ledger = BilateralLedger({USD: None}, auto_decide=False)
    receive(ledger, conditional(0, 5, n=1), Propose(1, 5, USD), Propose(2, 5, USD))
    run(ledger, ActionDecide(2, True, None, ""))
    before = ledger.to_snapshot()
    assert refusals(run(ledger, decide)) == [reason]
    assert ledger.to_snapshot() == before


def test_decide_by_hand() -> None:
    ledger = BilateralLedger({USD: None}, auto_decide=False)
    receive(ledger, conditional(0, 5, n=1), Propose(1, 6, USD))
    assert sent(run(ledger, ActionDecide(0, True, preimage_of(1), ""))) == [
        Accept(0, preimage_of(1))
    ]
    assert sent(run(ledger, ActionDecide(1, False, None, "not today"))) == [Reject(1, "not today")]
    assert ledger.balances()[USD].ours == PartyBalance(5, 0, 0)


# --- the peer's decisions on our proposals ------------------------------------------


def proposing_ledger(*, condition: bool = True) -> BilateralLedger:
    ledger = BilateralLedger({USD: None})
    if condition:
        run(ledger, ActionPropose(40, USD, condition_of(1), LATER_MS))
    else:
        run(ledger, ActionPropose(40, USD, None, None))
    return ledger


def test_accept_of_our_proposal() -> None:
    ledger = proposing_ledger()
    effects = receive(ledger, Accept(0, preimage_of(1)))
    assert records(effects) == [OutgoingDecided(0, True, preimage_of(1), None, False, NOW_MS)]
    assert sent(effects) == [Ack(0, MsgType.ACCEPT)]
    assert finals(effects) == [NotifyFinal(Direction.OUTGOING, 0, True, preimage_of(1), None)]
    assert ledger.balances()[USD].ours == PartyBalance(-40, 0, 0)
    assert ledger.balances()[USD].theirs == PartyBalance(40, 0, 0)
    repeat = receive(ledger, Accept(0, preimage_of(1)))
    assert records(repeat) == [] and sent(repeat) == [Ack(0, MsgType.ACCEPT)]


def test_reject_of_our_proposal_restores_balances() -> None:
    ledger = proposing_ledger()
    effects = receive(ledger, Reject(0, "no route"))
    assert sent(effects) == [Ack(0, MsgType.REJECT)]
    assert ledger.balances()[USD].ours == PartyBalance(0, 0, 0)
    assert ledger.proposal(Direction.OUTGOING, 0).reason == "no route"  # type: ignore[union-attr]
    assert records(receive(ledger, Reject(0, "no route"))) == []


def test_decisions_for_unknown_msg_ids_are_refused() -> None:
    ledger = proposing_ledger()
    assert refusals(receive(ledger, Accept(1, preimage_of(1)), Reject(7, "x"))) == [
        "unknown-msgid",
        "unknown-msgid",
    ]


def test_wrong_preimage_is_refused_and_we_keep_repeating() -> None:
    ledger = proposing_ledger()
    for message in (Accept(0, preimage_of(2)), Accept(0)):
        effects = receive(ledger, message)
        assert refusals(effects) == ["wrong-preimage"] and records(effects) == []
    assert ledger.unacked_count() == 1
    later_ms = NOW_MS + RETRANSMIT_INTERVAL_MS
    assert sent(run(ledger, TimerTick(), now_ms=later_ms)) == [
        Propose(0, 40, USD, condition_of(1), LATER_MS)
    ]


def test_preimage_for_an_unconditional_proposal_is_refused() -> None:
    ledger = proposing_ledger(condition=False)
    assert refusals(receive(ledger, Accept(0, preimage_of(1)))) == ["unexpected-preimage"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (Reject(0, "no"), Accept(0, preimage_of(1))),
        (Accept(0, preimage_of(1)), Reject(0, "no")),
        (Reject(0, "no"), Reject(0, "other reason")),
    ],
)
def test_contradicting_decisions_are_evidence(
    first: Accept | Reject, second: Accept | Reject
) -> None:
    ledger = proposing_ledger()
    receive(ledger, first)
    totals_before = ledger.totals()
    effects = receive(ledger, second)
    assert refusals(effects) == ["contradiction"] and sent(effects) == []
    assert record_kinds(effects) == ["EvidenceKept"]
    assert ledger.totals() == totals_before


def test_late_accept_is_applied_and_kept_as_evidence() -> None:
    ledger = proposing_ledger()
    late_ms = LATER_MS + CLOCK_SKEW_MS_MAX + 1
    effects = receive(ledger, Accept(0, preimage_of(1)), now_ms=late_ms)
    assert record_kinds(effects) == ["OutgoingDecided", "EvidenceKept"]
    assert ledger.proposal(Direction.OUTGOING, 0).late  # type: ignore[union-attr]
    assert ledger.evidence()[0].reason == "late-accept"
    assert ledger.balances()[USD].theirs.current == 40


def test_accept_within_the_clock_skew_is_not_late() -> None:
    ledger = proposing_ledger()
    receive(ledger, Accept(0, preimage_of(1)), now_ms=LATER_MS + CLOCK_SKEW_MS_MAX)
    assert not ledger.proposal(Direction.OUTGOING, 0).late  # type: ignore[union-attr]
    assert ledger.evidence() == []


# --- acknowledgements and retransmission --------------------------------------------


def test_ack_of_our_propose_stops_repeats() -> None:
    ledger = proposing_ledger()
    assert record_kinds(receive(ledger, Ack(0, MsgType.PROPOSE))) == ["OutgoingProposeAcked"]
    assert ledger.unacked_count() == 0
    assert receive(ledger, Ack(0, MsgType.PROPOSE)) == []
    assert run(ledger, TimerTick(), now_ms=LATER_MS) == []


def test_acks_of_our_decisions() -> None:
    ledger = BilateralLedger({USD: None}, auto_decide=False)
    receive(ledger, Propose(0, 5, USD), Propose(1, 5, USD))
    assert refusals(receive(ledger, Ack(0, MsgType.ACCEPT))) == ["unexpected-ack"]
    assert refusals(receive(ledger, Ack(5, MsgType.ACCEPT))) == ["unknown-msgid"]
    run(ledger, ActionDecide(0, True, None, ""))
    assert refusals(receive(ledger, Ack(0, MsgType.REJECT))) == ["unexpected-ack"]
    assert record_kinds(receive(ledger, Ack(0, MsgType.ACCEPT))) == ["IncomingDecisionAcked"]
    assert receive(ledger, Ack(0, MsgType.ACCEPT)) == []
    assert refusals(receive(ledger, Ack(3, MsgType.PROPOSE))) == ["unknown-msgid"]


def test_retransmit_timing() -> None:
    ledger = proposing_ledger()
    propose = Propose(0, 40, USD, condition_of(1), LATER_MS)
    assert run(ledger, TimerTick(), now_ms=NOW_MS + RETRANSMIT_INTERVAL_MS - 1) == []
    resend_ms = NOW_MS + RETRANSMIT_INTERVAL_MS
    assert sent(run(ledger, TimerTick(), now_ms=resend_ms)) == [propose]
    assert run(ledger, TimerTick(), now_ms=resend_ms + 1) == []
    assert sent(run(ledger, PeerConnected(), now_ms=resend_ms + 2)) == [propose]
    assert run(ledger, TimerTick(), now_ms=resend_ms + RETRANSMIT_INTERVAL_MS) == []


def test_retransmit_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "RETRANSMIT_BATCH_MAX", 2)
    ledger = BilateralLedger({USD: None})
    for _ in range(3):
        run(ledger, ActionPropose(1, USD, None, None))
    due_ms = NOW_MS + RETRANSMIT_INTERVAL_MS
    first = run(ledger, TimerTick(), now_ms=due_ms)
    assert len(first) == 1 and isinstance(first[0], SendMessages)
    assert [m.msg_id for m in sent(first)] == [0, 1]
    assert [m.msg_id for m in sent(run(ledger, TimerTick(), now_ms=due_ms))] == [2]
    assert [m.msg_id for m in sent(run(ledger, PeerConnected(), now_ms=due_ms))] == [0, 1, 2]


def test_a_backlog_after_a_silent_cut_is_repeated_in_one_round() -> None:
    """PROPOSEs sent one by one into a dead link: once the oldest is due, the ones
    after it go with it, in msgId order, because the peer takes them only in order."""
    ledger = BilateralLedger({USD: None})
    for index in range(20):
        run(ledger, ActionPropose(1, USD, None, None), now_ms=NOW_MS + index * 40)
    due_ms = NOW_MS + RETRANSMIT_INTERVAL_MS
    assert [m.msg_id for m in sent(run(ledger, TimerTick(), now_ms=due_ms))] == list(range(20))
    assert run(ledger, TimerTick(), now_ms=due_ms + 10) == []


def test_after_a_restart_everything_unacknowledged_is_due() -> None:
    ledger = BilateralLedger({USD: None})
    log = records(run(ledger, ActionPropose(1, USD, None, None)))
    log += records(receive(ledger, Propose(0, 2, USD)))
    restarted = replayed(log, ledger)
    assert sorted(map(str, sent(run(restarted, TimerTick())))) == sorted(
        map(str, [Propose(0, 1, USD), Accept(0)])
    )


# --- compaction ------------------------------------------------------------------------


def test_settled_proposals_are_forgotten_behind_the_kept_ones() -> None:
    ledger = BilateralLedger({USD: None}, settled_kept_max=2)
    for msg_id in range(4):
        run(ledger, ActionPropose(1, USD, None, None))
        receive(ledger, Accept(msg_id))
        receive(ledger, Propose(msg_id, 3, USD), Ack(msg_id, MsgType.ACCEPT))
    assert [p.msg_id for p in ledger.proposals(Direction.OUTGOING)] == [2, 3]
    assert [p.msg_id for p in ledger.proposals(Direction.INCOMING)] == [2, 3]
    assert ledger.proposal(Direction.OUTGOING, 0) is None
    forgotten = receive(ledger, Accept(0), Reject(1, "late repeat"), Ack(0, MsgType.ACCEPT))
    assert records(forgotten) == [] and refusals(forgotten) == []
    assert sent(forgotten) == [Ack(0, MsgType.ACCEPT), Ack(1, MsgType.REJECT)]
    assert refusals(receive(ledger, Propose(0, 3, USD))) == ["stale"]
    assert ledger.totals()[USD].accepted_in == 12 and ledger.totals()[USD].accepted_out == 4


def test_unacknowledged_decisions_are_not_forgotten() -> None:
    ledger = BilateralLedger({USD: None}, settled_kept_max=1)
    receive(ledger, Propose(0, 3, USD), Propose(1, 3, USD), Propose(2, 3, USD))
    receive(ledger, Ack(1, MsgType.ACCEPT), Ack(2, MsgType.ACCEPT))
    assert [p.msg_id for p in ledger.proposals(Direction.INCOMING)] == [0, 2]
    assert sent(receive(ledger, Propose(0, 3, USD))) == [Accept(0)]
