"""Helpers for the multi-hop payment tests over real node processes.

The books check is what every payment test ends with: both sides of every
bilateral ledger agree, nothing is pending, net balances sum to zero per unit,
and no forwarder is out of pocket.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import trio

from node.api.protocol import ApiError
from tools.mesh import LocalNode, free_udp_port

UNIT = "1E-2 USD"
ENDED = ("succeeded", "failed")


def make_nodes(base: Path, names: list[str]) -> dict[str, LocalNode]:
    nodes = {name: LocalNode(name, base / name, free_udp_port()) for name in names}
    for node in nodes.values():
        node.init()
    return nodes


def link(left: LocalNode, right: LocalNode, credit: str = "10000.00") -> None:
    """Trust both ways, ``credit`` (in the currency, as the CLI takes it) each way."""
    left.trust(right, f"{UNIT}={credit}")
    right.trust(left, f"{UNIT}={credit}")


def set_routing(node: LocalNode, **settings: int) -> None:
    """Write a ``[routing]`` table into the node's config (before it starts)."""
    config = node.directory / "node.toml"
    lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
    config.write_text(config.read_text() + "\n[routing]\n" + lines)


def freeze(node: LocalNode) -> None:
    """SIGSTOP: the process keeps its sockets; datagrams wait in the kernel."""
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)


def thaw(node: LocalNode) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGCONT)


async def wait_route(node: LocalNode, to: str, amount: int, timeout_s: float = 20.0) -> Any:
    """Wait until gossip has taught ``node`` a path to ``to`` carrying ``amount``."""
    with trio.fail_after(timeout_s):
        while True:
            try:
                return await node.call("route", to=to, amount=amount, unit=UNIT)
            except ApiError:
                await trio.sleep(0.2)


async def wait_ended(node: LocalNode, payment_id: str, timeout_s: float = 30.0) -> Any:
    with trio.fail_after(timeout_s):
        while True:
            try:
                view = await node.call("payment", payment_id=payment_id)
                if view["status"] in ENDED:
                    return view
            except ApiError:
                pass
            await trio.sleep(0.1)


async def pay(node: LocalNode, to: str, amount: int, **extra: object) -> Any:
    view = await node.call("pay", to=to, amount=amount, unit=UNIT, **extra)
    return await wait_ended(node, view["payment_id"])


async def rows(node: LocalNode) -> dict[str, dict[str, Any]]:
    """The node's bilateral balances in UNIT, by peer name."""
    answer = await node.call("balances")
    return {row["peer"]: row for row in answer if row["unit"] == UNIT}


async def check_books(nodes: dict[str, LocalNode]) -> dict[str, int]:
    """Both sides of every ledger agree, nothing is pending, nets sum to zero.

    Returns each node's net position (sum of ``ours.current`` over its peers)."""
    views = {name: await rows(node) for name, node in nodes.items()}
    nets: dict[str, int] = {}
    for name, by_peer in views.items():
        for peer, row in by_peer.items():
            other = views[peer][name]
            assert row["ours"] == other["theirs"], (name, peer, row, other)
            assert row["theirs"] == other["ours"], (name, peer, row, other)
            assert row["ours"]["payable"] == 0 and row["ours"]["receivable"] == 0, (name, row)
        nets[name] = sum(row["ours"]["current"] for row in by_peer.values())
    assert sum(nets.values()) == 0, nets
    return nets


async def wait_all_quiet(nodes: dict[str, LocalNode], timeout_s: float = 60.0) -> None:
    for node in nodes.values():
        await node.wait_quiet(timeout_s)
