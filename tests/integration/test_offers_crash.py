"""Atomic exchanges across validators when a validator is SIGKILLed, over real processes.

Line bank-a.test (M, the maker alice's validator) - bank-b.test (a forwarder)
- bank-c.test (T, the taker carol's validator). Alice offers bank-a.test/EUR
for bank-c.test/USD; carol takes parts of it at bank-c. Leg A (carol's USD to
alice, c -> b -> a) and leg B (alice's EUR to carol, a -> b -> c) are bound to
one condition. A validator is SIGKILLed at a chosen point and restarted from
its log:

a) T, right after the take is submitted (before or around the acceptance);
b) M, with leg A waiting at the frozen forwarder, and with leg A held at M and
   leg B in flight;
c) the forwarder, holding leg B (not yet forwarded, or forwarded to T);
d) any of the three at seeded random moments during a batch of takes.

Takes are submitted through the API (``submit_take``, as ``offer take`` does
it, returning while the take is pending). After the crashes one more take
settles (in d, from the CLI): the mesh is whole again.

The timing is made, not hoped for: the forwarder is frozen (SIGSTOP) and let
run in slices of a few milliseconds until a node on either side shows the
wanted state; on a line nothing else can move while it is frozen.

Afterwards, when every node is quiet and every take has ended, each take
ended one way on both chains: settled (carol's hold settled and carol credited
EUR at bank-c; alice's carved hold settled and alice credited USD at bank-a)
or failed (both holds released, no credit anywhere); never one leg only. A
take still pending at the crash may end either way. Both chains verify
offline; each bank's outstanding money is its users' balances (and alice's
reservation), and its SNAP position is what left or came in over the mesh.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from node.ledger.files import verify_chain_file
from tests.integration.cli_support import ok
from tests.integration.offers_mesh import (
    customer,
    entries_by_payment,
    eventually,
    make_mesh,
    pull_chain,
    search,
    snap_nets,
    start,
    stop_all,
    submit_take,
    take_state,
    wait_route,
)
from tests.integration.payments_mesh import freeze, thaw
from tools.mesh import LocalNode

pytestmark = pytest.mark.slow

A, B, C = "bank-a.test", "bank-b.test", "bank-c.test"
EUR_A, USD_A, EUR_C, USD_C = f"{A}/EUR", f"{A}/USD", f"{C}/EUR", f"{C}/USD"
EUR, USD = "1E-2 EUR", "1E-2 USD"
DEPOSIT = 50_000  # alice's EUR at a, carol's USD at c
AMOUNT = 500  # 5.00 EUR a take
PAY = 550  # 5.50 USD for it (the offer: 100.00 EUR for 110.00 USD)
SLICE_S = 0.002  # how long the frozen forwarder runs at a time
ENDED = ("settled", "failed")


@dataclass
class Line:
    base: Path
    nodes: list[LocalNode]
    offer: dict[str, Any]

    @property
    def maker(self) -> LocalNode:
        return self.nodes[0]

    @property
    def forwarder(self) -> LocalNode:
        return self.nodes[1]

    @property
    def taker(self) -> LocalNode:
        return self.nodes[2]


@asynccontextmanager
async def open_line(base: Path) -> AsyncIterator[Line]:
    nodes = make_mesh(base, [A, B, C], [(0, 1), (1, 2)])
    maker, taker = nodes[0], nodes[2]
    try:
        await start(nodes)
        customer(base, maker, "alice", EUR="500.00")
        customer(base, taker, "carol", USD="500.00")
        offer = ok(
            *("offer", "create", "--user-key", str(base / "alice.key")),
            *("--node", str(maker.directory), "--expires-in", "1h"),
            *("--sell", "100.00", EUR_A, "--buy", "110.00", USD_C),
        )
        line = Line(base, nodes, offer)
        await eventually(lambda: search(taker, EUR_A, USD_C), 30, "the offer at bank-c")
        await routes(line)
        yield line
    finally:
        for node in nodes:
            if node.alive():
                thaw(node)
        stop_all(nodes)


async def routes(line: Line) -> None:
    """Both validators know a path for their leg (gossip is not persisted: a
    restarted node learns them again from its peers)."""
    await wait_route(line.taker, A, USD)
    await wait_route(line.maker, C, EUR)


async def take(line: Line) -> str:
    await routes(line)
    return await submit_take(line.base, line.taker, "carol", line.offer, AMOUNT)


# --- making the timing ------------------------------------------------------------------


async def pending(node: LocalNode, peer: str, unit: str) -> dict[str, int]:
    """``node``'s side of its ledger with ``peer`` in ``unit`` (zeros if untouched)."""
    for row in await node.call("balances", peer=peer):
        if row["unit"] == unit:
            ours: dict[str, int] = row["ours"]
            return ours
    return {"current": 0, "payable": 0, "receivable": 0}


