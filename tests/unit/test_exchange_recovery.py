"""The exchange desk's recovery after a restart gives back what a torn log tail
left held.

``_end`` logs an exchange's ``end`` and then releases its hold, in one pass. A
crash inside that pass's fsync may keep a prefix of its records: the ``end``
without the release that followed it. Nothing of the pass left the node, so
the restarted node must finish it: a failed exchange's hold goes back to the
payer (the taker's hold at T, the carved hold at M), or the customer's money
stays held forever (found by the simulator: a take refused ``too-much``, then a
crash inside the fsync of the pass that ended it).

The desk runs with its real ExchangeState, replaying the records that survived;
the Books and the customer desk are stand-ins that record what the desk asks.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from node.codec import pack
from node.exchange_desk import ExchangeDesk
from node.exchange_state import ExchangeState
from node.payments.state import PaymentState
from tests.unit.test_exchange_receipts import NOW, UNITS, M, T
from tests.unit.test_offers_support import NOW_MS, key
from tests.unit.test_offers_unsettled import ACCEPTED, M_KEY, SIGNED_TAKE, TAKE

TAKE_RECORD: dict[str, Any] = {
    "k": "take",
    "i": SIGNED_TAKE.to_wire(),
    "preimage": b"s" * 32,
    "maker_validator": M,
    "path": [T, M],
    "ms": NOW_MS,
}
ACCEPT_RECORD: dict[str, Any] = {
    "k": "accept",
    "i": SIGNED_TAKE.to_wire(),
    "acceptance": pack(ACCEPTED.to_wire()),
    "ms": NOW_MS,
    "path": [T, M],
}


def end(state: str, reason: str | None) -> dict[str, Any]:
    return {"k": "end", "take_id": TAKE.take_id, "state": state, "reason": reason}


def restarted(
    side: str, records: list[dict[str, Any]]
) -> tuple[ExchangeDesk, SimpleNamespace, list[Any], list[Any]]:
    """A desk just restarted from ``records``, with the exchange's hold (kind "take"
    at T, "offer-fill" at M) still open in the Books; (desk, hold, ended, announced)."""
    state = ExchangeState()
    for record in records:
        state.apply(record)
    kind = "take" if side == "taker" else "offer-fill"
    transfer = SimpleNamespace(payment_id=TAKE.payment_id, offer_id=TAKE.offer_id, max_fee=4)
    hold = SimpleNamespace(kind=kind, status="open", transfer=transfer)
    ended: list[Any] = []
    announced: list[Any] = []

    def end_hold(the_hold: Any, fee: int | None, reason: str, now_ms: int) -> None:
        ended.append((the_hold.kind, fee, reason))
        the_hold.status = "settled" if fee is not None else "released"

    def open_holds() -> list[Any]:
        return [hold] if hold.status == "open" else []

    the_desk = ExchangeDesk.__new__(ExchangeDesk)
    the_desk.config = SimpleNamespace(name=T if side == "taker" else M, units=UNITS)  # type: ignore[assignment]
    the_desk.key = key(2) if side == "taker" else M_KEY
    the_desk.state = state
    the_desk.peers = {M} if side == "taker" else {T}
    the_desk.payments = SimpleNamespace(state=SimpleNamespace(payments=PaymentState()))
    the_desk.books = SimpleNamespace(
        open_holds=open_holds, hold=lambda owner, payment_id: hold, credited=lambda *a: False
    )
    the_desk.customers = SimpleNamespace(end_hold=end_hold)
    the_desk.offers = SimpleNamespace(
        announce_status=lambda offer_id, now_ms: announced.append(offer_id)
    )
    the_desk.log = state.apply
    the_desk.feed = lambda event: []
    the_desk.send = lambda peer, message: None
    the_desk.take_sent_ms = {}
    the_desk.revealed_ms = {}
    the_desk.recovered = False
    return the_desk, hold, ended, announced


def test_a_refused_take_whose_release_the_tail_lost_is_released_after_a_restart() -> None:
    """T logged M's refusal and the exchange's end; the release after them was torn off."""
    answer = {"k": "answer", "take_id": TAKE.take_id, "acceptance": None, "error": "too-much"}
    t, hold, ended, announced = restarted("taker", [TAKE_RECORD, answer, end("failed", "too-much")])
    t.tick(NOW)
    assert ended == [("take", None, "too-much")] and hold.status == "released"
    assert announced == []  # the taker's hold was never part of an offer
    t.tick(NOW + 1_000)
    assert len(ended) == 1


def test_a_failed_fill_whose_release_the_tail_lost_goes_back_to_the_maker() -> None:
    """M logged the failed exchange's end; the carved hold's release was torn off. It
    goes back to the maker's balance (not to the offer), and the offer's status is
    announced again, as ``_end`` does."""
    records = [ACCEPT_RECORD, end("failed", "leg-b-failed")]
    m, hold, ended, announced = restarted("maker", records)
    m.tick(NOW)
    assert ended == [("offer-fill", None, "leg-b-failed")] and hold.status == "released"
    assert announced == [TAKE.offer_id]


def test_the_holds_of_open_and_settled_exchanges_are_left_alone() -> None:
    """An open exchange's hold ends with the exchange; a settled one's hold is the
    customer desk's to settle from its payment's outcome."""
    acceptance = pack(ACCEPTED.to_wire())
    answer = {"k": "answer", "take_id": TAKE.take_id, "acceptance": acceptance, "error": None}
    cases: list[list[dict[str, Any]]] = [[TAKE_RECORD], [TAKE_RECORD, answer, end("settled", None)]]
    for records in cases:
        t, hold, ended, _ = restarted("taker", records)
        t.tick(NOW)
        assert ended == [] and hold.status == "open", records[-1]["k"]
