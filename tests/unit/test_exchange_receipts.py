"""The maker's validator's receipt of leg A, at the exchange desk.

M signs a receipt only for a leg A still held that leaves leg B its time, and
only once leg B is under way; T keeps a receipt only if it is M's, for its take,
with times an honest M signs, even after its exchange ended.

The desk runs with its real state (ExchangeState, the payment core's
PaymentState); the payment core itself and the Books are stand-ins that record
what the desk asks of them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from node.codec import pack
from node.exchange_desk import ExchangeDesk
from node.exchange_state import ExchangeState
from node.limits import EXCHANGE_CLAIM_MARGIN_MS, EXCHANGE_LEG_B_TIME_MIN_MS
from node.offers.take import TakeAnswer
from node.payments.events import (
    ActionAbandon,
    ActionPay,
    IncomingOpened,
    InvoiceCreated,
    NotifyHeld,
    PaymentEnded,
    PaymentStarted,
)
from node.payments.state import PaymentState
from tests.unit.test_offers_support import BUY, NOW_MS, SELL, key
from tests.unit.test_offers_unsettled import (
    ACCEPTED,
    HELD,
    M_KEY,
    SIGNED_TAKE,
    TAKE,
    accepted,
    held,
)

T, M = "bank-2.test", "bank-1.test"
CONDITION = ACCEPTED.acceptance.condition
UNITS = [f"1E-2 {SELL.partition('/')[2]}", f"1E-2 {BUY.partition('/')[2]}"]


def desk(
    side: str, leg_b: str = "pending", answered: bool = True
) -> tuple[ExchangeDesk, list[Any], list[Any]]:
    """A desk whose exchange of TAKE is open on ``side``; (desk, logged, fed).
    ``leg_b``: what the stand-in payment core makes of leg B's ActionPay;
    ``answered``: the taker's validator has logged M's acceptance."""
    state = ExchangeState()
    payments = PaymentState()
    if side == "maker":
        accept = {"k": "accept", "i": SIGNED_TAKE.to_wire(), "ms": NOW_MS, "path": [T, M]}
        state.apply({**accept, "acceptance": pack(ACCEPTED.to_wire())})
        unit_a = UNITS[1]
        payments.apply(
            InvoiceCreated(
                CONDITION, None, T, TAKE.payment_id, TAKE.maker, TAKE.pay, unit_a, NOW_MS + 10**6
            )
        )
        payments.apply(IncomingOpened(T, 1, TAKE.pay, unit_a, CONDITION, NOW_MS + 10**6, None))
    else:
        take = {"k": "take", "i": SIGNED_TAKE.to_wire(), "preimage": b"s" * 32, "ms": NOW_MS}
        state.apply({**take, "maker_validator": M, "path": [T, M]})
        if answered:
            acceptance = pack(ACCEPTED.to_wire())
            answer = {"k": "answer", "take_id": TAKE.take_id, "acceptance": acceptance}
            state.apply({**answer, "error": None})
    logged: list[Any] = []
    fed: list[Any] = []

    def feed(event: Any) -> list[Any]:
        fed.append(event)
        if isinstance(event, ActionPay) and leg_b != "refused":
            payments.apply(
                PaymentStarted(
                    event.payment_id,
                    event.payee,
                    event.payee_domain,
                    event.amount,
                    event.unit,
                    event.max_fee,
                    event.deadline_ms,
                    event.hold_id,
                    event.condition,
                )
            )
            if leg_b == "failed":
                payments.apply(PaymentEnded(event.payment_id, False, "no-route", None))
        return []

    def log(record: dict[str, Any]) -> None:
        logged.append(record)
        state.apply(record)

    hold = SimpleNamespace(status="open", transfer=SimpleNamespace(max_fee=4, offer_id=None))
    the_desk = ExchangeDesk.__new__(ExchangeDesk)
    the_desk.config = SimpleNamespace(name=M if side == "maker" else T, units=UNITS)  # type: ignore[assignment]
    the_desk.key = M_KEY if side == "maker" else key(2)
    the_desk.state = state
    the_desk.peers = {T} if side == "maker" else {M}
    the_desk.payments = SimpleNamespace(state=SimpleNamespace(payments=payments))
    the_desk.books = SimpleNamespace(hold=lambda owner, payment_id: hold)
    the_desk.customers = SimpleNamespace(end_hold=lambda *args: None)
    the_desk.offers = SimpleNamespace(refusals=[], announce_status=lambda *args: None)
    the_desk.offers.refuse = lambda code, detail: the_desk.offers.refusals.append(code)
    the_desk.log = log
    the_desk.feed = feed
    the_desk.sent = []  # type: ignore[attr-defined]
    the_desk.send = lambda peer, message: the_desk.sent.append((peer, message))  # type: ignore[attr-defined]
    return the_desk, logged, fed


def notice(expires_in_ms: int, now_ms: int) -> NotifyHeld:
    return NotifyHeld(CONDITION, TAKE.payment_id, T, now_ms + expires_in_ms)


NOW = NOW_MS + 5_000
ENOUGH_MS = EXCHANGE_CLAIM_MARGIN_MS + EXCHANGE_LEG_B_TIME_MIN_MS


def test_m_signs_its_receipt_once_leg_b_is_under_way_and_sends_it_back() -> None:
    m, logged, fed = desk("maker")
    m.on_held(notice(ENOUGH_MS + 60_000, NOW), NOW)
    assert [type(event) for event in fed] == [ActionPay]
    assert [record["k"] for record in logged] == ["held"]
    ((peer, answer),) = m.sent  # type: ignore[attr-defined]
    assert peer == T and isinstance(answer, TakeAnswer) and answer.held is not None
    receipt = answer.held.receipt
    assert receipt.leg_a_expires_ms == NOW + ENOUGH_MS + 60_000
    assert receipt.leg_b_latest_ms == receipt.leg_a_expires_ms - EXCHANGE_CLAIM_MARGIN_MS
    m.on_held(notice(ENOUGH_MS + 60_000, NOW), NOW + 1)  # a repeat: leg B started already
    assert len(logged) == 1 and len(fed) == 1


def test_a_leg_a_too_short_for_leg_b_is_refused_with_nothing_signed() -> None:
    m, logged, fed = desk("maker")
    m.on_held(notice(ENOUGH_MS - 1, NOW), NOW)
    assert [type(event) for event in fed] == [ActionAbandon]
    assert [(r["k"], r.get("reason")) for r in logged] == [("end", "leg-a-expiry-too-short")]
    assert m.sent == []  # type: ignore[attr-defined]


def test_a_leg_b_refused_or_failed_at_once_gets_no_receipt() -> None:
    for outcome in ("refused", "failed"):
        m, logged, fed = desk("maker", leg_b=outcome)
        m.on_held(notice(ENOUGH_MS + 60_000, NOW), NOW)
        assert [type(event) for event in fed] == [ActionPay]
        assert all(record["k"] != "held" for record in logged), outcome
        assert m.sent == []  # type: ignore[attr-defined]


def test_a_leg_a_no_longer_held_starts_nothing() -> None:
    """Its parts were refused in the same pass (say, past the expectation's expiry
    after a restart): M must not pay leg B for it."""
    m, logged, fed = desk("maker")
    payments = m.payments.state.payments
    payments.apply(_closed(1))
    m.on_held(notice(ENOUGH_MS + 60_000, NOW), NOW)
    assert fed == [] and logged == []


def _closed(msg_id: int) -> Any:
    from node.payments.events import IncomingClosed

    return IncomingClosed(T, msg_id, False, "timeout")


def test_t_keeps_only_ms_receipt_of_its_take_even_after_its_exchange_ended() -> None:
    t, logged, _ = desk("taker")

    def answer(receipt: Any) -> TakeAnswer:
        return TakeAnswer(TAKE.take_id, (T, M), ACCEPTED, None, "", receipt)

    for bad, reason in (
        (held(signer=key(3)), "bad-receipt-signature"),
        (held(take_id=b"x" * 32), "other-receipt"),
        (held(held=TAKE.pay - 1), "underpaid"),
        (held(leg_a_expires_ms=2**50), "bad-receipt-times"),
    ):
        t.on_answer(answer(bad), NOW)
        assert t.offers.refusals[-1] == "exchange-bad-receipt", reason
    assert logged == []
    t.state.apply({"k": "end", "take_id": TAKE.take_id, "state": "failed", "reason": "timeout"})
    t.on_answer(answer(HELD), NOW)
    assert [record["k"] for record in logged] == ["held"]
    assert t.state.exchanges[TAKE.take_id].held == pack(HELD.to_wire())
    t.on_answer(answer(HELD), NOW)  # a repeat changes nothing
    assert len(logged) == 1


def test_t_pays_leg_a_only_for_an_acceptance_evidence_check_would_hold_m_to() -> None:
    """Every field the claim checks, and times an honest M signs: otherwise M could
    sign an acceptance (and a receipt) that can never be held against it."""
    bad_ones = [
        accepted(taker="mallory@bank-2.test"),
        accepted(taker_validator="bank-3.test"),
        accepted(validator="bank-9.test"),
        accepted(leg_deadline_ms=NOW_MS + 10**11),
        accepted(issued_ms=NOW_MS + 10**11, leg_deadline_ms=NOW_MS + 10**11 + 60_000),
        accepted(issued_ms=NOW_MS - 60_000, leg_deadline_ms=NOW_MS),
    ]
    for bad in bad_ones:
        t, logged, fed = desk("taker", answered=False)
        t.offers.trust = SimpleNamespace(domain_of=lambda validator_key: M)
        t.on_answer(TakeAnswer(TAKE.take_id, (T, M), bad, None, ""), NOW)
        assert (logged, fed) == ([], []), bad.acceptance
        assert t.offers.refusals == ["exchange-bad-acceptance"]
    t, logged, fed = desk("taker", answered=False)
    t.offers.trust = SimpleNamespace(domain_of=lambda validator_key: M)
    t.on_answer(TakeAnswer(TAKE.take_id, (T, M), ACCEPTED, None, "", HELD), NOW)
    assert [record["k"] for record in logged] == ["answer", "held"]
    assert [type(event) for event in fed] == [ActionPay]
