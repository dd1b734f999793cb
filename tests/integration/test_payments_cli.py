"""The payment commands through the real CLI, against real nodes over QUIC.

Line a-b-c; c extends 50.00 USD to b. What an operator types: ``route``,
``pay --to``, ``payment status``, ``payments``; and the typed failures each
reach ``payment status`` with the hop that failed, when a hop failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import error_of, ok
from tests.integration.payments_mesh import link, make_nodes, wait_all_quiet, wait_route

A, B, C = "bank-a.test", "bank-b.test", "bank-c.test"

pytestmark = pytest.mark.slow


async def test_pay_status_list_and_route_through_the_cli(tmp_path: Path) -> None:
    nodes = make_nodes(tmp_path, [A, B, C])
    a, b, c = nodes[A], nodes[B], nodes[C]
    link(a, b)
    b.trust(c, "USD=10000.00")
    c.trust(b, "USD=50.00")
    a_dir, b_dir = str(a.directory), str(b.directory)
    try:
        for node in nodes.values():
            node.start("warning")
        for node in nodes.values():
            await node.wait_ready()
        await wait_route(a, C, 1_000)

        route = ok("route", "--node", a_dir, "--to", C, "--amount", "10.00", "--unit", "USD")
        (path,) = route["paths"]
        assert [hop["to"] for hop in path["hops"]] == [B, C]
        assert path["hops"][-1]["amount"] == 1_000 and path["fee"] == 1  # b: 0.1 %
        assert path["hops"][0]["expires_in_ms"] > path["hops"][1]["expires_in_ms"]
        nowhere = error_of(
            "route", "--node", a_dir, "--to", "bank-z.test", "--amount", "1.00", "--unit", "USD"
        )
        assert nowhere["code"] == "no-route"

        paid = ok(
            "pay", a_dir, "--to", C, "--amount", "10.00", "--unit", "USD", "--payment-id", "p1"
        )
        assert paid["status"] == "succeeded" and paid["fee"] == 1
        status = ok("payment", "status", "p1", "--node", a_dir)
        assert status["status"] == "succeeded" and len(status["preimage"]) == 64
        listed = ok("payments", "--node", a_dir)
        assert [view["payment_id"] for view in listed] == ["p1"]

        # Typed failures: the reason is the error's code and stays in payment status.
        fee = error_of(
            "pay",
            a_dir,
            "--to",
            C,
            "--amount",
            "10.00",
            "--unit",
            "USD",
            "--max-fee",
            "0",
            "--payment-id",
            "p-fee",
        )
        assert fee["code"] == "fee-too-high"
        fee_status = ok("payment", "status", "p-fee", "--node", a_dir)
        assert (fee_status["status"], fee_status["reason"]) == ("failed", "fee-too-high")
        assert fee_status["parts"] == []  # refused before anything was proposed

        unknown = error_of(
            "pay",
            a_dir,
            "--to",
            "bank-z.test",
            "--amount",
            "1.00",
            "--unit",
            "USD",
            "--payment-id",
            "p-z",
        )
        assert unknown["code"] == "unknown-payee"
        assert ok("payment", "status", "p-z", "--node", a_dir)["reason"] == "unknown-payee"

        # b spends its credit at c directly; a does not know, tries through b, b refuses.
        ok("pay", b_dir, "--peer", C, "--amount", "39.50", "--unit", "USD")
        short = error_of(
            "pay", a_dir, "--to", C, "--amount", "5.00", "--unit", "USD", "--payment-id", "p-short"
        )
        assert short["code"] == "insufficient-credit"
        assert f"{B}>{C}" in short["message"]
        short_status = ok("payment", "status", "p-short", "--node", a_dir)
        assert short_status["failed_hop"] == f"{B}>{C}"
        assert short_status["parts"][0]["reason"] == f"insufficient-credit@{B}>{C}"

        again = ok(
            "pay", a_dir, "--to", C, "--amount", "10.00", "--unit", "USD", "--payment-id", "p1"
        )
        assert again["status"] == "succeeded" and again["condition"] == paid["condition"]
        listed = ok("payments", "--node", a_dir)
        assert [view["payment_id"] for view in listed] == ["p1", "p-fee", "p-z", "p-short"]
        await wait_all_quiet(nodes)
        c_rows = ok("balances", str(c.directory))
        assert [row["ours"]["current"] for row in c_rows] == [1_000 + 3_950]  # paid once
    finally:
        for node in nodes.values():
            node.stop()
