"""Customers, assets and federation across three real validators over QUIC.

bank-a trusts bank-b, bank-b trusts bank-c; bank-a and bank-c do not know
each other. Everything goes through the real CLI and real node processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from tests.integration.cli_support import ledgermesh, ok
from tools.mesh import LocalNode, free_udp_port

pytestmark = pytest.mark.slow


@pytest.fixture
def line_of_three(tmp_path: Path):
    nodes = [LocalNode(f"bank-{n}.test", tmp_path / n, free_udp_port()) for n in ("a", "b", "c")]
    for node in nodes:
        node.init()
    a, b, c = nodes
    for left, right in ((a, b), (b, c)):
        left.trust(right, "USD=1000.00")
        right.trust(left, "USD=1000.00")
    for node in nodes:
        node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def test_resolution_customers_and_chains(line_of_three, tmp_path: Path) -> None:
    a, _middle, c = line_of_three
    for node in line_of_three:
        await node.wait_ready()
    bob = ok(
        "user",
        "new",
        "bob@bank-c.test",
        "--node",
        str(c.directory),
        "--out",
        str(tmp_path / "bob.key"),
        "--kyc-level",
        "3",
    )

    # bank-a resolves a user of bank-c through bank-b, verified.
    resolved = ok("resolve", "bob@bank-c.test", "--node", str(a.directory))
    assert resolved["user_key"] == bob["user_key"]
    assert resolved["kyc_level"] == 3
    assert resolved["validator_key"] == load_config(c.directory).public_key.hex()
    code, _, stderr = ledgermesh("resolve", "nobody@bank-c.test", "--node", str(a.directory))
    assert code == 1 and "unknown-user" in stderr
    code, _, stderr = ledgermesh("resolve", "x@bank-z.test", "--node", str(a.directory))
    assert code == 1 and "unreachable" in stderr

    # Customers of bank-a: deposit, a transfer, a chain verified offline.
    keys = {name: tmp_path / f"{name}.key" for name in ("alice", "carol")}
    ok(
        "user",
        "new",
        "alice@bank-a.test",
        "--node",
        str(a.directory),
        "--out",
        str(keys["alice"]),
        "--kyc-level",
        "2",
    )
    ok(
        "user",
        "new",
        "carol@bank-a.test",
        "--node",
        str(a.directory),
        "--out",
        str(keys["carol"]),
        "--kyc-level",
        "1",
    )
    ok("asset", "define", str(a.directory), "--code", "USD", "--decimals", "2", "--kyc-level", "1")
    ok(
        "deposit",
        str(a.directory),
        "--user",
        "alice@bank-a.test",
        "--amount",
        "100.00",
        "--asset",
        "bank-a.test/USD",
    )
    paid = ok(
        "transfer",
        "--user-key",
        str(keys["alice"]),
        "--node",
        str(a.directory),
        "--to",
        "carol@bank-a.test",
        "--amount",
        "12.50",
        "--asset",
        "bank-a.test/USD",
    )
    assert paid["balances"] == {"bank-a.test/USD": "87.50"}
    code, _, stderr = ledgermesh(
        "transfer",
        "--user-key",
        str(keys["carol"]),
        "--node",
        str(a.directory),
        "--to",
        "alice@bank-a.test",
        "--amount",
        "50.00",
        "--asset",
        "bank-a.test/USD",
    )
    assert code == 1 and "insufficient-funds" in stderr

    chain = tmp_path / "alice.chain"
    ok(
        "chain",
        "pull",
        "--user-key",
        str(keys["alice"]),
        "--node",
        str(a.directory),
        "--out",
        str(chain),
    )
    verified = ok("chain", "verify", str(chain), "--node", str(a.directory))
    assert verified["entries"] == 2
    assert verified["balances_in_smallest_units"] == {"bank-a.test/USD": 8750}
    # The chain survives a SIGKILL of its validator.
    a.kill()
    a.start()
    await a.wait_answering()
    account = ok("account", str(a.directory), "--user", "alice@bank-a.test")
    assert account["balances"] == {"bank-a.test/USD": 8750} and account["entries"] == 2
    # One flipped byte in the file: verification fails and says where.
    raw = bytearray(chain.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chain.write_bytes(bytes(raw))
    code, _, stderr = ledgermesh("chain", "verify", str(chain), "--node", str(a.directory))
    assert code == 1 and "entry" in stderr
