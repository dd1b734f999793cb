"""A crash that tears one pass of the decider's log in two: the proposal must still resolve.

The decider of an unconditional proposal appends IncomingProposed and
IncomingDecided in one pass and syncs them together. A power failure during
that fsync can keep the first record and lose the second (the tail of one
write). Nothing left the node, so the decider may decide again; but it must
decide, or the transfer hangs forever. The simulator's swarms found this
(about 3% of 6-node, 20-second seeds ended with a "resolution" violation);
this test builds the exact case by hand.
"""

from __future__ import annotations

from node.api.protocol import Request, encode_request
from node.net.base import Received
from node.snap import Direction
from node.storage.frames import HEADER_BYTES
from simulations.faults import FaultRates
from simulations.options import SimulationOptions
from simulations.simulator import Simulation
from simulations.specs import parse_topology, parse_workload

QUIET = FaultRates(loss=0.0, duplicate=0.0, delay_ms=(5, 5), partitions=0, crashes=0)


def quiet_pair() -> Simulation:
    options = SimulationOptions(
        seed=1,
        nodes=2,
        topology=parse_topology("line"),
        duration_ms=10_000,
        rates=QUIET,
        workload=parse_workload("transfers:rate=0"),
    )
    simulation = Simulation(options)
    simulation._schedule_start()
    simulation._run_until(1_000)
    return simulation


def pay(simulation: Simulation, payer: int, payee: int, amount: int) -> None:
    request = Request(
        1, "pay", {"peer": simulation.names[payee], "amount": amount, "unit": "1E-2 USD"}
    )
    node = simulation.nodes[payer]
    node.inbox.append(Received(simulation.operator_key, encode_request(request)))
    simulation._wake(node)


def step_until_deciding(simulation: Simulation, index: int) -> None:
    """Run event by event until ``index`` has decided a pass and waits for its fsync."""
    node = simulation.nodes[index]
    while not (node.busy and node.held is not None and node.log and len(node.log.unsynced) >= 2):
        simulation._run_until(simulation.heap[0][0])


def test_a_decision_lost_to_a_torn_write_is_made_again() -> None:
    simulation = quiet_pair()
    pay(simulation, 0, 1, 1234)
    step_until_deciding(simulation, 1)
    decider = simulation.nodes[1]
    assert decider.log is not None and decider.engine is not None
    last_record = decider.log.unsynced[-1]
    assert b"incoming-decided" in last_record
    decider.engine.sync()  # both records reach the disk...
    decider.log.unsynced.clear()
    (segment,) = [name for name in decider.disk.list() if name.endswith(".log")]
    size = len(decider.disk.read(segment))
    # ...and the power failure keeps the first, not the second (nothing was sent).
    decider.disk.truncate(segment, size - HEADER_BYTES - len(last_record))
    decider.sent_lsn = 0
    simulation._crash(decider, "idle")
    simulation._run_until(simulation.now_ms + 60_000)  # restart, retransmissions, ticks

    ledger = decider.engine.state.ledger(simulation.keys[0]) if decider.engine else None
    assert ledger is not None
    view = ledger.proposal(Direction.INCOMING, 0)
    assert view is not None and str(view.status) == "accepted", view
