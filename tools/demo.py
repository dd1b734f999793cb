"""`make demo`: two validators keep a SNAP bilateral ledger over QUIC and survive SIGKILL,
then serve their customers' own hash-chained ledgers.

bank-a.test and bank-b.test run as separate processes on loopback, trusting
each other with credit limits. They exchange plain and conditional transfers
in both directions; bank-b is killed with SIGKILL in the middle of the stream
and restarted; at the end both print their balances, and the demo exits 0
only if the two sides agree exactly. Then customers register at both banks,
assets are issued and deposited, alice pays carol, bank-a resolves a customer
of bank-b through the mesh, and alice's pulled ledger is verified offline.
Then bank-c.test joins, trusting only bank-b: the mesh is a line
bank-a - bank-b - bank-c, and alice pays bob@bank-c.test through bank-b as
correspondent; every ledger that changed is printed, and both customers'
chains are verified offline. Last, alice makes an exchange offer at bank-a;
gossip brings it to bank-c, where bob finds it and takes part of it: both
legs settle through bank-b and both chains show the exchange.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from node.api.client import ApiClient
from node.api.protocol import ApiError
from node.logs import configure_logging
from node.units import format_amount
from tools.mesh import LocalNode, cli, free_udp_port, local_mesh

UNIT = "1E-2 USD"
TRANSFERS = 400
KILL_AT = 150


def say(text: str) -> None:
    print(text, flush=True)


async def send_one(payer: ApiClient, payee: ApiClient | None, payee_name: str, amount: int) -> str:
    """One transfer through the operator API, conditional on an invoice when the payee
    is given; returns 'acknowledged' or why not."""
    try:
        arguments: dict[str, Any] = {"peer": payee_name, "amount": amount, "unit": UNIT}
        if payee is not None:
            invoice = await payee.call("invoice", amount=amount, unit=UNIT)
            arguments["condition"] = invoice["condition"]
            arguments["expires_at_ms"] = int(time.time() * 1000) + 30_000
        await payer.call("pay", **arguments)
        return "acknowledged"
    except ApiError as error:
        return error.code


def balance_rows(view: list[dict[str, Any]]) -> list[str]:
    rows = []
    for line in view:
        ours, theirs = line["ours"], line["theirs"]
        rows.append(
            f"  with {line['peer']:<12} {line['unit']:<9} "
            f"ours current {format_amount(ours['current'], line['unit']):>10} "
            f"payable {format_amount(ours['payable'], line['unit']):>8} "
            f"receivable {format_amount(ours['receivable'], line['unit']):>8} | "
            f"theirs current {format_amount(theirs['current'], line['unit']):>10}"
        )
    return rows


async def demo(base: Path) -> int:
    with local_mesh(base, ["bank-a.test", "bank-b.test"], "USD=1000000.00") as nodes:
        bank_a, bank_b = nodes
        say(f"1. made two validators in {base}/: keys, configs, mutual trust (1,000,000.00 USD)")
        for node in nodes:
            node.start()
        for node in nodes:
            await node.wait_ready()
        say("2. both running; QUIC link up, peers pinned by key")

        rng = random.Random(7)
        outcomes: dict[str, int] = {}

        async def stream(count: int) -> None:
            """``count`` transfers, 10 in flight at a time, both ways, some conditional."""
            for _ in range(count // 10):
                async with AsyncExitStack() as stack:
                    clients: dict[str, ApiClient] = {}
                    for node in nodes:
                        if node.alive():
                            try:
                                client = await stack.enter_async_context(node.client())
                            except ApiError:  # killed while we connected: skip it this round
                                continue
                            clients[node.name] = client
                    async with trio.open_nursery() as nursery:
                        for _ in range(10):
                            payer, payee = (bank_a, bank_b)
                            if rng.random() < 0.4:
                                payer, payee = payee, payer
                            if payer.name not in clients:
                                payer, payee = payee, payer
                            conditional = rng.random() < 0.25 and payee.name in clients
                            nursery.start_soon(
                                record,
                                clients[payer.name],
                                clients[payee.name] if conditional else None,
                                payee.name,
                                rng.randint(1, 50_00),
                            )

        async def record(
            payer: ApiClient, payee: ApiClient | None, payee_name: str, amount: int
        ) -> None:
            outcome = await send_one(payer, payee, payee_name, amount)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

        await stream(KILL_AT)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream, 100)
            await trio.sleep(0.1)
            say(f"3. {sum(outcomes.values())} transfers done, more in flight: SIGKILL bank-b.test")
            bank_b.kill()
        await stream(40)
        bank_b.start()
        await bank_b.wait_ready()
        say("4. bank-b.test restarted from its log; link back up; retransmissions resume")
        await stream(TRANSFERS - KILL_AT - 140)
        say(f"5. {sum(outcomes.values())} transfers offered: {outcomes}")

        quiet = [await node.wait_quiet() for node in nodes]
        say("6. both sides quiet: nothing pending, nothing waiting for an ACK")
        view_a = await bank_a.call("balances")
        view_b = await bank_b.call("balances")
        for node, view in ((bank_a, view_a), (bank_b, view_b)):
            say(f"\n{node.name} balances:")
            for row in balance_rows(view):
                say(row)
        agree = (
            len(view_a) == len(view_b) == 1
            and view_a[0]["ours"] == view_b[0]["theirs"]
            and view_a[0]["theirs"] == view_b[0]["ours"]
        )
        accepted = sum(status["accepted"] for status in quiet)
        say(f"\naccepted transfers on the ledger: {accepted // 2 if agree else accepted}")
        if not agree:
            say("RESULT: the validators DISAGREE.")
            return 1
        say("RESULT: both validators agree on every balance.")
        customers_ok = customers(base, bank_a, bank_b)
        payments_ok = await correspondent(base, bank_a, bank_b)
        return 0 if customers_ok and payments_ok else 1


def run(*arguments: str) -> dict[str, Any]:
    """The real CLI, shown as the operator or the customer would type it."""
    say(f"  $ ledgermesh {' '.join(arguments)}")
    result: dict[str, Any] = json.loads(cli(*arguments, "--json"))
    return result


def customers(base: Path, bank_a: LocalNode, bank_b: LocalNode) -> bool:
    """Customers' own hash-chained ledgers, co-signed by their bank."""
    say("\n7. customers: keys made on their side, registered with a KYC level")
    a, b = str(bank_a.directory), str(bank_b.directory)
    keys = {name: str(base / f"{name}.key") for name in ("alice", "carol", "dave")}
    run("user", "new", "alice@bank-a.test", "--node", a, "--out", keys["alice"], "--kyc-level", "2")
    run("user", "new", "carol@bank-a.test", "--node", a, "--out", keys["carol"], "--kyc-level", "1")
    run("user", "new", "dave@bank-b.test", "--node", b, "--out", keys["dave"], "--kyc-level", "1")
    say("8. each bank issues its asset and deposits onto its customers' ledgers")
    run("asset", "define", a, "--code", "USD", "--decimals", "2", "--kyc-level", "1")
    run("asset", "define", b, "--code", "EUR", "--decimals", "2")
    run(
        "deposit",
        a,
        "--user",
        "alice@bank-a.test",
        "--amount",
        "100.00",
        "--asset",
        "bank-a.test/USD",
    )
    run(
        "deposit",
        b,
        "--user",
        "dave@bank-b.test",
        "--amount",
        "40.00",
        "--asset",
        "bank-b.test/EUR",
    )
    say("9. alice pays carol at bank-a: signed by alice, co-signed by bank-a, both chains")
    paid = run(
        "transfer",
        "--user-key",
        keys["alice"],
        "--node",
        a,
        "--to",
        "carol@bank-a.test",
        "--amount",
        "12.50",
        "--asset",
        "bank-a.test/USD",
    )
    say(f"     alice now holds {paid['balances']['bank-a.test/USD']} bank-a.test/USD")
    say("10. bank-a resolves dave@bank-b.test through the mesh, signed by bank-b")
    dave = run("resolve", "dave@bank-b.test", "--node", a)
    say(f"     key {dave['user_key'][:16]}..., KYC level {dave['kyc_level']}")
    say("11. alice pulls her ledger and anyone can verify it offline")
    chain = str(base / "alice.chain")
    run("chain", "pull", "--user-key", keys["alice"], "--node", a, "--out", chain)
    verified = run("chain", "verify", chain, "--node", a)
    say(
        f"     {verified['entries']} entries, hash-linked, both signatures on each: "
        f"balances {verified['balances_in_smallest_units']} (smallest units)"
    )
    good = verified["ok"] and verified["balances_in_smallest_units"] == {"bank-a.test/USD": 8750}
    say("RESULT: the customer ledgers verify." if good else "RESULT: a ledger does NOT verify.")
    return bool(good)


