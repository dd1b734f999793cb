"""The real chaos run: node processes over real QUIC, through fault-injecting relays.

Theory of operation:
- ``mesh generate`` writes the node directories; every peer address points at
  a ``FaultRelay`` of this process that forwards to the peer's real port, one
  relay per dialling direction of each link. The nodes are real ``ledgermesh
  run`` processes (``tools.mesh.LocalNode``).
- For ``duration_s`` three seeded tasks run at once: the workload (transfers
  through the operator API at ``rate`` per second, some hashlocked against an
  invoice of the payee), the killer (SIGKILL a random node every
  ``kill_every_s``, restart it after a short downtime) and the cutter (every
  CHAOS_CUT_EVERY_S each link is cut with probability ``cut_links`` for a few
  seconds). The relays lose, duplicate and delay datagrams meanwhile.
- Then faults stop: links heal, loss ends, every node runs. The run waits
  until every node is connected and quiet (the time this takes is the
  convergence time after the last fault), and ``chaos_check`` asks every node
  for its view and checks the simulator's invariants on it.
- The seed drives every choice of this process (which node, which link, which
  datagram); the processes' own timing is not reproducible, so a chaos run is
  repeated, not replayed.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.api.protocol import ApiError
from simulations.chaos_check import Acknowledged, CheckResult, call_all, check_logs, check_views
from simulations.consoles import Consoles
from simulations.errors import SimulationError
from simulations.limits import (
    CHAOS_CONVERGE_TIMEOUT_S,
    CHAOS_CUT_EVERY_S,
    CHAOS_CUT_S_RANGE,
    CHAOS_DOWN_S_RANGE,
    CHAOS_EXPIRY_S,
    CHAOS_IN_FLIGHT_MAX,
    CHAOS_READY_TIMEOUT_S,
)
from simulations.meshgen import Mesh, generate_mesh, parse_limits
from simulations.progress import Progress
from simulations.relay import FaultRelay, LinkFaults
from simulations.specs import TopologySpec
from simulations.topology import Link, build_links
from tools.mesh import LocalNode, free_udp_ports

CHAOS_UNIT = "1E-2 USD"
CHAOS_LIMITS = ("USD=100000000.00",)
CONDITIONAL_SHARE = 0.2
AMOUNT_MAX = 10_000
POLL_S = 0.5


@dataclass(frozen=True)
class ChaosOptions:
    nodes: int
    topology: TopologySpec
    duration_s: float
    kill_every_s: float
    cut_links: float
    loss: float
    duplicate: float
    delay_ms: tuple[int, int]
    seed: int
    rate: float
    directory: Path | None = None


@dataclass
class ChaosCounters:
    attempted: int = 0
    acknowledged: int = 0
    refused: int = 0  # an error answer from a running node
    unreachable: int = 0  # the node was down or did not answer in time
    skipped: int = 0  # not offered: CHAOS_IN_FLIGHT_MAX requests were already waiting
    kills: int = 0
    cuts: int = 0


@dataclass
class ChaosEvent:
    time_s: float
    kind: str  # "kill", "restart", "cut", "heal", "faults-stop", "converged"
    detail: str


@dataclass
class _Run:
    options: ChaosOptions
    mesh: Mesh
    nodes: list[LocalNode]
    relays: list[FaultRelay]
    link_faults: dict[Link, LinkFaults]
    rng: random.Random
    started_s: float
    counters: ChaosCounters = field(default_factory=ChaosCounters)
    acknowledged: list[Acknowledged] = field(default_factory=list)
    events: list[ChaosEvent] = field(default_factory=list)
    ack_times_s: list[float] = field(default_factory=list)
    stopping: trio.Event = field(default_factory=trio.Event)
    consoles: Consoles | None = None

    async def call(self, index: int, op: str, **arguments: Any) -> Any:
        assert self.consoles is not None
        return await self.consoles.call(index, op, **arguments)

    def now_s(self) -> float:
        return trio.current_time() - self.started_s

    def note(self, kind: str, detail: str) -> None:
        self.events.append(ChaosEvent(round(self.now_s(), 3), kind, detail))


# --- setting up ---------------------------------------------------------------------------


async def _bind_relays(
    options: ChaosOptions, links: list[Link], listen_ports: list[int]
) -> tuple[list[FaultRelay], dict[Link, LinkFaults], dict[tuple[int, int], int]]:
    """One relay per dialling direction of each link; returns where node i dials node j."""
    relays, faults, dial_port = [], {}, {}
    for a, b in links:
        shared = LinkFaults(options.loss, options.duplicate, options.delay_ms)
        faults[(a, b)] = shared
        for dialler, target in ((a, b), (b, a)):
            relay = FaultRelay(
                f"{dialler}->{target}",
                ("127.0.0.1", listen_ports[target]),
                shared,
                random.Random(f"ledgermesh-chaos/{options.seed}/relay/{dialler}-{target}"),
            )
            dial_port[(dialler, target)] = await relay.bind()
            relays.append(relay)
    return relays, faults, dial_port


@asynccontextmanager
async def _open_run(options: ChaosOptions, base: Path) -> AsyncIterator[_Run]:
    links = build_links(
        options.topology, options.nodes, random.Random(f"ledgermesh-mesh/{options.seed}")
    )
    listen_ports = free_udp_ports(options.nodes)
    relays, link_faults, dial_port = await _bind_relays(options, links, listen_ports)
    mesh = generate_mesh(
        base,
        options.nodes,
        options.topology,
        seed=options.seed,
        listen=[("127.0.0.1", port) for port in listen_ports],
        limits=parse_limits(list(CHAOS_LIMITS)),
        peer_address=lambda node, peer: ("127.0.0.1", dial_port[(node, peer)]),
    )
    assert mesh.links == links
    nodes = [LocalNode(node.name, node.directory, node.listen[1]) for node in mesh.nodes]
    async with trio.open_nursery() as nursery:
        for relay in relays:
            await nursery.start(relay.run)
        consoles = Consoles(nodes, nursery)
        try:
            for node in nodes:
                node.start("warning")
            run = _Run(
                options,
                mesh,
                nodes,
                relays,
                link_faults,
                random.Random(f"ledgermesh-chaos/{options.seed}"),
                trio.current_time(),
                consoles=consoles,
            )
            yield run
        finally:
            consoles.close_all()
            for node in nodes:
                node.stop()
            nursery.cancel_scope.cancel()


# --- the fault phase ------------------------------------------------------------------------


async def _workload(run: _Run) -> None:
    limiter = trio.CapacityLimiter(CHAOS_IN_FLIGHT_MAX)
    links = run.mesh.links
    async with trio.open_nursery() as nursery:
        while not run.stopping.is_set():
            with trio.move_on_after(run.rng.expovariate(run.options.rate)):
                await run.stopping.wait()
            if run.stopping.is_set() or not links:
                break
            a, b = run.rng.choice(links)
            payer, payee = (a, b) if run.rng.random() < 0.5 else (b, a)
            amount = run.rng.randint(1, AMOUNT_MAX)
            conditional = run.rng.random() < CONDITIONAL_SHARE
            if limiter.available_tokens == 0:
                run.counters.skipped += 1  # every console busy (nodes down): no backlog
                continue
            run.counters.attempted += 1
            nursery.start_soon(_transfer, run, limiter, payer, payee, amount, conditional)


async def _transfer(
    run: _Run, limiter: trio.CapacityLimiter, payer: int, payee: int, amount: int, conditional: bool
) -> None:
    nodes = run.nodes
    async with limiter:
        try:
            arguments: dict[str, Any] = {
                "peer": nodes[payee].name,
                "amount": amount,
                "unit": CHAOS_UNIT,
            }
            if conditional:
                invoice = await run.call(payee, "invoice", amount=amount, unit=CHAOS_UNIT)
                arguments["condition"] = invoice["condition"]
                # The nodes' clocks are the wall clock: expiries are wall-clock times.
                arguments["expires_at_ms"] = int((time.time() + CHAOS_EXPIRY_S) * 1000)
            sent = await run.call(payer, "pay", **arguments)
        except ApiError as error:
            if error.code in ("unreachable", "timeout"):
                run.counters.unreachable += 1
            else:
                run.counters.refused += 1
            return
    run.counters.acknowledged += 1
    run.ack_times_s.append(round(run.now_s(), 3))
    run.acknowledged.append(Acknowledged(payer, payee, sent["msg_id"], amount))


async def _killer(run: _Run) -> None:
    period = run.options.kill_every_s
    if period <= 0:
        return
    while True:
        with trio.move_on_after(run.rng.uniform(0.7 * period, 1.3 * period)):
            await run.stopping.wait()
        if run.stopping.is_set():
            return
        victim = run.rng.choice([node for node in run.nodes if node.alive()] or run.nodes)
        if not victim.alive():
            continue
        victim.kill()
        run.counters.kills += 1
        run.note("kill", victim.name)
        with trio.move_on_after(run.rng.uniform(*CHAOS_DOWN_S_RANGE)):
            await run.stopping.wait()  # faults stop: restart at once
        victim.start("warning")
        run.note("restart", victim.name)


async def _cutter(run: _Run) -> None:
    if run.options.cut_links <= 0:
        return
    async with trio.open_nursery() as nursery:
        while True:
            with trio.move_on_after(CHAOS_CUT_EVERY_S):
                await run.stopping.wait()
            if run.stopping.is_set():
                break
            for link, faults in sorted(run.link_faults.items()):
                if not faults.cut and run.rng.random() < run.options.cut_links:
                    faults.cut = True
                    run.counters.cuts += 1
                    run.note("cut", _link_name(run, link))
                    nursery.start_soon(_heal_later, run, link, run.rng.uniform(*CHAOS_CUT_S_RANGE))


async def _heal_later(run: _Run, link: Link, after_s: float) -> None:
    with trio.move_on_after(after_s):
        await run.stopping.wait()
    if run.link_faults[link].cut:
        run.link_faults[link].cut = False
        run.note("heal", _link_name(run, link))


def _link_name(run: _Run, link: Link) -> str:
    return f"{run.nodes[link[0]].name}<->{run.nodes[link[1]].name}"


def _stop_faults(run: _Run) -> None:
    """Heal every link and end loss and duplication; the killer restarts its victim."""
    run.stopping.set()
    for faults in run.link_faults.values():
        faults.cut = False
        faults.loss = 0.0
        faults.duplicate = 0.0
    run.note("faults-stop", "")


# --- convergence ------------------------------------------------------------------------------


def _settled(status: dict[str, Any] | str | None) -> bool:
    return (
        isinstance(status, dict)
        and status["peers_connected"] == status["peers"]
        and status["pending"] == 0
        and status["unacked"] == 0
    )


async def _converge(run: _Run, stopped_s: float) -> tuple[float | None, list[Any]]:
    """Seconds from the end of the faults until every node is connected and quiet."""
    statuses: list[Any] = []
    with trio.move_on_after(CHAOS_CONVERGE_TIMEOUT_S):
        while True:
            statuses = await call_all(run.call, len(run.nodes), "status")
            if all(_settled(status) for status in statuses):
                seconds = run.now_s() - stopped_s
                run.note("converged", f"{seconds:.1f}s after the last fault")
                return seconds, statuses
            await trio.sleep(POLL_S)
    return None, statuses


async def _wait_all_ready(run: _Run) -> None:
    try:
        async with trio.open_nursery() as nursery:
            for node in run.nodes:
                nursery.start_soon(node.wait_ready, CHAOS_READY_TIMEOUT_S)
    except (trio.TooSlowError, RuntimeError) as error:
        raise SimulationError(f"the mesh did not come up: {error}") from None


# --- the whole run ------------------------------------------------------------------------------


async def _show_progress(run: _Run) -> None:
    bar = Progress("chaos", run.options.duration_s)
    while not run.stopping.is_set():
        counters = run.counters
        bar.update(
            run.now_s(),
            f"{counters.acknowledged} acknowledged, {counters.kills} kills, {counters.cuts} cuts,",
        )
        with trio.move_on_after(1.0):
            await run.stopping.wait()
    bar.finish()


async def run_chaos(options: ChaosOptions) -> dict[str, Any]:
    """Run the chaos scenario; returns the summary (with any violations found)."""
    base = options.directory or Path(tempfile.mkdtemp(prefix="ledgermesh-chaos-"))
    async with _open_run(options, base) as run:
        await _wait_all_ready(run)
        run.started_s = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_workload, run)
            nursery.start_soon(_killer, run)
            nursery.start_soon(_cutter, run)
            nursery.start_soon(_show_progress, run)
            await trio.sleep(options.duration_s)
            _stop_faults(run)
            stopped_s = run.now_s()
        for node in run.nodes:
            assert node.alive(), f"{node.name} was left down"
        converge_s, statuses = await _converge(run, stopped_s)
        result = await check_views(run.call, run.nodes, run.mesh.links, run.acknowledged)
        if converge_s is None:
            stuck = [run.nodes[i].name for i, status in enumerate(statuses) if not _settled(status)]
            result.violations.insert(
                0,
                f"resolution: {CHAOS_CONVERGE_TIMEOUT_S:g}s after the faults stopped, "
                f"not connected and quiet: {', '.join(stuck)}",
            )
    result.violations += check_logs(run.nodes)
    summary = _summary(run, converge_s, result, base)
    if not result.violations and options.directory is None:
        shutil.rmtree(base, ignore_errors=True)
        summary["directory"] = None
    return summary


def _summary(
    run: _Run, converge_s: float | None, result: CheckResult, base: Path
) -> dict[str, Any]:
    counters = run.counters
    relays = run.relays
    return {
        "seed": run.options.seed,
        "nodes": run.options.nodes,
        "topology": str(run.options.topology),
        "duration_s": run.options.duration_s,
        "transfers_attempted": counters.attempted,
        "transfers_acknowledged": counters.acknowledged,
        "transfers_settled": result.settled,
        "transfers_accepted": result.accepted,
        "transfers_rejected": result.rejected,
        "transfers_refused": counters.refused,
        "transfers_unreachable": counters.unreachable,
        "transfers_skipped": counters.skipped,
        "kills": counters.kills,
        "cuts": counters.cuts,
        "datagrams_forwarded": sum(relay.counters.forwarded for relay in relays),
        "datagrams_lost": sum(relay.counters.lost for relay in relays),
        "datagrams_duplicated": sum(relay.counters.duplicated for relay in relays),
        "datagrams_cut": sum(relay.counters.cut for relay in relays),
        "converge_s_after_last_fault": round(converge_s, 2) if converge_s is not None else None,
        "violations": result.violations,
        "directory": str(base),
        "events": [vars(event) for event in run.events],
        "ack_times_s": run.ack_times_s,
    }