Check = Callable[[], Awaitable[bool]]


async def step_until(frozen: LocalNode, check: Check, past: Check, what: str) -> bool:
    """Let the frozen node run a slice at a time until ``check`` (asked of the
    others) holds: True, the node frozen again. False if ``past``: one slice
    let the exchange go past that point (a loaded machine)."""
    with trio.move_on_after(20):
        while not await check():
            if await past():
                return False
            thaw(frozen)
            time.sleep(SLICE_S)  # blocking: the slice is as short as it can be
            freeze(frozen)
            await trio.sleep(0.03)  # the others act on what it let out
        return True
    raise AssertionError(f"not reached: {what}")


async def take_and_stop(line: Line, target: Check, what: str, take_ids: list[str]) -> None:
    """Take (the id appended to ``take_ids``) and let the frozen forwarder run
    until ``target`` holds, before M learns s (M has not claimed leg A). A
    take that went past it is let end and another tried. The forwarder is
    frozen when this returns."""
    for _ in range(3):
        claimed = (await pending(line.maker, B, USD))["current"]
        take_ids.append(await take(line))
        freeze(line.forwarder)

        async def past(claimed: int = claimed) -> bool:
            return (await pending(line.maker, B, USD))["current"] != claimed

        if await step_until(line.forwarder, target, past, what):
            return
        thaw(line.forwarder)
        await drain(line, take_ids[-1:])
    raise AssertionError(f"went past {what} three times")


async def restart(node: LocalNode) -> None:
    node.start("info")
    await node.wait_ready()


# --- the outcome ------------------------------------------------------------------------


async def drain(line: Line, take_ids: list[str]) -> None:
    """Every take ended at T and every node is quiet."""
    for take_id in take_ids:

        async def ended(take_id: str = take_id) -> bool:
            return await take_state(line.base, line.taker, "carol", take_id) in ENDED

        await eventually(ended, 90, f"take {take_id[:16]} ended")
    for node in line.nodes:
        await node.wait_quiet(60)


async def holds_ended(line: Line) -> None:
    """No hold of alice or carol is open (M may end its side after T)."""

    async def none_open() -> bool:
        alice = pull_chain(line.base, line.maker, "alice")[1]["held_in_smallest_units"]
        carol = pull_chain(line.base, line.taker, "carol")[1]["held_in_smallest_units"]
        return not any(alice.values()) and not any(carol.values())

    await eventually(none_open, 90, "every hold of alice and carol ended")


Entries = list[tuple[str, dict[str, int]]]


def outcome(carol: Entries, alice: Entries) -> str:
    """``settled`` or ``failed`` from one take's entries on both chains; anything
    else (one leg only, a hold left open) fails the test."""
    carol_kinds = sorted(kind for kind, _ in carol)
    alice_kinds = sorted(kind for kind, _ in alice)
    seen = f"carol {carol}, alice {alice}"
    if carol_kinds == ["credit", "settle", "take"]:
        assert alice_kinds == ["credit", "offer-fill", "settle"], f"one leg only: {seen}"
        assert dict(carol)["credit"] == {EUR_C: AMOUNT}, seen
        assert dict(alice)["credit"] == {USD_A: PAY}, seen
        carol_paid = -sum(sum(deltas.values()) for kind, deltas in carol if kind != "credit")
        assert PAY <= carol_paid <= PAY + PAY // 100, seen  # at most 1 % in fees
        return "settled"
    assert carol_kinds == ["release", "take"], f"neither settled nor released: {seen}"
    assert alice_kinds in ([], ["offer-fill", "release"]), f"one leg only: {seen}"
    assert sum(sum(deltas.values()) for _, deltas in carol) == 0, seen
    return "failed"


