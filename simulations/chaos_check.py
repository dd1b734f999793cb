"""The chaos run's checker: every node's own view, against the simulator's invariants.

Rules:
- Asked once faults have stopped and the mesh is quiet, through the operator
  API of each running node: ``balances`` for every link and unit, and
  ``transfer`` for every acknowledged transfer, at the payer and at the payee.
- Agreement: on every link and unit, one side's ``ours`` is the other's
  ``theirs``, and what one counts as accepted in the other counts as accepted
  out. Conservation: over the mesh, per unit, accepted in equals accepted out.
- Durability and finality: every transfer a node acknowledged exists at both
  ends with the same amount, final (accepted or rejected), with the same
  outcome at both ends -- after any number of SIGKILLs.
- After the nodes stop, every log verifies (``ledgermesh log verify``).
- Returns violations as one line each; an empty list means all held.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from node.api.protocol import ApiError
from simulations.topology import Link
from tools.mesh import LocalNode, cli

Call = Callable[..., Awaitable[Any]]  # (node index, op, **arguments) -> result

MIRRORED = (
    ("ours", "theirs"),
    ("theirs", "ours"),
    ("accepted_in", "accepted_out"),
    ("accepted_out", "accepted_in"),
)


@dataclass(frozen=True)
class Acknowledged:
    payer: int
    payee: int
    msg_id: int
    amount: int


@dataclass
class CheckResult:
    violations: list[str] = field(default_factory=list)
    settled: int = 0  # acknowledged transfers final at both ends
    accepted: int = 0
    rejected: int = 0


def _rows(view: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["peer"], row["unit"]): row for row in view}


def check_agreement(
    nodes: list[LocalNode], links: list[Link], views: list[list[dict[str, Any]]]
) -> list[str]:
    problems = []
    rows = [_rows(view) for view in views]
    for a, b in links:
        units = {unit for peer, unit in rows[a] if peer == nodes[b].name}
        units |= {unit for peer, unit in rows[b] if peer == nodes[a].name}
        for unit in sorted(units):
            row_a = rows[a].get((nodes[b].name, unit))
            row_b = rows[b].get((nodes[a].name, unit))
            if row_a is None or row_b is None:
                problems.append(
                    f"agreement: {unit} between {nodes[a].name} and "
                    f"{nodes[b].name} is known to one side only"
                )
                continue
            for field_a, field_b in MIRRORED:
                if row_a[field_a] != row_b[field_b]:
                    problems.append(
                        f"agreement: {nodes[a].name} {field_a}={row_a[field_a]} but "
                        f"{nodes[b].name} {field_b}={row_b[field_b]} ({unit})"
                    )
    return problems


def check_conservation(views: list[list[dict[str, Any]]]) -> list[str]:
    net: Counter[str] = Counter()
    for view in views:
        for row in view:
            net[row["unit"]] += row["accepted_in"] - row["accepted_out"]
    return [
        f"conservation: over the mesh, {unit} accepted in minus out is {value}"
        for unit, value in sorted(net.items())
        if value != 0
    ]


async def check_acknowledged(
    call: Call, nodes: list[LocalNode], acknowledged: list[Acknowledged], result: CheckResult
) -> None:
    """Every acknowledged transfer: at both ends, same amount, final, same outcome."""
    for transfer in acknowledged:
        at_payer = await _transfer(
            call, transfer.payer, nodes[transfer.payee].name, "out", transfer.msg_id
        )
        at_payee = await _transfer(
            call, transfer.payee, nodes[transfer.payer].name, "in", transfer.msg_id
        )
        where = (
            f"transfer {transfer.msg_id} {nodes[transfer.payer].name} -> "
            f"{nodes[transfer.payee].name}"
        )
        problem = _transfer_problem(transfer, at_payer, at_payee)
        if problem is not None:
            result.violations.append(f"{where}: {problem}")
            continue
        assert isinstance(at_payer, dict)
        result.settled += 1
        if at_payer["state"] == "accepted":
            result.accepted += 1
        else:
            result.rejected += 1


async def _transfer(
    call: Call, index: int, peer: str, direction: str, msg_id: int
) -> dict[str, Any] | str:
    """The ``transfer`` answer, or the error code."""
    try:
        answer: dict[str, Any] = await call(
            index, "transfer", peer=peer, direction=direction, msg_id=msg_id
        )
    except ApiError as error:
        return error.code
    return answer


def _transfer_problem(
    transfer: Acknowledged, at_payer: dict[str, Any] | str, at_payee: dict[str, Any] | str
) -> str | None:
    if isinstance(at_payer, str):
        return f"durability: acknowledged, but the payer answers {at_payer}"
    if isinstance(at_payee, str):
        return f"durability: acknowledged, but the payee answers {at_payee}"
    if at_payer["amount"] != transfer.amount or at_payee["amount"] != transfer.amount:
        return (
            f"agreement: amount {transfer.amount} acknowledged, payer holds "
            f"{at_payer['amount']}, payee holds {at_payee['amount']}"
        )
    if at_payer["state"] != at_payee["state"]:
        return f"finality: {at_payer['state']} at the payer, {at_payee['state']} at the payee"
    if at_payer["state"] == "pending":
        return "resolution: still pending after the mesh went quiet"
    return None


async def check_views(
    call: Call, nodes: list[LocalNode], links: list[Link], acknowledged: list[Acknowledged]
) -> CheckResult:
    result = CheckResult()
    views: list[list[dict[str, Any]]] = []
    for index, node in enumerate(nodes):
        try:
            views.append(await call(index, "balances"))
        except ApiError as error:
            result.violations.append(f"resolution: {node.name} does not answer: {error}")
            return result
    result.violations += check_agreement(nodes, links, views)
    result.violations += check_conservation(views)
    await check_acknowledged(call, nodes, acknowledged, result)
    return result


def check_logs(nodes: list[LocalNode]) -> list[str]:
    """Run after the nodes stopped: every log must pass ``ledgermesh log verify``."""
    problems = []
    for node in nodes:
        try:
            cli("log", "verify", str(node.directory), "--json")
        except RuntimeError as error:
            problems.append(f"log: {node.name}: {error}")
    return problems


async def call_all(call: Call, count: int, op: str) -> list[Any]:
    """``op`` on every node at once; an error code where a node does not answer."""
    results: list[Any] = [None] * count

    async def one(index: int) -> None:
        try:
            results[index] = await call(index, op)
        except ApiError as error:
            results[index] = error.code

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return results
