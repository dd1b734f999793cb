"""Retention in the node (docs/PAYMENTS.md, "Retention"): the operator's view of
a forgotten payment, the same id again, and the snapshot's payment records kept
to what retention keeps.

One validator whose payments to a silent peer all fail (``timeout``), with
small bounds: 3 ended payments kept in full, 6 outcomes.
"""

from __future__ import annotations

import pytest

from node.api.protocol import ApiError
from node.limits import PAYMENT_DEADLINE_MS_DEFAULT
from node.state import NodeState
from tests.unit.test_pay_wait_engine import engine, pay
from tests.unit.test_payments_retention import ENDED_KEPT, OUTCOMES_KEPT, canonical


def test_the_node_answers_forgotten_ids_and_its_snapshot_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = engine()
    node.state.payments.ended_kept_max = ENDED_KEPT
    node.state.payments.outcomes_kept_max = OUTCOMES_KEPT
    node.decide([pay(index, payment_id=f"p{index}") for index in range(12)], 1_000, tick=False)
    node.decide([], 1_000 + PAYMENT_DEADLINE_MS_DEFAULT, tick=True)  # all fail: timeout
    desk = node.payments
    assert desk.payment("p11")["details"] == "full"
    assert [view["payment_id"] for view in desk.payments()] == ["p9", "p10", "p11"]
    forgotten = desk.payment("p3")
    assert forgotten["details"] == "forgotten" and forgotten["status"] == "failed"
    assert forgotten["reason"] == "timeout" and forgotten["parts"] == []
    with pytest.raises(ApiError, match="remembered by id") as error:
        desk.payment("p0")
    assert error.value.code == "not-found"
    # The same id again: its outcome, nothing new (through the operator API).
    again = node.decide([pay(50, payment_id="p3", wait=True)], 200_000, tick=True)
    node.sync()
    assert again.replies and desk.payment("p3")["details"] == "forgotten"
    # The snapshot holds what retention keeps, and restores the same payment state.
    restored = NodeState.from_snapshot(node.state.to_snapshot(), {}, node.state.identity)
    assert canonical(restored.payments) == canonical(node.state.payments)