def add_units(node: LocalNode, *uais: str) -> None:
    """Map each SNAP unit (by code) to the asset the bank pays its customers in."""
    config = node.directory / "node.toml"
    table = "".join(f'"1E-2 {uai.partition("/")[2]}" = "{uai}"\n' for uai in uais)
    config.write_text(config.read_text() + f"\n[units]\n{table}")


async def correspondent(base: Path, bank_a: LocalNode, bank_b: LocalNode) -> bool:
    """A customer of bank-a pays a customer of bank-c, two hops away, through bank-b."""
    say("\n12. bank-c.test joins, trusting only bank-b: the mesh is bank-a - bank-b - bank-c")
    bank_c = LocalNode("bank-c.test", base / "bank-c.test", free_udp_port())
    bank_c.init()
    bank_b.trust(bank_c, "USD=1000.00", "EUR=1000.00")
    bank_c.trust(bank_b, "USD=1000.00", "EUR=1000.00")
    bank_a.trust(bank_b, "EUR=1000.00")
    bank_b.trust(bank_a, "EUR=1000.00")
    add_units(bank_a, "bank-a.test/USD", "bank-a.test/EUR")
    add_units(bank_c, "bank-c.test/USD", "bank-c.test/EUR")
    say(f'     [units] "{UNIT}" = "bank-a.test/USD" at bank-a, = "bank-c.test/USD" at bank-c')
    for node in (bank_a, bank_b):
        node.stop()
    try:
        for node in (bank_a, bank_b, bank_c):
            node.start("warning")
        for node in (bank_a, bank_b, bank_c):
            await node.wait_ready()
        a, c = str(bank_a.directory), str(bank_c.directory)
        bob_key = str(base / "bob.key")
        run("asset", "define", c, "--code", "USD", "--decimals", "2")
        run("user", "new", "bob@bank-c.test", "--node", c, "--out", bob_key)
        with trio.fail_after(20):
            while True:  # gossip teaches bank-a the route through bank-b
                try:
                    await bank_a.call("route", to="bank-c.test", amount=2500, unit=UNIT)
                    break
                except ApiError:
                    await trio.sleep(0.2)
        before = {node.name: await node.call("balances") for node in (bank_a, bank_b, bank_c)}
        say("13. alice pays bob@bank-c.test 25.00: held on her chain, paid hop by hop")
        keys = str(base / "alice.key")
        paid = run(
            "transfer",
            *("--user-key", keys, "--node", a, "--to", "bob@bank-c.test"),
            *("--amount", "25.00", "--asset", "bank-a.test/USD", "--payment-id", "demo-1"),
            *("--max-fee", "0.10"),
        )
        say(
            f"     {paid['outcome']} via {paid['path']}: fee {paid['fee']}, "
            f"{paid['time_ms']} ms; alice holds {paid['balances']['bank-a.test/USD']}"
        )
        again = run(
            "transfer",
            *("--user-key", keys, "--node", a, "--to", "bob@bank-c.test"),
            *("--amount", "25.00", "--asset", "bank-a.test/USD", "--payment-id", "demo-1"),
        )
        say(f"     the same payment id again: {again['outcome']}, nothing paid twice")
        for node in (bank_a, bank_b, bank_c):
            await node.wait_quiet()
        say("14. every ledger that changed:")
        nets: dict[str, int] = {}
        for node in (bank_a, bank_b, bank_c):
            view = await node.call("balances")
            changed = [row for row in view if row not in before[node.name]]
            say(f"  {node.name} bilateral (SNAP) ledgers:")
            for row in balance_rows(changed):
                say(f"  {row}")
            nets[node.name] = sum(row["ours"]["current"] for row in view)
        chains = {}
        for who, node, uai in (
            ("alice", bank_a, "bank-a.test/USD"),
            ("bob", bank_c, "bank-c.test/USD"),
        ):
            path = str(base / f"{who}.chain")
            key = str(base / f"{who}.key")
            run("chain", "pull", "--user-key", key, "--node", str(node.directory), "--out", path)
            report = run("chain", "verify", path, "--node", str(node.directory))
            chains[who] = report["balances_in_smallest_units"].get(uai, 0)
            say(
                f"     {who}@{node.name}: {report['entries']} entries verify; balance "
                f"{format_amount(chains[who], UNIT)} {uai}, "
                f"held {report['held_in_smallest_units'] or 'nothing'}"
            )
        for node, uai in ((bank_a, "bank-a.test/USD"), (bank_c, "bank-c.test/USD")):
            assets = {
                row["uai"]: row for row in json.loads(cli("assets", str(node.directory), "--json"))
            }
            outstanding = int(assets[uai]["outstanding"])
            say(
                f"     {node.name} books: owes its customers "
                f"{format_amount(outstanding, UNIT)} {uai} (balances + held)"
            )
        fee = round(float(paid["fee"].split()[0]) * 100)
        deltas = {
            "bank-a.test": nets["bank-a.test"] - _net(before["bank-a.test"]),
            "bank-b.test": nets["bank-b.test"] - _net(before["bank-b.test"]),
            "bank-c.test": nets["bank-c.test"] - _net(before["bank-c.test"]),
        }
        good = (
            paid["outcome"] == "succeeded"
            and again["outcome"] == "succeeded"
            and chains == {"alice": 8750 - 2500 - fee, "bob": 2500}
            and deltas == {"bank-a.test": -(2500 + fee), "bank-b.test": fee, "bank-c.test": 2500}
        )
        say(f"     SNAP positions moved by {deltas}: amount + fee out, fee kept, amount in")
        say(
            "RESULT: the cross-bank payment adds up on every ledger."
            if good
            else "RESULT: the cross-bank payment does NOT add up."
        )
        exchanged = await exchange(base, bank_a, bank_c, chains["alice"])
        return good and exchanged
    finally:
        bank_c.stop()


