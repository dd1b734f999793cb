"""Helpers for the exchange-offer tests over real node processes and QUIC.

Every validator issues USD and EUR (2 decimals), pays both across
validators (``[units]``), and extends credit in both units to each peer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from tests.integration.cli_support import ok
from tools.mesh import LocalNode, free_udp_port

UNITS = ("1E-2 USD", "1E-2 EUR")
CREDIT = "100000.00"


def make_mesh(base: Path, names: list[str], edges: list[tuple[int, int]]) -> list[LocalNode]:
    nodes = [LocalNode(name, base / name, free_udp_port()) for name in names]
    for node in nodes:
        node.init()
    for left, right in edges:
        limits = [f"{unit}={CREDIT}" for unit in UNITS]
        nodes[left].trust(nodes[right], *limits)
        nodes[right].trust(nodes[left], *limits)
    for node in nodes:
        config = node.directory / "node.toml"
        units = "".join(f'"{unit}" = "{node.name}/{unit[-3:]}"\n' for unit in UNITS)
        config.write_text(config.read_text() + "\n[units]\n" + units)
    return nodes


async def start(nodes: list[LocalNode]) -> None:
    for node in nodes:
        node.start("warning")
    for node in nodes:
        await node.wait_ready()
    for node in nodes:
        for code in ("USD", "EUR"):
            ok("asset", "define", str(node.directory), "--code", code, "--decimals", "2")


def customer(base: Path, node: LocalNode, who: str, **deposits: str) -> Path:
    """Register ``who@node`` with a key in ``base`` and deposit ``CODE=amount``."""
    address = f"{who}@{node.name}"
    key = base / f"{who}.key"
    ok("user", "new", address, "--node", str(node.directory), "--out", str(key))
    for code, amount in deposits.items():
        uai = f"{node.name}/{code}"
        ok("deposit", str(node.directory), "--user", address, "--amount", amount, "--asset", uai)
    return key


async def eventually(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    with trio.move_on_after(timeout_s):
        while True:
            result = await check()
            if result:
                return result
            await trio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


async def search(node: LocalNode, sell: str, buy: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await node.call("offers_search", sell=sell, buy=buy, limit=50)
    return found


def stop_all(nodes: list[LocalNode]) -> None:
    for node in nodes:
        node.stop()
