"""The payment core's rules one at a time, on a lone core (forwarder b between a and c)."""

from __future__ import annotations

import pytest

from node.limits import PAYMENT_EXPIRY_MS_MAX, PAYMENT_INVOICE_LIFETIME_MS
from node.payments.core import PaymentCore
from node.payments.events import (
    AcceptIncoming,
    Effect,
    IncomingConditional,
    InvoiceCreated,
    OutgoingFinal,
    PersistRecord,
    PreimageLearned,
    ProposeConditional,
    ReceiveInvoiceRequest,
    RejectIncoming,
    TimerTick,
)
from node.payments.messages import InvoiceRequest, RouteHop
from node.payments.routing import RouteGraph
from node.signatures import sha256
from tests.unit.test_payments_support import NOW_MS, POLICY, USD

PREIMAGE = sha256(b"secret")
CONDITION = sha256(PREIMAGE)
LATER_MS = NOW_MS + 60_000
NEXT = RouteHop("c.test", 1_000, LATER_MS - POLICY.expiry_delta_ms)


def core(credit: int = 10_000) -> PaymentCore:
    graph = RouteGraph("b.test", ["a.test", "c.test"])
    peers = {"a.test": POLICY, "c.test": POLICY}
    return PaymentCore("b.test", peers, graph, lambda peer, unit: credit, lambda p, u: True)


def incoming(
    amount: int = 1_003, expires_at_ms: int = LATER_MS, route: tuple[RouteHop, ...] = (NEXT,)
) -> IncomingConditional:
    return IncomingConditional("a.test", 7, amount, USD, CONDITION, expires_at_ms, route)


def rejections(effects: list[Effect]) -> list[str]:
    return [e.reason for e in effects if isinstance(e, RejectIncoming)]


def test_forwards_with_same_condition_and_route_rest() -> None:
    effects = core().handle(incoming(), NOW_MS)
    proposals = [e for e in effects if isinstance(e, ProposeConditional)]
    assert proposals == [
        ProposeConditional("c.test", 1_000, USD, CONDITION, NEXT.expires_at_ms, (), 0)
    ]


@pytest.mark.parametrize(
    ("event", "credit", "reason"),
    [
        (incoming(amount=1_002), 10_000, "fee-too-low@a.test>b.test"),
        (incoming(expires_at_ms=LATER_MS - 1), 10_000, "expiry-too-short@a.test>b.test"),
        (incoming(expires_at_ms=NOW_MS + 10_000), 10_000, "expiry-too-short@a.test>b.test"),
        (
            incoming(expires_at_ms=NOW_MS + PAYMENT_EXPIRY_MS_MAX + 1),
            10_000,
            "expiry-too-far@a.test>b.test",
        ),
        (incoming(), 999, "insufficient-credit@b.test>c.test"),
        (
            incoming(route=(RouteHop("x.test", 1_000, NEXT.expires_at_ms),)),
            10_000,
            "no-route@b.test>x.test",
        ),
        (incoming(route=()), 10_000, "unknown-invoice@a.test>b.test"),
    ],
)
def test_forwarder_and_payee_refusals(event: IncomingConditional, credit: int, reason: str) -> None:
    payments = core(credit)
    effects = payments.handle(event, NOW_MS)
    assert rejections(effects) == [reason]
    assert not any(isinstance(e, PersistRecord) for e in effects)


def test_downstream_accept_records_preimage_first_then_accepts_upstream() -> None:
    payments = core()
    payments.handle(incoming(), NOW_MS)
    effects = payments.handle(OutgoingFinal(0, True, PREIMAGE, None), NOW_MS + 1)
    assert isinstance(effects[0], PersistRecord)
    assert effects[0].record == PreimageLearned(CONDITION, PREIMAGE)
    assert effects[-1] == AcceptIncoming("a.test", 7, PREIMAGE)


def test_downstream_reject_is_passed_upstream_at_once() -> None:
    payments = core()
    payments.handle(incoming(), NOW_MS)
    effects = payments.handle(OutgoingFinal(0, False, None, "credit-limit"), NOW_MS + 1)
    assert rejections(effects) == ["insufficient-credit@b.test>c.test"]


def test_replay_rebuilds_and_a_restart_accepts_upstream_with_the_persisted_preimage() -> None:
    payments = core()
    records = [
        e.record for e in payments.handle(incoming(), NOW_MS) if isinstance(e, PersistRecord)
    ]
    learned = payments.handle(OutgoingFinal(0, True, PREIMAGE, None), NOW_MS + 1)
    records += [e.record for e in learned if isinstance(e, PersistRecord)][:2]  # crash: last lost
    restarted = core()
    for record in records:
        restarted.apply(record)
    assert restarted.handle(TimerTick(), NOW_MS + 2)[-1] == AcceptIncoming("a.test", 7, PREIMAGE)
    assert restarted.handle(incoming(), NOW_MS + 3) == [AcceptIncoming("a.test", 7, PREIMAGE)]


def payee_with_invoice(amount: int) -> PaymentCore:
    payee = core()
    request = InvoiceRequest("p1", "bob@b.test", amount, USD, ("a.test", "b.test"))
    payee.handle(ReceiveInvoiceRequest("a.test", request, PREIMAGE), NOW_MS)
    return payee


def part(msg_id: int, amount: int, unit: str = USD) -> IncomingConditional:
    return IncomingConditional("a.test", msg_id, amount, unit, CONDITION, LATER_MS, ())


def test_payee_holds_parts_until_all_arrived_then_accepts_all() -> None:
    payee = payee_with_invoice(1_000)
    held = payee.handle(part(1, 600), NOW_MS)
    assert not any(isinstance(e, AcceptIncoming | RejectIncoming) for e in held)
    effects = payee.handle(part(2, 400), NOW_MS)
    accepted = [e for e in effects if isinstance(e, AcceptIncoming)]
    assert {e.msg_id for e in accepted} == {1, 2}


def test_payee_refuses_more_than_invoiced_wrong_unit_and_times_out() -> None:
    payee = payee_with_invoice(1_000)
    payee.handle(part(1, 600), NOW_MS)
    assert rejections(payee.handle(part(2, 500), NOW_MS)) == ["amount-mismatch@a.test>b.test"]
    assert rejections(payee.handle(part(3, 400, "1E0 EUR"), NOW_MS)) == ["wrong-unit@a.test>b.test"]
    late = payee.handle(TimerTick(), NOW_MS + PAYMENT_INVOICE_LIFETIME_MS)
    assert rejections(late) == ["timeout@a.test>b.test"]


def test_invoice_request_is_idempotent() -> None:
    payee = payee_with_invoice(1_000)
    request = InvoiceRequest("p1", "bob@b.test", 1_000, USD, ("a.test", "b.test"))
    again = payee.handle(ReceiveInvoiceRequest("a.test", request, sha256(b"other")), NOW_MS)
    assert not any(isinstance(e, PersistRecord) for e in again)
    assert next(iter(payee.state.invoices.values())).created == InvoiceCreated(
        CONDITION,
        PREIMAGE,
        "a.test",
        "p1",
        "bob@b.test",
        1_000,
        USD,
        NOW_MS + PAYMENT_INVOICE_LIFETIME_MS,
    )