async def exchange(base: Path, bank_a: LocalNode, bank_c: LocalNode, usd_before: int) -> bool:
    """An offer made at bank-a is found by a customer of bank-c, taken, and settled
    on both chains: two legs through bank-b bound to one condition."""
    a, c = str(bank_a.directory), str(bank_c.directory)
    alice, bob = str(base / "alice.key"), str(base / "bob.key")
    say("\n15. exchange offers: alice offers 20.00 bank-a.test/EUR for 22.00 bank-c.test/USD")
    run("asset", "define", a, "--code", "EUR", "--decimals", "2")
    run("asset", "define", c, "--code", "EUR", "--decimals", "2")
    run(
        "deposit",
        a,
        "--user",
        "alice@bank-a.test",
        "--amount",
        "50.00",
        "--asset",
        "bank-a.test/EUR",
    )
    offer = run(
        "offer",
        *("create", "--user-key", alice, "--node", a),
        *("--sell", "20.00", "bank-a.test/EUR", "--buy", "22.00", "bank-c.test/USD"),
        *("--expires-in", "1h", "--min-fill", "5.00"),
    )
    say(f"     offer {offer['offer_id'][:16]}: bank-a reserved 20.00 EUR (+ fee budget), signed it")
    say("16. bob@bank-c.test searches his own bank's order book (gossip brought it over)")
    with trio.fail_after(30):
        while not await bank_c.call(
            "offers_search", sell="bank-a.test/EUR", buy="bank-c.test/USD", limit=5
        ):
            await trio.sleep(0.2)
    found: Any = run(
        "offers",
        *("search", "--node", c, "--sell", "bank-c.test/USD", "--buy", "bank-a.test/EUR"),
    )
    say(f"     {len(found)} offer: sell {found[0]['left_shown']} for {found[0]['buy']}")
    say("17. bob takes 10.00 of it: bank-a alone decides, legs go both ways through bank-b")
    taken = run(
        "offer",
        *("take", offer["offer_id"][:16], "--user-key", bob, "--node", c, "--amount", "10.00"),
    )
    say(
        f"     {taken['state']} in {taken['time_ms']} ms: bob got {taken['amount_shown']} "
        f"for {taken['pay_shown']}; the signed acceptance is his proof"
    )
    good = bool(taken["state"] == "settled")
    for who, node, key in (("alice", bank_a, alice), ("bob", bank_c, bob)):
        path = str(base / f"{who}-x.chain")
        run("chain", "pull", "--user-key", key, "--node", str(node.directory), "--out", path)
        report = run("chain", "verify", path, "--node", str(node.directory))
        balances = report["balances_in_smallest_units"]
        say(f"     {who}: {report['entries']} entries verify; {balances}")
        if who == "bob":
            good = good and balances.get("bank-c.test/EUR") == 1000
        else:
            good = good and balances.get("bank-a.test/USD") == usd_before + 1100
    say(
        "RESULT: the exchange settled on both chains."
        if good
        else "RESULT: the exchange did NOT settle on both chains."
    )
    return good


def _net(view: list[dict[str, Any]]) -> int:
    return sum(int(row["ours"]["current"]) for row in view)


def main() -> int:
    configure_logging("warning")
    base = Path("demo-run")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    return trio.run(demo, base)


if __name__ == "__main__":
    sys.exit(main())
