"""A crash that tears the log between a forward's two records (IncomingOpened
logged, OutgoingOpened lost) is survivable: the restarted forwarder rejects
upstream (its proposal downstream never left: it is logged and synced first),
and the forward's downstream ref is never given to another transfer.
"""

from __future__ import annotations

from node.payments.core import PaymentCore
from node.payments.events import IncomingOpened, PersistRecord, RejectIncoming, TimerTick
from node.payments.routing import RouteGraph
from node.payments.state import PaymentState
from node.signatures import sha256
from tests.unit.test_payments_support import USD


def test_a_forward_torn_after_its_incoming_record_is_rejected_upstream_after_restart() -> None:
    state = PaymentState()
    state.apply(IncomingOpened("a.example", 5, 110, USD, sha256(b"\x05" * 32), 2_000_000, 0))
    assert state.next_ref == 1  # ref 0 stays the forward's
    core = PaymentCore(
        "b.example", {}, RouteGraph("b.example", {}), lambda p, u: 10**9, lambda p, u: True, state
    )
    effects = core.handle(TimerTick(), 1_000_000)
    (rejected,) = [e for e in effects if isinstance(e, RejectIncoming)]
    assert (rejected.peer, rejected.msg_id) == ("a.example", 5)
    assert rejected.reason == "not-proposed@a.example>b.example"
    assert [type(e.record).__name__ for e in effects if isinstance(e, PersistRecord)] == [
        "IncomingClosed"
    ]
    assert core.handle(TimerTick(), 1_000_100) == []  # closed: nothing more, no KeyError
