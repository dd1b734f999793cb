"""``ledgermesh transfer-batch``: a customer's payroll file through a real validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import ledgermesh, ok
from tools.mesh import LocalNode, free_udp_port

pytestmark = pytest.mark.slow

ASSET = "bank-a.test/USD"


async def test_a_payroll_file_pays_each_line_and_refuses_only_what_cannot_be_paid(
    tmp_path: Path,
) -> None:
    bank = LocalNode("bank-a.test", tmp_path / "a", free_udp_port())
    bank.init()
    bank.start()
    try:
        await bank.wait_answering()
        node = str(bank.directory)
        keys = {}
        for name in ("employer", "ann", "ben", "cy"):
            keys[name] = tmp_path / f"{name}.key"
            ok("user", "new", f"{name}@bank-a.test", "--node", node, "--out", str(keys[name]))
        ok("asset", "define", node, "--code", "USD", "--decimals", "2")
        ok(
            "deposit",
            node,
            "--user",
            "employer@bank-a.test",
            "--amount",
            "100.00",
            "--asset",
            ASSET,
        )
        employer = ("--user-key", str(keys["employer"]), "--node", node, "--asset", ASSET)

        # A bad line stops everything before anything is paid.
        bad = tmp_path / "bad.csv"
        bad.write_text("to,amount\nann@bank-a.test,10.00\nben@bank-a.test,1.001\n")
        code, _, stderr = ledgermesh("transfer-batch", str(bad), *employer)
        assert code == 1 and "bad.csv:3" in stderr and "decimals" in stderr
        assert ok("account", node, "--user", "ann@bank-a.test")["balances"] == {}

        payroll = tmp_path / "payroll.csv"
        payroll.write_text(
            "to,amount\n"
            "# March\n"
            "ann@bank-a.test,40.00\n"
            "ben@bank-a.test,35.50\n"
            "cy@bank-a.test,30.00\n"  # 24.50 left: refused, the rest stands
            "nobody@bank-a.test,1.00\n"
            "cy@bank-a.test,24.50\n"
        )
        code, result, stderr = ledgermesh("transfer-batch", str(payroll), *employer)
        assert code == 1, stderr  # some lines were refused
        assert (result["paid"], result["refused"]) == (3, 2)
        refusals = {o["line"]: o["refused"] for o in result["outcomes"] if "refused" in o}
        assert refusals == {5: "insufficient-funds", 6: "unknown-payee"}
        assert "payroll.csv:5" in stderr and "payroll.csv:6" in stderr
        assert result["balances"] == {ASSET: "0.00"}
        for name, cents in (("ann", 4000), ("ben", 3550), ("cy", 2450)):
            account = ok("account", node, "--user", f"{name}@bank-a.test")
            assert account["balances"] == {ASSET: cents}

        # The employer's chain has one entry per paid line, and verifies offline.
        chain = tmp_path / "employer.chain"
        ok(
            "chain",
            "pull",
            "--user-key",
            str(keys["employer"]),
            "--node",
            node,
            "--out",
            str(chain),
        )
        verified = ok("chain", "verify", str(chain), "--node", node)
        assert verified["entries"] == 1 + 3  # the deposit, then three payments

        # The same file again: new nonces, so it pays again (it is a new payroll
        # run); the money is not there, so every line is refused and nothing moves.
        code, result, _ = ledgermesh("transfer-batch", str(payroll), *employer)
        assert code == 1 and result["paid"] == 0 and result["refused"] == 5
    finally:
        bank.stop()
