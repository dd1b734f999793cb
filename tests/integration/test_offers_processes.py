"""Exchange offers over real node processes and QUIC, through the real CLI.

- Twelve validators (a ring with chords): an offer made at one reaches every
  other, ``offers search`` finds it everywhere, a customer of the far side
  takes it and both legs settle on both chains; a cancellation reaches every
  node.
- Competing takers: exactly one wins each unit of the offer; the losers'
  funds stay or come back.
- A link is cut while offers are made and cancelled; after it heals both
  sides hold the same live offers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.integration.cli_support import error_of, ledgermesh, ok
from tests.integration.offers_mesh import (
    customer,
    eventually,
    make_mesh,
    search,
    start,
    stop_all,
)
from tests.integration.payments_mesh import freeze, thaw
from tools.mesh import LocalNode

pytestmark = pytest.mark.slow


def chain_balances(base: Path, node: LocalNode, who: str) -> dict[str, int]:
    out = base / f"{who}.chain"
    key = str(base / f"{who}.key")
    ok("chain", "pull", "--user-key", key, "--node", str(node.directory), "--out", str(out))
    report = ok("chain", "verify", str(out), "--node", str(node.directory))
    balances: dict[str, int] = report["balances_in_smallest_units"]
    return balances


def create_offer(base: Path, node: LocalNode, who: str, sell: str, buy: str, *extra: str) -> Any:
    return ok(
        *("offer", "create", "--user-key", str(base / f"{who}.key"), "--node", str(node.directory)),
        *("--sell", *sell.split()),
        *("--buy", *buy.split()),
        *("--expires-in", "1h"),
        *extra,
    )


async def test_twelve_validators_find_take_and_cancel(tmp_path: Path) -> None:
    names = [f"bank-{i:02d}.test" for i in range(12)]
    ring = [(i, (i + 1) % 12) for i in range(12)]
    chords = [(i, i + 4) for i in range(0, 8, 2)]
    nodes = make_mesh(tmp_path, names, ring + chords)
    maker_bank, taker_bank = nodes[0], nodes[7]
    eur_m, usd_t = f"{maker_bank.name}/EUR", f"{taker_bank.name}/USD"
    try:
        await start(nodes)
        customer(tmp_path, maker_bank, "alice", EUR="500.00")
        customer(tmp_path, taker_bank, "bob", USD="500.00")
        offer = create_offer(tmp_path, maker_bank, "alice", f"100.00 {eur_m}", f"110.00 {usd_t}")
        offer_id = offer["offer_id"]
        assert offer["state"] == "live" and offer["left"] == 10_000

        async def everywhere() -> bool:
            for node in nodes:
                found = await search(node, eur_m, usd_t)
                if [o["offer_id"] for o in found] != [offer_id]:
                    return False
            return True

        await eventually(everywhere, 60, "the offer at every node")
        # The far side takes part of it, through the mesh, from the CLI.
        code, taken, stderr = ledgermesh(
            *("offer", "take", offer_id[:12], "--user-key", str(tmp_path / "bob.key")),
            *("--node", str(taker_bank.directory), "--amount", "40.00"),
        )
        assert code == 0, stderr
        assert taken["state"] == "settled" and taken["amount"] == 4_000 and taken["pay"] == 4_400
        assert taken["acceptance"]  # the signed acceptance: the taker's proof
        bob = chain_balances(tmp_path, taker_bank, "bob")
        assert bob[f"{taker_bank.name}/EUR"] == 4_000
        assert bob[usd_t] < 50_000 - 4_400 + 1 and bob[usd_t] >= 50_000 - 4_400 - 44
        alice = chain_balances(tmp_path, maker_bank, "alice")
        assert alice[f"{maker_bank.name}/USD"] == 4_400

        async def left_everywhere() -> bool:
            for node in nodes:
                found = await search(node, eur_m, usd_t)
                if not found or found[0]["left"] != 6_000:
                    return False
            return True

        await eventually(left_everywhere, 60, "the fill at every node")

        # A second offer, then its cancellation, reach every node.
        second = create_offer(tmp_path, maker_bank, "alice", f"50.00 {eur_m}", f"60.00 {usd_t}")

        async def both_everywhere() -> bool:
            for node in nodes:
                if len(await search(node, eur_m, usd_t)) != 2:
                    return False
            return True

        await eventually(both_everywhere, 60, "the second offer at every node")
        cancelled = ok(
            *("offer", "cancel", second["offer_id"], "--user-key", str(tmp_path / "alice.key")),
            *("--node", str(maker_bank.directory)),
        )
        assert cancelled["state"] == "cancelled"

        async def cancelled_everywhere() -> bool:
            for node in nodes:
                found = await search(node, eur_m, usd_t)
                if [o["offer_id"] for o in found] != [offer_id]:
                    return False
            return True

        await eventually(cancelled_everywhere, 60, "the cancellation at every node")
        # The second reserve came back; the first offer (100.00 + its 1.00 fee reserve)
        # is still out, less the unused part of the fill's fee budget (0.40).
        alice = chain_balances(tmp_path, maker_bank, "alice")
        assert 50_000 - 10_100 < alice[eur_m] < 50_000 - 10_100 + 40
    finally:
        stop_all(nodes)


async def test_competing_takers_one_wins(tmp_path: Path) -> None:
    names = ["bank-a.test", "bank-b.test", "bank-c.test"]
    nodes = make_mesh(tmp_path, names, [(0, 1), (1, 2), (0, 2)])
    a, b, c = nodes
    eur_a, usd_a, usd_b, usd_c = (
        "bank-a.test/EUR",
        "bank-a.test/USD",
        "bank-b.test/USD",
        "bank-c.test/USD",
    )
    try:
        await start(nodes)
        customer(tmp_path, a, "alice", EUR="100.00")
        customer(tmp_path, a, "carol", USD="100.00")
        customer(tmp_path, a, "dave", USD="100.00")
        # Same validator: two customers race for the whole offer.
        offer = create_offer(tmp_path, a, "alice", f"10.00 {eur_a}", f"12.00 {usd_a}")
        takes = {}

        async def take(who: str) -> None:
            takes[who] = await trio.to_thread.run_sync(
                lambda: ledgermesh(
                    *(
                        "offer",
                        "take",
                        offer["offer_id"],
                        "--user-key",
                        str(tmp_path / f"{who}.key"),
                    ),
                    *("--node", str(a.directory)),
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(take, "carol")
            nursery.start_soon(take, "dave")
        codes = sorted(result[0] for result in takes.values())
        assert codes == [0, 1], takes
        winner = next(who for who, result in takes.items() if result[0] == 0)
        loser = "dave" if winner == "carol" else "carol"
        assert chain_balances(tmp_path, a, winner)[eur_a] == 1_000
        assert chain_balances(tmp_path, a, loser) == {usd_a: 10_000}
        assert chain_balances(tmp_path, a, "alice")[usd_a] == 1_200

        # Across validators: two customers of b race for one offer at a; a decides.
        customer(tmp_path, b, "bob", USD="100.00")
        customer(tmp_path, b, "ben", USD="100.00")
        cross = create_offer(tmp_path, a, "alice", f"20.00 {eur_a}", f"22.00 {usd_b}")
        await eventually(lambda: search(b, eur_a, usd_b), 30, "the offer at bank-b")
        results: dict[str, Any] = {}

        async def take_at(who: str) -> None:
            results[who] = await trio.to_thread.run_sync(
                lambda: ledgermesh(
                    *(
                        "offer",
                        "take",
                        cross["offer_id"],
                        "--user-key",
                        str(tmp_path / f"{who}.key"),
                    ),
                    *("--node", str(b.directory)),
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(take_at, "bob")
            nursery.start_soon(take_at, "ben")
        assert sorted(result[0] for result in results.values()) == [0, 1], results
        winner = next(who for who, result in results.items() if result[0] == 0)
        loser = "ben" if winner == "bob" else "bob"
        assert chain_balances(tmp_path, b, winner)["bank-b.test/EUR"] == 2_000
        assert chain_balances(tmp_path, b, loser) == {usd_b: 10_000}  # the hold came back
        # A customer of c cannot pay bank-b's USD: refused by its own validator.
        customer(tmp_path, c, "cat", USD="100.00")
        refused = error_of(
            *("offer", "take", cross["offer_id"], "--user-key", str(tmp_path / "cat.key")),
            *("--node", str(c.directory)),
        )
        assert refused["code"] in ("unknown-asset", "unknown-offer"), refused
        assert chain_balances(tmp_path, c, "cat") == {usd_c: 10_000}
    finally:
        stop_all(nodes)


async def test_offers_catch_up_after_a_cut(tmp_path: Path) -> None:
    names = ["bank-a.test", "bank-b.test", "bank-c.test"]
    nodes = make_mesh(tmp_path, names, [(0, 1), (1, 2)])
    a, b, c = nodes
    eur_a, usd_a = "bank-a.test/EUR", "bank-a.test/USD"
    try:
        await start(nodes)
        customer(tmp_path, a, "alice", EUR="1000.00")
        first = create_offer(tmp_path, a, "alice", f"10.00 {eur_a}", f"11.00 {usd_a}")
        await eventually(lambda: search(c, eur_a, usd_a), 30, "the first offer at bank-c")
        freeze(c)  # c hears nothing while offers come and go
        made = [
            create_offer(tmp_path, a, "alice", f"{n}.00 {eur_a}", f"{n + 1}.00 {usd_a}")
            for n in (20, 30, 40)
        ]
        ok(
            *("offer", "cancel", first["offer_id"], "--user-key", str(tmp_path / "alice.key")),
            *("--node", str(a.directory)),
        )
        ok(
            *("offer", "cancel", made[0]["offer_id"], "--user-key", str(tmp_path / "alice.key")),
            *("--node", str(a.directory)),
        )
        live = sorted(offer["offer_id"] for offer in made[1:])

        async def at_b() -> bool:
            return sorted(o["offer_id"] for o in await search(b, eur_a, usd_a)) == live

        await eventually(at_b, 30, "bank-b up to date")
        thaw(c)

        async def at_c() -> bool:
            return sorted(o["offer_id"] for o in await search(c, eur_a, usd_a)) == live

        await eventually(at_c, 60, "bank-c caught up after the cut healed")
        missing = error_of(
            *("offer", "show", first["offer_id"], "--node", str(c.directory)),
        )
        assert missing["code"] == "unknown-offer"
    finally:
        for node in nodes:
            if node.alive():
                thaw(node)
        stop_all(nodes)


async def test_watch_streams_new_changed_and_removed_offers(tmp_path: Path) -> None:
    nodes = make_mesh(tmp_path, ["bank-a.test"], [])
    (a,) = nodes
    eur, usd = "bank-a.test/EUR", "bank-a.test/USD"
    try:
        await start(nodes)
        customer(tmp_path, a, "alice", EUR="100.00")
        customer(tmp_path, a, "carol", USD="100.00")
        watch = subprocess.Popen(
            [
                *(sys.executable, "-m", "node.cli", "offers", "watch", "--node", str(a.directory)),
                *("--asset", eur, "--count", "3", "--duration", "60", "--json"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        await trio.sleep(2)  # the watcher has its cursor
        offer = create_offer(tmp_path, a, "alice", f"10.00 {eur}", f"12.00 {usd}")
        ok(
            *("offer", "take", offer["offer_id"], "--user-key", str(tmp_path / "carol.key")),
            *("--node", str(a.directory), "--amount", "4.00"),
        )
        ok(
            *("offer", "cancel", offer["offer_id"], "--user-key", str(tmp_path / "alice.key")),
            *("--node", str(a.directory)),
        )
        out, _ = await trio.to_thread.run_sync(lambda: watch.communicate(timeout=60))
        assert watch.returncode == 0
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["change"] for line in lines] == ["new", "changed", "removed"]
        assert {line["offer"]["offer_id"] for line in lines} == {offer["offer_id"]}
        assert [line["offer"]["left"] for line in lines[:2]] == [1_000, 600]
    finally:
        stop_all(nodes)
