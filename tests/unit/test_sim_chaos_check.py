"""The chaos checker's rules on hand-made views: it must be able to fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulations.chaos_check import (
    Acknowledged,
    _transfer_problem,
    check_agreement,
    check_conservation,
)
from tools.mesh import LocalNode

UNIT = "1E-2 USD"


def row(peer: str, ours: int, accepted_in: int, accepted_out: int) -> dict[str, Any]:
    balance = {"current": ours, "payable": 0, "receivable": 0}
    theirs = {"current": -ours, "payable": 0, "receivable": 0}
    return {
        "peer": peer,
        "unit": UNIT,
        "ours": balance,
        "theirs": theirs,
        "accepted_in": accepted_in,
        "accepted_out": accepted_out,
    }


NODES = [LocalNode("a", Path("a"), 1), LocalNode("b", Path("b"), 2)]


def test_mirrored_views_agree_and_conserve() -> None:
    views = [[row("b", 5, 10, 5)], [row("a", -5, 5, 10)]]
    assert check_agreement(NODES, [(0, 1)], views) == []
    assert check_conservation(views) == []


def test_a_side_that_counts_more_is_caught() -> None:
    views = [[row("b", 6, 11, 5)], [row("a", -5, 5, 10)]]
    problems = check_agreement(NODES, [(0, 1)], views)
    assert any("accepted_in=11" in problem for problem in problems)
    assert check_conservation(views) == [
        "conservation: over the mesh, 1E-2 USD accepted in minus out is 1"
    ]


def test_an_acknowledged_transfer_lost_or_split_is_caught() -> None:
    transfer = Acknowledged(0, 1, 7, 100)
    accepted = {"amount": 100, "state": "accepted"}
    assert _transfer_problem(transfer, accepted, dict(accepted)) is None
    assert "durability" in (_transfer_problem(transfer, "not-found", accepted) or "")
    rejected = {"amount": 100, "state": "rejected"}
    assert "finality" in (_transfer_problem(transfer, accepted, rejected) or "")
    pending = {"amount": 100, "state": "pending"}
    assert "resolution" in (_transfer_problem(transfer, pending, pending) or "")
