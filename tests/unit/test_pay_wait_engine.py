"""A waiting ``pay``, in one node's engine: answered once, when the payment ends,
only after that pass is durable; at most PAYMENT_WAITERS_MAX wait.

One validator, bank-a, with one peer, bank-b, that announced credit to it (so a
payment to bank-b has a path) but never answers: a payment stays pending until
its deadline, then fails with ``timeout``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from node import payments_desk
from node.api.protocol import Request, decode_response, encode_request
from node.config import NodeConfig, PeerConfig
from node.engine import Decisions, NodeEngine
from node.limits import PAYMENT_DEADLINE_MS_DEFAULT
from node.net.base import Received
from node.payments.messages import RouteAnnouncement
from simulations.options import OPERATOR_KEY, node_key
from simulations.simnode import SimNode

UNIT = "1E-2 USD"
A_KEY, B_KEY = node_key(0), node_key(1)


def engine() -> NodeEngine:
    peer = PeerConfig("bank-b.test", B_KEY.public_key, None, {UNIT: 10**6})
    config = NodeConfig(
        "bank-a.test", ("sim", 0), A_KEY.public_key, OPERATOR_KEY.public_key, (peer,)
    )
    sim_node = SimNode(0, config, A_KEY, [], random.Random("pay-wait"))
    sim_node.start(0, lambda: [], lambda: 0.0)
    assert sim_node.engine is not None
    edge = RouteAnnouncement(
        "bank-b.test", B_KEY.public_key, "bank-a.test", A_KEY.public_key, UNIT, 10**6,
        0, 0, 20_000, 1, 0, 10**9,
    )  # fmt: skip
    sim_node.engine.payments.graph.add(edge)  # bank-b extends credit to bank-a
    return sim_node.engine


def pay(request_id: int, **extra: Any) -> Received:
    args = {"to": "bank-b.test", "amount": 100, "unit": UNIT, "payment_id": "p1", **extra}
    return Received(OPERATOR_KEY.public_key, encode_request(Request(request_id, "pay", args)))


def answers(node: NodeEngine, decisions: Decisions) -> dict[int, Any]:
    node.sync()
    return {
        request_id: result
        for client, payload in node.outgoing(decisions)
        if client == OPERATOR_KEY.public_key
        for request_id, result in [decode_response(payload)]
    }


def test_a_waiting_pay_is_answered_once_when_its_payment_ends_and_not_before_sync() -> None:
    node = engine()
    started = node.decide([pay(1, wait=True), pay(2, wait=True), pay(3)], 1_000, tick=False)
    shown = answers(node, started)
    assert list(shown) == [3] and shown[3]["status"] == "pending"  # without wait: at once
    assert node.payments.waiting == 2
    quiet = node.decide([], 2_000, tick=True)
    assert answers(node, quiet) == {}  # still pending: nobody answered
    ended = node.decide([], 1_000 + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)
    assert ended.replies, "the pass that ended it holds the answers"
    with pytest.raises(AssertionError, match="durable"):
        node.outgoing(ended)  # not before the pass's records are durable
    shown = answers(node, ended)
    assert sorted(shown) == [1, 2]
    assert all(
        view["status"] == "failed" and view["reason"] == "timeout" for view in shown.values()
    )
    assert node.payments.waiting == 0 and node.payments.waiters == {}
    again = node.decide([pay(4, wait=True)], 100_000, tick=True)  # ended already: at once
    assert answers(node, again)[4]["status"] == "failed"
    assert answers(node, node.decide([], 200_000, tick=True)) == {}  # nothing answered twice


def test_past_the_cap_a_waiting_pay_is_answered_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payments_desk, "PAYMENT_WAITERS_MAX", 1)
    node = engine()
    decisions = node.decide([pay(1, wait=True), pay(2, wait=True)], 1_000, tick=False)
    shown = answers(node, decisions)
    assert list(shown) == [2] and shown[2]["status"] == "pending"  # the client polls
    assert node.payments.waiting == 1
    ended = node.decide([], 1_000 + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)
    assert list(answers(node, ended)) == [1]
