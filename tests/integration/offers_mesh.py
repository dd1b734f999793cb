"""Helpers for the exchange-offer tests over real node processes and QUIC.

Every validator issues USD and EUR (2 decimals), pays both across
validators (``[units]``), and extends credit in both units to each peer.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from node.api.client import open_api_client
from node.api.protocol import ApiError
from node.cli import main as cli_main
from node.cli_accounts import sign_for_api
from node.cli_offers import take_of
from node.crypto import load_key_file
from node.ledger.files import ChainFile, decode_chain_file
from tests.integration.cli_support import ok
from tools.mesh import LocalNode, free_udp_port

UNITS = ("1E-2 USD", "1E-2 EUR")
CREDIT = "100000.00"


def _offline(*arguments: str) -> None:
    """A CLI command that only writes files (init, trust), run in this process:
    the same code as the real command without an interpreter's start-up each time."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main([*arguments, "--json"]) == 0, arguments


def make_mesh(base: Path, names: list[str], edges: list[tuple[int, int]]) -> list[LocalNode]:
    nodes = [LocalNode(name, base / name, free_udp_port()) for name in names]
    for node in nodes:
        listen = f"127.0.0.1:{node.port}"
        _offline("init", str(node.directory), "--name", node.name, "--listen", listen)
    for left, right in edges:
        limits = [f"--limit={unit}={CREDIT}" for unit in UNITS]
        for one, other in ((nodes[left], nodes[right]), (nodes[right], nodes[left])):
            _offline("trust", str(one.directory), "--peer-dir", str(other.directory), *limits)
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
    for node in nodes:  # through the API: the CLI's own start-up would cost seconds here
        for code in ("USD", "EUR"):
            await node.call("asset_define", code=code, decimals=2)


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


# --- crash tests: routes, chains by payment, SNAP positions ---------------------------


async def wait_route(node: LocalNode, to: str, unit: str, timeout_s: float = 30.0) -> None:
    """Wait until gossip has taught ``node`` a path to ``to`` in ``unit``."""
    with trio.fail_after(timeout_s):
        while True:
            try:
                await node.call("route", to=to, amount=1, unit=unit)
                return
            except ApiError:
                await trio.sleep(0.2)


def pull_chain(base: Path, node: LocalNode, who: str) -> tuple[ChainFile, dict[str, Any]]:
    """``chain pull`` then ``chain verify`` (offline, the validator's key pinned):
    the decoded chain file and the verify report."""
    out = base / f"{who}.chain"
    key = str(base / f"{who}.key")
    ok("chain", "pull", "--user-key", key, "--node", str(node.directory), "--out", str(out))
    report = ok("chain", "verify", str(out), "--node", str(node.directory))
    return decode_chain_file(out.read_bytes()), report


def entries_by_payment(chain: ChainFile) -> dict[str, list[tuple[str, dict[str, int]]]]:
    """Per payment id (a take's is its take id in hex): the entries' types and deltas."""
    found: dict[str, list[tuple[str, dict[str, int]]]] = {}
    for entry in chain.entries:
        instruction = entry.body.instruction.instruction
        payment_id: str | None = getattr(instruction, "payment_id", None)
        if payment_id is not None:
            deltas = dict(entry.body.deltas)
            found.setdefault(payment_id, []).append((instruction.TYPE, deltas))
    return found


async def snap_nets(nodes: list[LocalNode]) -> dict[str, dict[str, int]]:
    """Both sides of every bilateral ledger agree and nothing is pending.

    Returns each node's net position per unit (sum of ``ours.current``)."""
    views = {node.name: await node.call("balances") for node in nodes}
    by_key = {(name, row["peer"], row["unit"]): row for name, rows in views.items() for row in rows}
    nets: dict[str, dict[str, int]] = {node.name: {} for node in nodes}
    for (name, peer, unit), row in by_key.items():
        other = by_key[(peer, name, unit)]
        assert row["ours"] == other["theirs"] and row["theirs"] == other["ours"], (name, peer)
        assert row["ours"]["payable"] == 0 and row["ours"]["receivable"] == 0, (name, row)
        nets[name][unit] = nets[name].get(unit, 0) + row["ours"]["current"]
    return nets


async def submit_take(
    base: Path, node: LocalNode, who: str, offer: dict[str, Any], amount: int
) -> str:
    """Take ``amount`` of ``offer`` (a node's view of it) through the API, as
    ``offer take`` does, and return as soon as the validator has the take (its
    id, in hex). Across validators, the taker's need not know the offer."""
    key = load_key_file(base / f"{who}.key")
    async with open_api_client(node.directory, key=key) as client:
        account = await client.call("account")
        take = take_of(offer, account["address"], account["last_nonce"] + 1, amount)
        status = await client.call("offer_take", instruction=sign_for_api(key, take))
    take_id: str = status["take_id"]
    return take_id


async def take_state(base: Path, node: LocalNode, who: str, take_id: str) -> str:
    """The take's state as its taker sees it (``take_status``)."""
    key = load_key_file(base / f"{who}.key")
    async with open_api_client(node.directory, key=key) as client:
        status = await client.call("take_status", take_id=take_id)
    state: str = status["state"]
    return state