async def check_all_or_nothing(line: Line, take_ids: list[str]) -> dict[str, str]:
    """The takes on carol's chain are the ones made (none lost, none made up),
    each settled on both chains or on neither, as T says; the banks' sums
    agree. Returns the outcome by take id."""
    await drain(line, take_ids)
    await holds_ended(line)
    carol_chain, carol_report = pull_chain(line.base, line.taker, "carol")
    alice_chain, alice_report = pull_chain(line.base, line.maker, "alice")
    carol_entries = entries_by_payment(carol_chain)
    alice_entries = entries_by_payment(alice_chain)
    takes = [pid for pid, entries in carol_entries.items() if entries[0][0] == "take"]
    assert takes == take_ids, (takes, take_ids)
    assert set(alice_entries) <= set(takes), "a fill of a take carol never made"
    outcomes = {}
    for take_id in takes:
        outcomes[take_id] = outcome(carol_entries[take_id], alice_entries.get(take_id, []))
        state = await take_state(line.base, line.taker, "carol", take_id)
        assert state == outcomes[take_id], (take_id, state, outcomes[take_id])
    settled = sum(1 for state in outcomes.values() if state == "settled")
    carol = carol_report["balances_in_smallest_units"]
    alice = alice_report["balances_in_smallest_units"]
    assert carol.get(EUR_C, 0) == settled * AMOUNT
    assert alice.get(USD_A, 0) == settled * PAY
    reserved = verify_chain_file(alice_chain).reserved.get(EUR_A, 0)
    await check_sums(line, carol, alice, reserved)
    return outcomes


async def check_sums(
    line: Line, carol: dict[str, int], alice: dict[str, int], reserved: int
) -> None:
    """What each bank has outstanding is its customer's balance (alice's offer
    reservation too); what it paid out or took in over the mesh is its SNAP
    position; the forwarder is not out of pocket."""
    outstanding = {}
    for node in (line.maker, line.taker):
        for row in await node.call("assets"):
            outstanding[row["uai"]] = row["outstanding"]
    assert outstanding[USD_C] == carol[USD_C]
    assert outstanding[EUR_C] == carol.get(EUR_C, 0)
    assert outstanding[USD_A] == alice.get(USD_A, 0)
    assert outstanding[EUR_A] == alice[EUR_A] + reserved
    nets = await snap_nets(line.nodes)
    assert nets[C].get(USD, 0) == outstanding[USD_C] - DEPOSIT
    assert nets[C].get(EUR, 0) == outstanding[EUR_C]
    assert nets[A].get(USD, 0) == outstanding[USD_A]
    assert nets[A].get(EUR, 0) == outstanding[EUR_A] - DEPOSIT
    for unit in (USD, EUR):
        assert nets[B].get(unit, 0) >= 0, nets
        assert sum(net.get(unit, 0) for net in nets.values()) == 0, nets


async def clean_take(line: Line) -> str:
    """After the crashes a take without one settles: the mesh is whole again."""
    take_id = await take(line)

    async def settled() -> bool:
        return await take_state(line.base, line.taker, "carol", take_id) == "settled"

    await eventually(settled, 30, "a take after the restarts settled")
    return take_id


# --- the crash points -------------------------------------------------------------------


async def test_taker_validator_killed_right_after_the_take(tmp_path: Path) -> None:
    """a) T dies as soon as it has the take, or a little later (around the acceptance)."""
    async with open_line(tmp_path) as line:
        taker = line.taker
        take_ids = []
        for delay_s in (0.0, 0.02, 0.1):
            take_ids.append(await take(line))
            await trio.sleep(delay_s)
            taker.kill()
            await restart(taker)
        take_ids.append(await clean_take(line))
        await check_all_or_nothing(line, take_ids)


