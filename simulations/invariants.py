"""The invariants checked on the nodes' own state, continuously and at the end of a run.

Rules:
- Agreement: a link whose two sides are both running, connected and quiet (no
  pending proposal, no message awaiting an ACK, on either side) must look the
  same from both sides: each side's incoming list is as long as the other's
  outgoing list, and per unit what one side counts as accepted in (or out,
  or rejected) the other counts as accepted out (in, rejected). Balances then
  mirror each other (SNAP derives them from these sums).
- Conservation: over the whole mesh, per unit, value accepted in equals value
  accepted out.
- Resolution: after all faults stop, every node runs and nothing stays
  pending or unacknowledged past RESOLVE_BOUND_MS.
- Durability and finality are checked where they happen: in the simulator
  (a restart recovers at least what the node had let out) and in ``books``
  (nothing final ever changes; both sides hold the same proposals).
- Checks read the engines' state and never change it. A failure raises
  ``InvariantViolation``.
"""

from __future__ import annotations

from collections import Counter

from node.snap import BilateralLedger, Direction, Totals
from simulations.simnode import SimNode
from simulations.violations import InvariantViolation, Violation

_MIRRORED = (
    ("accepted_in", "accepted_out"),
    ("accepted_out", "accepted_in"),
    ("accepted_in_count", "accepted_out_count"),
    ("accepted_out_count", "accepted_in_count"),
    ("rejected_in_count", "rejected_out_count"),
    ("rejected_out_count", "rejected_in_count"),
)


def ledger_with(node: SimNode, peer: SimNode) -> BilateralLedger:
    assert node.engine is not None
    return node.engine.state.ledger(peer.config.public_key)


def is_quiet(ledger: BilateralLedger) -> bool:
    return ledger.pending_count() == 0 and ledger.unacked_count() == 0


def check_link(a: SimNode, b: SimNode, time_ms: int) -> bool:
    """If both sides of the link are quiet, check that they agree. Returns whether they were."""
    ledger_a, ledger_b = ledger_with(a, b), ledger_with(b, a)
    if not (is_quiet(ledger_a) and is_quiet(ledger_b)):
        return False
    for direction_a, direction_b in (
        (Direction.OUTGOING, Direction.INCOMING),
        (Direction.INCOMING, Direction.OUTGOING),
    ):
        count_a, count_b = ledger_a.next_msg_id(direction_a), ledger_b.next_msg_id(direction_b)
        if count_a != count_b:
            _fail(
                "agreement",
                f"quiet link: {a.name} has {count_a} {direction_a} proposals, "
                f"{b.name} has {count_b} {direction_b}",
                a,
                b,
                time_ms,
            )
    totals_a, totals_b = ledger_a.totals(), ledger_b.totals()
    for unit in sorted(set(totals_a) | set(totals_b)):
        side_a, side_b = totals_a.get(unit, Totals()), totals_b.get(unit, Totals())
        for field_a, field_b in _MIRRORED:
            value_a, value_b = getattr(side_a, field_a), getattr(side_b, field_b)
            if value_a != value_b:
                _fail(
                    "conservation",
                    f"quiet link, {unit}: {a.name} counts {field_a}={value_a}, "
                    f"{b.name} counts {field_b}={value_b}",
                    a,
                    b,
                    time_ms,
                )
        balances_a, balances_b = side_a.balances(), side_b.balances()
        if balances_a.ours != balances_b.theirs or balances_a.theirs != balances_b.ours:
            _fail(
                "agreement",
                f"quiet link, {unit}: {a.name} sees {balances_a}, {b.name} sees {balances_b}",
                a,
                b,
                time_ms,
            )
    return True


def check_conservation(nodes: list[SimNode], time_ms: int) -> None:
    """Over the mesh, per unit: everything accepted in was accepted out somewhere."""
    net: Counter[str] = Counter()
    for node in nodes:
        assert node.engine is not None
        for ledger in node.engine.state.ledgers.values():
            for unit, totals in ledger.totals().items():
                net[unit] += totals.accepted_in - totals.accepted_out
    for unit, value in sorted(net.items()):
        if value != 0:
            raise InvariantViolation(
                Violation(
                    "conservation",
                    f"over the mesh, {unit}: accepted in minus accepted out is {value}, not 0",
                    (),
                    time_ms,
                )
            )


def unresolved(nodes: list[SimNode]) -> list[str]:
    """Nodes that are down, or hold pending proposals or unacknowledged messages."""
    names = []
    for node in nodes:
        if not node.alive:
            names.append(f"{node.name} (down)")
        elif node.pending() or node.unacked():
            names.append(
                f"{node.name} ({node.pending()} pending, {node.unacked()} unacked"
                f"{_first_pending(node)})"
            )
    return names


def _first_pending(node: SimNode) -> str:
    """The first pending proposal a node holds, as people read it."""
    assert node.engine is not None
    for peer_key, ledger in node.engine.state.ledgers.items():
        for direction in Direction:
            for view in ledger.proposals(direction):
                if view.status == "pending":
                    peer = node.peer_names.get(peer_key, peer_key.hex()[:16])
                    kind = "hashlocked" if view.condition is not None else "unconditional"
                    return (
                        f"; e.g. {direction} {kind} proposal {view.msg_id} with {peer}, "
                        f"acknowledged={view.acknowledged}"
                    )
    return ""


def _fail(invariant: str, message: str, a: SimNode, b: SimNode, time_ms: int) -> None:
    raise InvariantViolation(Violation(invariant, message, (a.name, b.name), time_ms))
