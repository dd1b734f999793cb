"""A payment's records reach the log in the order the core applied them.

bank-a pays bank-b 100 split over two paths (a-b direct, a-c-b), each
carrying at most 60. The SNAP ledger with bank-b refuses the first part's
PROPOSE at once (``outbox-full``: the peer is silent and its outbox full), so
the desk feeds the core again while it is still carrying out the effects of
the invoice's answer. The core opened the second part before it learned of
the refusal; the log must say so too, or the node cannot replay its own log
(a later ref before an earlier one) and would not restart.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from node import wire
from node.config import NodeConfig, PeerConfig
from node.engine import NodeEngine, recover_state
from node.net.base import Received
from node.payments.messages import InvoiceAnswer, RouteAnnouncement
from node.snap import ActionPropose, BilateralLedger, NotifyRefused
from simulations.options import OPERATOR_KEY, node_key
from simulations.simnode import SimNode
from tests.unit.test_pay_wait_engine import pay
from tests.unit.test_payments_retention import canonical

UNIT = "1E-2 USD"
A_KEY, B_KEY, C_KEY = node_key(0), node_key(1), node_key(2)
NAMES = {A_KEY: "bank-a.test", B_KEY: "bank-b.test", C_KEY: "bank-c.test"}


def edge(origin: Any, peer: Any, credit: int) -> RouteAnnouncement:
    """``origin`` extends ``credit`` to ``peer``: ``peer`` may pay ``origin`` that much."""
    return RouteAnnouncement(
        NAMES[origin], origin.public_key, NAMES[peer], peer.public_key, UNIT, credit,
        0, 0, 20_000, 1, 0, 10**9,
    )  # fmt: skip


def engine() -> tuple[SimNode, NodeEngine]:
    peers = tuple(
        PeerConfig(NAMES[peer], peer.public_key, None, {UNIT: 10**6}) for peer in (B_KEY, C_KEY)
    )
    config = NodeConfig("bank-a.test", ("sim", 0), A_KEY.public_key, OPERATOR_KEY.public_key, peers)
    sim_node = SimNode(0, config, A_KEY, [], random.Random("log-order"))
    sim_node.start(0, lambda: [], lambda: 0.0)
    assert sim_node.engine is not None
    for announcement in (edge(B_KEY, A_KEY, 60), edge(C_KEY, A_KEY, 60), edge(B_KEY, C_KEY, 10**6)):
        sim_node.engine.payments.graph.add(announcement)
    return sim_node, sim_node.engine


def test_a_part_refused_at_once_leaves_a_log_that_replays_to_the_same_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused: list[int] = []
    handle = BilateralLedger.handle

    def refuse_first_propose(ledger: BilateralLedger, event: Any, now_ms: int) -> list[Any]:
        if isinstance(event, ActionPropose) and not refused:
            refused.append(event.amount)
            return [NotifyRefused("outbox-full", "the peer's outbox is full", None)]
        return handle(ledger, event, now_ms)

    monkeypatch.setattr(BilateralLedger, "handle", refuse_first_propose)
    sim_node, node = engine()
    node.decide([pay(1, amount=100, payment_id="split")], 1_000, tick=False)
    node.sync()
    payment = node.payments.core.state.payments["split"]
    answer = InvoiceAnswer(
        "split", ("bank-a.test", "bank-b.test"), b"\x07" * 32, 100, 1_000 + 600_000, None
    )
    frame = wire.encode_frame(B_KEY, A_KEY.public_key, [answer])
    node.decide([Received(B_KEY.public_key, frame)], 1_100, tick=False)
    node.sync()
    assert refused, "the first part's PROPOSE was refused at once"
    assert len(payment.parts) >= 3, "two parts opened, the refused one tried again"
    assert sim_node.log is not None
    replayed, _ = recover_state(sim_node.log, sim_node.config)
    assert canonical(replayed.payments) == canonical(node.state.payments)
