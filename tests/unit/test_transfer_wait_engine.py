"""A customer's waiting ``transfer_status``, in one node's engine: answered once,
when the hold of her cross-bank payment ends, only after that pass is durable;
past TRANSFER_WAITERS_MAX the answer comes at once (the CLI then polls).

One validator, bank-a, whose peer bank-b announced credit to it but never
answers: the invoice never comes, so the payment fails at its deadline with
``timeout`` and the hold is released.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from node import customer_payments
from node.api.protocol import ApiError, Request, decode_response, encode_request
from node.config import NodeConfig, PeerConfig
from node.engine import Decisions, NodeEngine
from node.ledger.signed import CrossTransfer
from node.limits import PAYMENT_DEADLINE_MS_DEFAULT
from node.net.base import Received
from node.payments.messages import RouteAnnouncement
from simulations.customers import Customer, make_customers, node_units, setup_steps
from simulations.limits import UNITS
from simulations.options import OPERATOR_KEY, node_key
from simulations.simnode import SimNode

A_KEY, B_KEY = node_key(0), node_key(1)
NOW_MS = 1_000


def engine() -> tuple[NodeEngine, Customer]:
    peer = PeerConfig("bank-b.test", B_KEY.public_key, None, {UNITS[0]: 10**6})
    config = NodeConfig(
        "bank-a.test",
        ("sim", 0),
        A_KEY.public_key,
        OPERATOR_KEY.public_key,
        (peer,),
        units=node_units("bank-a.test"),
    )
    sim_node = SimNode(0, config, A_KEY, [], random.Random("transfer-wait"))
    sim_node.start(0, lambda: [], lambda: 0.0)
    node = sim_node.engine
    assert node is not None
    edge = RouteAnnouncement(
        "bank-b.test", B_KEY.public_key, "bank-a.test", A_KEY.public_key, UNITS[0], 10**6,
        0, 0, 20_000, 1, 0, 10**9,
    )  # fmt: skip
    node.payments.graph.add(edge)  # bank-b extends credit to bank-a
    [alice] = make_customers(0, "bank-a.test", 1)
    setup = [
        Received(OPERATOR_KEY.public_key, encode_request(Request(index, step.op, step.args)))
        for index, step in enumerate(setup_steps("bank-a.test", [alice]))
    ]
    done = replies(node, node.decide(setup, NOW_MS, tick=False), OPERATOR_KEY.public_key)
    assert len(done) == len(setup) and all(result is not None for result in done.values())
    return node, alice


def replies(node: NodeEngine, decisions: Decisions, client: bytes) -> dict[int, Any]:
    node.sync()
    return {
        request_id: result
        for key, payload in node.outgoing(decisions)
        if key == client
        for request_id, result in [decode_response(payload)]
    }


def request(customer: Customer, request_id: int, op: str, **args: Any) -> Received:
    return Received(customer.key.public_key, encode_request(Request(request_id, op, args)))


def submit(customer: Customer, request_id: int, payment_id: str) -> Received:
    transfer = CrossTransfer(
        customer.address,
        "bob@bank-b.test",
        "bank-a.test/USD",
        2_500,
        25,
        payment_id,
        customer.next_nonce(),
        NOW_MS,
    )
    return request(customer, request_id, "cross_transfer", instruction=customer.signed(transfer))


def test_a_waiting_status_is_answered_once_when_the_hold_ends_and_not_before_sync() -> None:
    node, alice = engine()
    me = alice.key.public_key
    started = node.decide([submit(alice, 1, "p1")], NOW_MS, tick=False)
    assert replies(node, started, me)[1]["hold"] == "open"
    waits = [
        request(alice, 2, "transfer_status", payment_id="p1", wait=True),
        request(alice, 3, "transfer_status", payment_id="p1", wait=True),
        request(alice, 4, "transfer_status", payment_id="p1"),
    ]
    shown = replies(node, node.decide(waits, NOW_MS + 10, tick=False), me)
    assert list(shown) == [4] and shown[4]["hold"] == "open"  # without wait: at once
    assert node.customer_payments.waiting == 2
    assert replies(node, node.decide([], NOW_MS + 2_000, tick=True), me) == {}
    ended = node.decide([], NOW_MS + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)
    with pytest.raises(AssertionError, match="durable"):
        node.outgoing(ended)  # not before the pass's records are durable
    shown = replies(node, ended, me)
    assert sorted(shown) == [2, 3]
    for status in shown.values():
        assert (status["hold"], status["reason"]) == ("released", "timeout")
        assert status["balances"]["bank-a.test/USD"] == 1_000_000  # all of it back
    assert node.customer_payments.waiting == 0 and node.customer_payments.waiters == {}
    late = request(alice, 5, "transfer_status", payment_id="p1", wait=True)
    assert replies(node, node.decide([late], 100_000, tick=True), me)[5]["hold"] == "released"
    assert replies(node, node.decide([], 200_000, tick=True), me) == {}  # none answered twice


def test_past_the_cap_a_waiting_status_is_answered_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(customer_payments, "TRANSFER_WAITERS_MAX", 1)
    node, alice = engine()
    me = alice.key.public_key
    node.decide([submit(alice, 1, "p1")], NOW_MS, tick=False)
    waits = [request(alice, n, "transfer_status", payment_id="p1", wait=True) for n in (2, 3)]
    shown = replies(node, node.decide(waits, NOW_MS + 10, tick=False), me)
    assert list(shown) == [3] and shown[3]["hold"] == "open"  # the client polls
    ended = node.decide([], NOW_MS + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)
    assert list(replies(node, ended, me)) == [2]


def test_wait_must_be_a_boolean() -> None:
    node, alice = engine()
    bad = request(alice, 7, "transfer_status", payment_id="p1", wait="yes")
    decisions = node.decide([bad], NOW_MS, tick=False)
    node.sync()
    [(_, payload)] = [out for out in node.outgoing(decisions) if out[0] == alice.key.public_key]
    with pytest.raises(ApiError, match="wait"):
        decode_response(payload)


def test_one_payer_cannot_take_every_waiting_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(customer_payments, "TRANSFER_WAITERS_PER_PAYER_MAX", 2)
    node, alice = engine()
    me = alice.key.public_key
    node.decide([submit(alice, 1, "p1")], NOW_MS, tick=False)
    waits = [request(alice, n, "transfer_status", payment_id="p1", wait=True) for n in (2, 3, 4)]
    shown = replies(node, node.decide(waits, NOW_MS + 10, tick=False), me)
    assert list(shown) == [4] and shown[4]["hold"] == "open"  # her third: at once
    assert node.customer_payments.waiting_of == {alice.address: 2}
    ended = node.decide([], NOW_MS + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)
    assert sorted(replies(node, ended, me)) == [2, 3]
    assert node.customer_payments.waiting_of == {} and node.customer_payments.waiting == 0
