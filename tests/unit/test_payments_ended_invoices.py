"""An invoice that has ended stays ended (docs/PAYMENTS.md, "Retention of ended payments").

Three ways it did not, each of which crashed the node, some on every restart
(the records were logged, so replay rebuilt the same state): abandoning an
expectation the clock had already recorded expired; a part accepted into an
invoice recorded expired after the wall clock stepped back; a forgotten
invoice's expiry expiring a newer invoice with the same condition early.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.payments.core import PaymentCore
from node.payments.events import (
    ActionAbandon,
    ActionExpect,
    ActionInvoice,
    ActionPay,
    IncomingConditional,
    PersistRecord,
    ReceiveInvoiceRequest,
    RejectIncoming,
    SendToPeer,
    TimerTick,
)
from node.payments.messages import InvoiceAnswer, InvoiceRequest
from node.payments.routing import RouteGraph
from node.payments.state import PaymentState
from node.signatures import sha256
from tests.unit.test_payments_support import USD

T = 1_000_000
HOUR_MS = 3_600_000


def core(state: PaymentState) -> PaymentCore:
    graph = RouteGraph("c.example", {})
    return PaymentCore("c.example", {}, graph, lambda p, u: 10**9, lambda p, u: True, state)


def records(effects: Sequence[object]) -> list[str]:
    return [type(e.record).__name__ for e in effects if isinstance(e, PersistRecord)]


def test_abandoning_an_expectation_that_expired_changes_nothing() -> None:
    payments = core(PaymentState())
    condition = sha256(b"\x01" * 32)
    payments.handle(
        ActionExpect(condition, "a.example", "leg-a", "c.example", 100, USD, T + 60_000), T
    )
    assert records(payments.handle(TimerTick(), T + 61_000)) == ["InvoiceExpired"]
    assert payments.handle(ActionAbandon(condition, "leg-a-timeout"), T + 62_000) == []


def test_a_part_for_an_invoice_recorded_expired_is_rejected_even_if_the_clock_stepped_back() -> (
    None
):
    state = PaymentState(3, 6)
    payments = core(state)
    preimage = b"\x02" * 32
    condition = sha256(preimage)
    invoice = ActionInvoice(
        condition, preimage, "a.example", "x0", "c.example", 100, USD, T + 60_000
    )
    payments.handle(invoice, T)
    payments.handle(TimerTick(), T + 61_000)
    assert state.invoices[condition].expired
    late = IncomingConditional("a.example", 7, 100, USD, condition, T + 176_000, ())
    effects = payments.handle(late, T + 56_000)  # 5 s earlier by the wall clock
    assert [type(e) for e in effects if not isinstance(e, PersistRecord)] == [RejectIncoming]
    assert not state.invoices[condition].paid
    assert list(state.ended_invoices).count(condition) == 1


def test_a_forgotten_invoices_expiry_does_not_expire_a_new_one_with_its_condition() -> None:
    state = PaymentState(3, 6)
    payments = core(state)

    def paid_invoice(preimage: bytes, payment_id: str, msg_id: int) -> None:
        condition = sha256(preimage)
        action = ActionInvoice(
            condition, preimage, "a.example", payment_id, "c.example", 100, USD, T + 60_000
        )
        payments.handle(action, T)
        part = IncomingConditional("a.example", msg_id, 100, USD, condition, T + 100_000, ())
        payments.handle(part, T)

    preimage = b"\x03" * 32
    paid_invoice(preimage, "x0", 1)
    for n in range(1, 5):  # three ended invoices are kept in full: x0 is forgotten
        paid_invoice(bytes([10 + n]) * 32, f"x{n}", 10 + n)
    condition = sha256(preimage)
    assert condition not in state.invoices
    again = ActionInvoice(
        condition, preimage, "b.example", "y0", "c.example", 100, USD, T + HOUR_MS
    )
    payments.handle(again, T + 1_000)
    assert records(payments.handle(TimerTick(), T + 61_000)) == []  # x0's expiry, not y0's
    assert not state.invoices[condition].expired


def test_an_id_credited_here_before_gets_no_new_invoice_once_its_invoice_is_forgotten() -> None:
    payments = core(PaymentState())
    payments.credited = lambda payer, payment_id: (payer, payment_id) == ("a.example", "x0")
    path = ("a.example", "c.example")

    def ask(payment_id: str) -> InvoiceAnswer:
        request = InvoiceRequest(payment_id, "bob@c.example", 100, USD, path)
        effects = payments.handle(ReceiveInvoiceRequest("a.example", request, b"\x04" * 32), T)
        (answer,) = [e.message for e in effects if isinstance(e, SendToPeer)]
        assert isinstance(answer, InvoiceAnswer)
        return answer

    reused = ask("x0")  # the payer's id window has passed; the payee's books remember it
    assert reused.condition is None and reused.error == "already-paid"
    assert ask("x1").condition is not None


def test_an_exchanges_leg_b_is_kept_in_full_while_its_leg_a_is_open() -> None:
    """The exchange desk reads leg B (our payment with leg A's condition) while
    leg A (our expectation) may still come: forgetting it then would look like
    "never started" and release the maker's hold."""
    state = PaymentState(3, 6)
    payments = core(state)
    condition = sha256(b"\x06" * 32)
    leg_a = ActionExpect(condition, "t.example", "take-1", "c.example", 100, USD, T + HOUR_MS)
    payments.handle(leg_a, T)
    leg_b = ActionPay("leg-b", "t.example", "t.example", 90, USD, 0, T + 1_000, None, condition)
    payments.handle(leg_b, T)
    payments.handle(TimerTick(), T + 2_000)  # no route: leg B fails at its deadline
    assert state.payments["leg-b"].status.value == "failed"
    for n in range(5):  # more ended payments than the three kept in full
        other = ActionPay(f"p{n}", "x.example", "x.example", 10, USD, 0, T + 3_000, None)
        payments.handle(other, T + 2_000)
    payments.handle(TimerTick(), T + 4_000)
    assert "leg-b" in state.payments and state.payment_with(condition) is not None
    payments.handle(TimerTick(), T + HOUR_MS + 1)  # leg A expires: now leg B has ended
    for n in range(5, 10):
        other = ActionPay(f"p{n}", "x.example", "x.example", 10, USD, 0, T + HOUR_MS + 2, None)
        payments.handle(other, T + HOUR_MS + 1)
    payments.handle(TimerTick(), T + HOUR_MS + 10)
    assert "leg-b" not in state.payments and "leg-b" in state.outcomes