async def test_maker_validator_killed_with_a_leg_in_flight(tmp_path: Path) -> None:
    """b) M dies with leg A waiting at the frozen forwarder; then, on a second
    take, M dies holding leg A with leg B proposed (M has not learned s)."""
    async with open_line(tmp_path) as line:
        maker, forwarder = line.maker, line.forwarder
        take_ids = [await take(line)]
        freeze(forwarder)

        async def leg_a_started() -> bool:
            state = await take_state(line.base, line.taker, "carol", take_ids[-1])
            return state.startswith("accepted")

        async def never() -> bool:
            return False  # leg A at M already is a crash point too

        await step_until(forwarder, leg_a_started, never, "the acceptance at T")
        maker.kill()
        thaw(forwarder)
        await restart(maker)
        await drain(line, take_ids)

        async def leg_b_proposed() -> bool:
            leg_a = await pending(maker, B, USD)
            leg_b = await pending(maker, B, EUR)
            return leg_a["receivable"] > 0 and leg_b["payable"] > 0

        await take_and_stop(line, leg_b_proposed, "leg A held at M, leg B proposed", take_ids)
        maker.kill()
        thaw(forwarder)
        await restart(maker)
        take_ids.append(await clean_take(line))
        await check_all_or_nothing(line, take_ids)


async def test_forwarder_killed_in_the_middle_of_leg_b(tmp_path: Path) -> None:
    """c) The forwarder dies holding leg B: first before it forwarded it to T,
    then after T had it (and may have sent s back); M has not learned s."""
    async with open_line(tmp_path) as line:
        maker, forwarder, taker = line.maker, line.forwarder, line.taker
        take_ids: list[str] = []
        for forwarded in (False, True):
            at_taker = await pending(taker, B, EUR)

            async def leg_b_there(forwarded: bool = forwarded, before: Any = at_taker) -> bool:
                if (await pending(maker, B, EUR))["payable"] == 0:
                    return False
                return not forwarded or await pending(taker, B, EUR) != before

            await take_and_stop(
                line, leg_b_there, f"leg B at the forwarder ({forwarded=})", take_ids
            )
            assert (await pending(maker, B, EUR))["payable"] > 0  # M has not learned s
            forwarder.kill()
            await trio.sleep(0.5)
            await restart(forwarder)
            await drain(line, take_ids)
        take_ids.append(await clean_take(line))
        await check_all_or_nothing(line, take_ids)


def cli_take(line: Line) -> dict[str, Any]:
    """``ledgermesh offer take`` (it waits for the outcome)."""
    result: dict[str, Any] = ok(
        *("offer", "take", line.offer["offer_id"], "--user-key", str(line.base / "carol.key")),
        *("--node", str(line.taker.directory), "--amount", "5.00", "--wait", "30"),
    )
    return result


async def offer_at_taker(line: Line) -> bool:
    """T knows the offer (the CLI needs it; a restarted T learns it again)."""
    return bool(await search(line.taker, EUR_A, USD_C))


async def test_random_kills_during_a_batch_of_takes(tmp_path: Path) -> None:
    """d) Seeded: two takes at a time, then one of the three validators is
    killed at a random moment of their exchanges and restarted; three rounds.
    Then a take from the CLI settles."""
    seed = int(os.environ.get("LEDGERMESH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"seed {seed} (replay: LEDGERMESH_SEED={seed})")
    async with open_line(tmp_path) as line:
        take_ids = []
        for _ in range(3):
            take_ids += [await take(line), await take(line)]
            await trio.sleep(rng.uniform(0.0, 0.25))
            victim = rng.choice(line.nodes)
            victim.kill()
            await trio.sleep(rng.uniform(0.0, 0.3))
            await restart(victim)
        await drain(line, take_ids)
        await eventually(lambda: offer_at_taker(line), 30, "the offer at bank-c")
        taken = await trio.to_thread.run_sync(cli_take, line)
        assert taken["state"] == "settled", taken
        take_ids.append(taken["take_id"])
        outcomes = await check_all_or_nothing(line, take_ids)
        assert list(outcomes.values()).count("settled") >= 2, (seed, outcomes)
