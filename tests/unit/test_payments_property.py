"""Random payments through line and diamond meshes with message loss and crashes.

After the faults stop and every expiry has passed: each payment ended, settled
on every hop or on none; no forwarder paid downstream without being paid
upstream; value is conserved; nothing is left pending (holds released).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node import snap
from node.payments.events import PaymentStatus
from node.payments.state import PaymentState
from node.snap import Direction
from tests.unit.test_payments_support import Mesh, domain

TOPOLOGIES = {
    "line": [("a", "b", 3_000), ("b", "c", 3_000), ("c", "d", 3_000)],
    "diamond": [("a", "b", 1_500), ("b", "d", 1_500), ("a", "c", 1_500), ("c", "d", 1_500)],
}


@settings(max_examples=60, deadline=None)
@given(
    topology=st.sampled_from(sorted(TOPOLOGIES)),
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    payments=st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd"), st.integers(1, 2_500)),
        min_size=1,
        max_size=4,
    ),
    crashes=st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abcd")), max_size=3),
)
def test_every_payment_settles_on_every_hop_or_none(
    topology: str,
    seed: int,
    loss: float,
    payments: list[tuple[str, str, int]],
    crashes: list[tuple[int, str]],
) -> None:
    mesh = Mesh(TOPOLOGIES[topology], seed=seed, loss=loss)
    wanted = [(p, q, amount) for p, q, amount in payments if p != q]
    for index, (payer, payee, amount) in enumerate(wanted):
        mesh.pay(payer, payee, amount, payment_id=f"p{index}", max_fee=200)
    crash_at = dict(crashes)
    for step in range(31):
        if step in crash_at:
            mesh.crash(crash_at[step])
        mesh.tick(step_ms=500, lossy=True)
        for node in mesh.nodes.values():
            assert_open_indexes(node.core.state)
    mesh.settle(ticks=150)  # faults stop; 150 s passes every expiry and deadline
    for node in mesh.nodes.values():
        assert_open_indexes(node.core.state)

    assert mesh.pending() == 0
    received: dict[str, int] = {}
    paid: dict[str, int] = {}
    for index, (payer, payee, amount) in enumerate(wanted):
        state = mesh.nodes[domain(payer)].core.state.payments[f"p{index}"]
        assert state.status is not PaymentStatus.PENDING
        if state.status is PaymentStatus.SUCCEEDED:
            notice = [n for n in mesh.nodes[domain(payer)].notices if n.payment_id == f"p{index}"][
                -1
            ]
            received[payee] = received.get(payee, 0) + amount
            paid[payer] = paid.get(payer, 0) + amount + notice.fee
    for name, node in ((n.name, n) for n in mesh.nodes.values()):
        for peer, ledger in node.ledgers.items():
            other = mesh.nodes[peer].ledgers[domain(name)]
            assert ledger.balances()["1E-2 USD"].ours == other.balances()["1E-2 USD"].theirs
        for outgoing in node.core.state.outgoing.values():
            if outgoing.upstream is not None and outgoing.accepted:
                peer, msg_id = outgoing.upstream
                upstream = node.ledgers[peer].proposal(Direction.INCOMING, msg_id)
                assert upstream is not None and upstream.status is snap.ProposalStatus.ACCEPTED
    nets = {name: mesh.net(name) for name in "abcd"}
    assert sum(nets.values()) == 0
    for name, net in nets.items():
        fees_earned = net - received.get(name, 0) + paid.get(name, 0)
        assert fees_earned >= 0, f"{name} lost {-fees_earned} forwarding"


def assert_open_indexes(state: PaymentState) -> None:
    """The state's indexes of what is open are exactly what its history says is
    open, in the order it was opened (the clock walks them in that order)."""
    payments = state.payments.items()
    pending = [pid for pid, payment in payments if payment.status is PaymentStatus.PENDING]
    assert list(state.pending_ids) == pending
    assert [key for key, _ in state.open_incoming_items()] == [
        key for key, incoming in state.incoming.items() if not incoming.closed
    ]
    assert state.open_refs() == [ref for ref, out in state.outgoing.items() if not out.closed]
    for peer in {out.peer for out in state.outgoing.values()}:
        count = sum(1 for out in state.outgoing.values() if out.peer == peer and not out.closed)
        assert state.open_towards(peer) == count
