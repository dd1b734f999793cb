"""A customer of one bank pays a customer of another through a correspondent,
over real node processes and QUIC, through the real CLI.

bank-a - bank-b - bank-c in a line: alice@bank-a.test pays bob@bank-c.test
through bank-b. Alice's hold settles for the amount and the fee, bob is
credited in bank-c's own asset, both chains verify offline, fees add up
across the chains and the SNAP positions; failures release the hold; a
SIGKILL of the payer's validator mid-payment ends the hold exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli_support import error_of, ledgermesh, ok
from tests.integration.payments_mesh import (
    check_books,
    freeze,
    link,
    make_nodes,
    thaw,
    wait_all_quiet,
    wait_route,
)
from tools.mesh import LocalNode

A, B, C = "bank-a.test", "bank-b.test", "bank-c.test"
USD_A, USD_C = f"{A}/USD", f"{C}/USD"
ALICE, BOB = f"alice@{A}", f"bob@{C}"

pytestmark = pytest.mark.slow


def add_units(node: LocalNode) -> None:
    config = node.directory / "node.toml"
    config.write_text(config.read_text() + f'\n[units]\n"1E-2 USD" = "{node.name}/USD"\n')


def transfer(tmp_path: Path, a: LocalNode, amount: str, *extra: str) -> tuple[int, Any, str]:
    return ledgermesh(
        "transfer",
        "--user-key",
        str(tmp_path / "alice.key"),
        "--node",
        str(a.directory),
        "--amount",
        amount,
        "--asset",
        USD_A,
        *extra,
    )


def verified_chain(tmp_path: Path, node: LocalNode, who: str) -> dict[str, Any]:
    out = tmp_path / f"{who}.chain"
    key = str(tmp_path / f"{who}.key")
    ok("chain", "pull", "--user-key", key, "--node", str(node.directory), "--out", str(out))
    report = ok("chain", "verify", str(out), "--node", str(node.directory))
    return {"balances": report["balances_in_smallest_units"], **report}


def chain_entries(tmp_path: Path, who: str) -> list[dict[str, Any]]:
    """The instructions on a pulled chain file, decoded."""
    from node.ledger.files import decode_chain_file

    chain = decode_chain_file((tmp_path / f"{who}.chain").read_bytes())
    return [entry.body.instruction.instruction.to_wire() for entry in chain.entries]


async def start_line(tmp_path: Path) -> dict[str, LocalNode]:
    nodes = make_nodes(tmp_path, [A, B, C])
    a, b, c = nodes[A], nodes[B], nodes[C]
    link(a, b)
    link(b, c)
    add_units(a)
    add_units(c)
    for node in nodes.values():
        node.start("warning")
    for node in nodes.values():
        await node.wait_ready()
    for node in (a, c):
        ok("asset", "define", str(node.directory), "--code", "USD", "--decimals", "2")
    for who, node in (("alice", a), ("bob", c)):
        address = f"{who}@{node.name}"
        key = str(tmp_path / f"{who}.key")
        ok("user", "new", address, "--node", str(node.directory), "--out", key)
    ok("deposit", str(a.directory), "--user", ALICE, "--amount", "100.00", "--asset", USD_A)
    await wait_route(a, C, 10_000)
    return nodes


async def test_alice_pays_bob_through_a_correspondent(tmp_path: Path) -> None:
    nodes = await start_line(tmp_path)
    a, c = nodes[A], nodes[C]
    try:
        code, paid, stderr = transfer(
            tmp_path, a, "25.00", "--to", BOB, "--payment-id", "p1", "--max-fee", "0.10"
        )
        assert code == 0, stderr
        assert paid["outcome"] == "succeeded" and paid["path"] == f"{A} > {B} > {C}"
        assert paid["amount"] == f"25.00 {USD_A}" and paid["time_ms"] > 0
        fee_cents = round(float(paid["fee"].split()[0]) * 100)
        assert 0 < fee_cents <= 10
        # The same payment id never pays twice: it reports the same payment.
        again = transfer(tmp_path, a, "25.00", "--to", BOB, "--payment-id", "p1")[1]
        assert (again["outcome"], again["fee"]) == ("succeeded", paid["fee"])

        await wait_all_quiet(nodes)
        nets = await check_books(nodes)
        assert nets == {A: -(2_500 + fee_cents), B: fee_cents, C: 2_500}
        alice = verified_chain(tmp_path, a, "alice")
        bob = verified_chain(tmp_path, c, "bob")
        assert alice["balances"][USD_A] == 10_000 - 2_500 - fee_cents
        assert bob["balances"] == {USD_C: 2_500}
        kinds = [entry["type"] for entry in chain_entries(tmp_path, "alice")]
        assert kinds == ["deposit", "cross-transfer", "settle"]
        assert [entry["type"] for entry in chain_entries(tmp_path, "bob")] == ["credit"]
        # Conservation across the books and the SNAP position.
        assets_a = {row["uai"]: row for row in ok("assets", str(a.directory))}
        assets_c = {row["uai"]: row for row in ok("assets", str(c.directory))}
        assert assets_a[USD_A]["outstanding"] == 10_000 + nets[A]
        assert assets_c[USD_C]["outstanding"] == nets[C]

        # Failures release the hold: nothing moves.
        fee = error_of(
            *("transfer", "--user-key", str(tmp_path / "alice.key"), "--node", str(a.directory)),
            *("--to", BOB, "--amount", "10.00", "--asset", USD_A, "--max-fee", "0"),
        )
        assert fee["code"] == "fee-too-high"
        code, _, stderr = transfer(tmp_path, a, "10.00", "--to", f"nobody@{C}")
        assert code == 1 and "unknown-payee" in stderr
        code, _, stderr = transfer(tmp_path, a, "1000.00", "--to", BOB)
        assert code == 1 and "insufficient-funds" in stderr
        alice = verified_chain(tmp_path, a, "alice")
        assert alice["balances"][USD_A] == 10_000 - 2_500 - fee_cents
        kinds = [entry["type"] for entry in chain_entries(tmp_path, "alice")]
        assert kinds == ["deposit", "cross-transfer", "settle", *["cross-transfer", "release"] * 2]
        await wait_all_quiet(nodes)
        assert await check_books(nodes) == nets
    finally:
        for node in nodes.values():
            node.stop()


async def test_payer_validator_killed_mid_payment_ends_the_hold_once(tmp_path: Path) -> None:
    nodes = await start_line(tmp_path)
    a, c = nodes[A], nodes[C]
    try:
        freeze(c)  # the invoice request waits in c's socket: the payment stays pending
        code, _, stderr = transfer(
            tmp_path, a, "30.00", "--to", BOB, "--payment-id", "p-kill", "--wait", "1"
        )
        assert code == 1 and "pending" in stderr
        a.kill()
        thaw(c)
        a.start("warning")
        await a.wait_ready()
        code, result, stderr = transfer(tmp_path, a, "30.00", "--to", BOB, "--payment-id", "p-kill")
        await wait_all_quiet(nodes)
        nets = await check_books(nodes)
        alice = verified_chain(tmp_path, a, "alice")
        entries = chain_entries(tmp_path, "alice")
        ends = [e for e in entries if e["type"] in ("settle", "release")]
        assert len(ends) == 1 and ends[0]["payment_id"] == "p-kill"
        bob = verified_chain(tmp_path, c, "bob")
        if code == 0:
            assert result["outcome"] == "succeeded" and ends[0]["type"] == "settle"
            assert bob["balances"] == {USD_C: 3_000} and nets[C] == 3_000
            assert alice["balances"][USD_A] == 10_000 + nets[A]
        else:
            assert ends[0]["type"] == "release", stderr
            assert bob["balances"] == {} and nets == {A: 0, B: 0, C: 0}
            assert alice["balances"][USD_A] == 10_000
    finally:
        for node in nodes.values():
            if node.process is not None and node.process.poll() is None:
                thaw(node)
            node.stop()
