"""The deterministic simulator: every node's real engine and log, one process, simulated time.

Theory of operation:
- A discrete-event loop over one heap of ``(time_ms, sequence, handler, argument)``.
  The sequence number breaks ties in the order events were scheduled, so
  nothing depends on hashing, threads or the wall clock; every random draw
  comes from RNGs seeded from the run's seed (one stream per concern: topology,
  faults, network, workload, and one per node). Same seed, same code: same
  trace, byte for byte (``Trace.digest``).
- A node is driven like ``NodeRuntime`` drives it: events queue in its inbox; a
  pass decides them all (and the clock's tick) with ``NodeEngine.decide``; if
  records were appended the node is busy for SYNC_LATENCY_MS, then
  ``engine.sync()`` and only then ``engine.outgoing`` lets frames and operator
  answers out. Events that arrive meanwhile wait for the next pass (group
  commit). Every SNAPSHOT_EVERY_RECORDS_RANGE records it writes a snapshot.
  The clock ticks every node every SIMULATED_TICK_INTERVAL_MS, as the runtime's.
- Faults come from the seeded ``FaultPlan``: per-payload loss, duplication and
  delay (hence reordering) on every link; partitions (one link, a split both
  ways, a split one way) that heal; crashes now, inside the next fsync (torn
  writes) or inside the next snapshot write. A crashed node loses its memory
  and whatever its disk had not synced; it restarts from its log.
- At ``duration_ms`` faults stop: partitions heal, crashed nodes restart, loss
  and duplication end, the workload stops. The run then drains until every
  node is quiet, or fails the resolution invariant after RESOLVE_BOUND_MS.
- The first invariant violation stops the run; the result carries a report
  with the seed, the simulated time, the nodes, the last events of the trace
  and the command that replays the run.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from typing import Any, NoReturn

from node.config import NodeConfig, PeerConfig
from node.engine import Decisions
from node.logs import configure_logging
from node.net.base import PeerDown, PeerStatus, PeerUp, Received
from node.signatures import remembering_own_signatures
from node.storage.check import CorruptLogError, CorruptSnapshotError
from simulations.books import UNKNOWN, Books
from simulations.convergence import Convergences
from simulations.customers import node_units
from simulations.faults import Crash, FaultPlan, Partition, plan_faults
from simulations.invariants import check_conservation, check_link, unresolved
from simulations.limits import (
    CHECK_INTERVAL_MS,
    CONVERGENCE_POLL_MS,
    CRASH_ARMED_MS_MAX,
    CREDIT_LIMIT_RANGE,
    DRAIN_POLL_MS,
    EPOCH_MS,
    OFFERS_RESOLVE_BOUND_MS,
    OPERATOR_LATENCY_MS,
    OWN_SIGNATURES_PAYLOAD_BYTES_MAX,
    OWN_SIGNATURES_REMEMBERED,
    REPORT_POINTS_MAX,
    REPORT_SAMPLE_MS_MIN,
    RESOLVE_BOUND_MS,
    SIMULATED_TICK_INTERVAL_MS,
    SNAPSHOT_LATENCY_MS,
    SYNC_LATENCY_MS,
    UNITS,
)
from simulations.metrics import FaultSpan, Metrics, Sample
from simulations.network import SimNetwork
from simulations.offers_sim import OffersRun
from simulations.options import OPERATOR_KEY, SimulationOptions, SimulationResult, node_key
from simulations.simnode import SimNode
from simulations.specs import OffersSpec
from simulations.topology import Link, build_links, neighbours
from simulations.trace import Trace, payload_tag
from simulations.violations import InvariantViolation, Violation, ViolationReport
from simulations.workload import Acknowledged, OperatorRequest, Workload

Handler = Callable[[Any], None]
PROGRESS_STEPS = 200  # a run reports its progress this many times


class Simulation:
    def __init__(self, options: SimulationOptions) -> None:
        self.options = options
        seed = options.seed
        stream = f"ledgermesh-sim/{seed}"
        self.links = build_links(
            options.topology, options.nodes, random.Random(f"{stream}/topology")
        )
        self.plan: FaultPlan = plan_faults(
            options.rates,
            options.nodes,
            self.links,
            options.duration_ms,
            random.Random(f"{stream}/faults"),
        )
        self.names = [f"node-{index:02d}.sim" for index in range(options.nodes)]
        self.keys = [node_key(index).public_key for index in range(options.nodes)]
        self.index_of_key = {key: index for index, key in enumerate(self.keys)}
        self.operator_index = options.nodes
        self.operator_key = OPERATOR_KEY.public_key
        self.network = SimNetwork(
            options.nodes, self.links, options.rates, random.Random(f"{stream}/network")
        )
        spec = options.workload
        transfers = spec.transfer_spec if isinstance(spec, OffersSpec) else spec
        self.workload = Workload(
            transfers, self.links, self.names, random.Random(f"{stream}/workload")
        )
        self.offers = (
            OffersRun(self, spec, random.Random(f"{stream}/offers"))
            if isinstance(spec, OffersSpec)
            else None
        )
        self.client_keys = {OPERATOR_KEY.public_key}
        if self.offers is not None:
            self.client_keys |= set(self.offers.workload.keys)
        self.nodes = self._make_nodes(random.Random(f"{stream}/limits"), stream)
        self.trace = Trace(self.names)
        self.books = Books(self.names, self.keys)
        self.metrics = Metrics()
        self.heap: list[tuple[int, int, Handler, Any]] = []
        self.sequence = itertools.count()
        self.now_ms = 0
        self.faults_stopped = False
        self.convergences = Convergences(self.books, self.metrics)
        self.partition_spans: dict[int, FaultSpan] = {}
        self.crash_spans: dict[int, FaultSpan] = {}
        self.counts = {
            "partitions": 0,
            "crashes": 0,
            "crashes_in_sync": 0,
            "crashes_in_snapshot": 0,
            "crashes_skipped": 0,
            "restarts": 0,
            "torn_bytes": 0,
            "link_checks": 0,
        }

    # --- building the mesh -----------------------------------------------------------

    def _make_nodes(self, limits_rng: random.Random, stream: str) -> list[SimNode]:
        adjacency = neighbours(self.links, self.options.nodes)
        nodes = []
        for index, name in enumerate(self.names):
            peers = tuple(
                PeerConfig(
                    self.names[peer],
                    self.keys[peer],
                    None,
                    {unit: limits_rng.randint(*CREDIT_LIMIT_RANGE) for unit in UNITS},
                )
                for peer in adjacency[index]
            )
            config = NodeConfig(
                name,
                ("sim", index),
                self.keys[index],
                OPERATOR_KEY.public_key,
                peers,
                units={} if self.offers is None else node_units(name),
            )
            node_rng = random.Random(f"{stream}/node/{index}")
            nodes.append(SimNode(index, config, node_key(index), adjacency[index], node_rng))
        return nodes

    # --- the loop ----------------------------------------------------------------------

    def at(self, time_ms: int, handler: Handler, argument: Any = None) -> None:
        heapq.heappush(self.heap, (time_ms, next(self.sequence), handler, argument))

    def _run_until(self, until_ms: int) -> None:
        heap = self.heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until_ms:
            time_ms, _, handler, argument = pop(heap)
            self.now_ms = time_ms
            handler(argument)
        self.now_ms = max(self.now_ms, until_ms)

    def run(self, progress: Callable[[int], None] | None = None) -> SimulationResult:
        """Run to the end, or to the first violation. ``progress`` gets the simulated ms now
        and then (it never affects the run)."""
        # Receivers check the signatures their senders made in this process (see the limit).
        with remembering_own_signatures(
            OWN_SIGNATURES_REMEMBERED, OWN_SIGNATURES_PAYLOAD_BYTES_MAX
        ):
            return self._run(progress)

    def _run(self, progress: Callable[[int], None] | None) -> SimulationResult:
        started = time.perf_counter()
        violation: ViolationReport | None = None
        try:
            self._schedule_start()
            duration_ms = self.options.duration_ms
            step_ms = max(1_000, duration_ms // PROGRESS_STEPS)
            while self.now_ms < duration_ms:
                self._run_until(min(duration_ms, self.now_ms + step_ms))
                if progress is not None:
                    progress(self.now_ms)
            self._drain()
            self._final_checks()
        except InvariantViolation as error:
            violation = ViolationReport(
                error.violation,
                self.options.seed,
                self.trace.tail(),
                self.options.replay_command(),
            )
        self._sample()
        wall_s = time.perf_counter() - started
        return SimulationResult(
            options=self.options,
            digest=self.trace.digest(),
            events=self.trace.events,
            simulated_ms=self.now_ms,
            wall_s=wall_s,
            counters=self._counters(),
            metrics=self.metrics,
            violation=violation,
        )

    def _schedule_start(self) -> None:
        for node in self.nodes:
            self.at(0, self._start_node, node.index)
        for index, partition in enumerate(self.plan.partitions):
            self.at(partition.start_ms, self._partition_starts, index)
        for crash in self.plan.crashes:
            self.at(crash.at_ms, self._crash_planned, crash)
        arrival = self.workload.next_arrival_in_ms()
        if arrival is not None:
            self.at(arrival, self._arrival)
        self.at(SIMULATED_TICK_INTERVAL_MS, self._tick)
        self.at(CHECK_INTERVAL_MS, self._check_links)
        self.at(CONVERGENCE_POLL_MS, self._poll_convergence)
        self.at(0, self._sample_event)
        self.at(self.options.duration_ms, self._stop_faults)
        if self.offers is not None:
            self.offers.schedule_start()

    @property
    def sample_interval_ms(self) -> int:
        return max(REPORT_SAMPLE_MS_MIN, self.options.duration_ms // REPORT_POINTS_MAX)

    # --- nodes: passes, syncs, snapshots ----------------------------------------------------

    def _start_node(self, index: int) -> None:
        node = self.nodes[index]
        previous = node.log
        durable_before = previous.durable_lsn if previous is not None else 0
        unsynced = previous.unsynced if previous is not None else []
        try:
            next_lsn, torn_bytes = node.start(
                EPOCH_MS + self.now_ms,
                lambda: self._statuses(index),
                lambda: self.now_ms / 1000,
            )
        except (CorruptLogError, CorruptSnapshotError) as error:
            self._violation("recovery", f"{node.name} cannot recover its log: {error}", index)
        self.trace.add(self.now_ms, "start", index, -1, f"lsn={next_lsn} torn={torn_bytes}")
        self.counts["torn_bytes"] += torn_bytes
        if next_lsn < node.sent_lsn:
            self._violation(
                "durability",
                f"{node.name} let messages out based on {node.sent_lsn} log records, "
                f"but only {next_lsn} survived its crash",
                index,
            )
        survivors = unsynced[: max(0, next_lsn - durable_before)]
        for payload in survivors:
            self.books.apply(index, payload, self.now_ms)
        node.sent_lsn = next_lsn
        self._set_alive(index, True)
        if self.offers is not None:
            self.offers.node_started(index)

    def _statuses(self, index: int) -> list[PeerStatus]:
        return self.network.statuses(index, self.nodes[index].peers, self.keys)

    def _wake(self, node: SimNode) -> None:
        if node.alive and not node.busy and not node.pass_scheduled:
            node.pass_scheduled = True
            self.at(self.now_ms, self._pass, node)

    def _pass(self, node: SimNode) -> None:
        node.pass_scheduled = False
        if not node.alive or node.busy:
            return
        events, node.inbox = node.inbox, []
        tick = node.tick_due
        node.tick_due = False
        if not events and not tick:
            return
        engine = node.engine
        assert engine is not None
        decisions = engine.decide(events, EPOCH_MS + self.now_ms, tick=tick)
        node.passes += 1
        self.trace.add(
            self.now_ms, "pass", node.index, -1, f"{len(events)}{'+tick' if tick else ''}"
        )
        if engine.sync_due:
            node.busy = True
            node.held = decisions
            self.at(self.now_ms + SYNC_LATENCY_MS, self._sync_done, (node, node.life))
        else:
            self._release(node, decisions)

    def _sync_done(self, argument: tuple[SimNode, int]) -> None:
        node, life = argument
        if not node.alive or node.life != life:
            return
        if node.armed_crash == "in-sync":
            self._crash(node, "sync")
            return
        engine, log = node.engine, node.log
        assert engine is not None and log is not None
        engine.sync()
        node.syncs += 1
        self.trace.add(self.now_ms, "sync", node.index, -1, log.durable_lsn)
        for payload in log.unsynced:
            self.books.apply(node.index, payload, self.now_ms)
        log.unsynced.clear()
        decisions, node.held = node.held, None
        assert decisions is not None
        self._release(node, decisions)
        if engine.records_since_snapshot >= node.snapshot_every_records:
            self.at(self.now_ms + SNAPSHOT_LATENCY_MS, self._snapshot_done, (node, life))
            return
        node.busy = False
        if node.inbox or node.tick_due:
            self._wake(node)

    def _snapshot_done(self, argument: tuple[SimNode, int]) -> None:
        node, life = argument
        if not node.alive or node.life != life:
            return
        if node.armed_crash == "in-snapshot":
            self._crash(node, "snapshot")
            return
        assert node.engine is not None
        node.engine.write_snapshot()
        node.snapshots += 1
        self.trace.add(self.now_ms, "snapshot", node.index, -1, node.engine.snapshot_lsn)
        node.busy = False
        if node.inbox or node.tick_due:
            self._wake(node)

    def _release(self, node: SimNode, decisions: Decisions) -> None:
        engine, log = node.engine, node.log
        assert engine is not None and log is not None
        outgoing = engine.outgoing(decisions)
        if not outgoing:
            return
        node.sent_lsn = log.next_lsn
        source = node.index
        for key, payload in outgoing:
            if key in self.client_keys:
                self.at(self.now_ms + OPERATOR_LATENCY_MS, self._answer, payload)
                continue
            target = self.index_of_key[key]
            generation, delays = self.network.route(source, target)
            fate = delays or (
                "lost" if self.network.is_up(SimNetwork.link_of(source, target)) else "refused"
            )
            self.trace.add(self.now_ms, "send", source, target, f"{payload_tag(payload)} {fate}")
            for delay_ms in delays:
                self.at(
                    self.now_ms + delay_ms, self._deliver, (source, target, generation, payload)
                )

    def _deliver(self, argument: tuple[int, int, int, bytes]) -> None:
        source, target, generation, payload = argument
        if not self.network.arrives(source, target, generation):
            self.trace.add(self.now_ms, "lost-in-flight", source, target, payload_tag(payload))
            return
        node = self.nodes[target]
        node.inbox.append(Received(self.keys[source], payload))
        self._wake(node)

    def _tick(self, _: None) -> None:
        """The nodes' clock tick, every SIMULATED_TICK_INTERVAL_MS, as the runtime's."""
        for node in self.nodes:
            if node.alive:
                node.tick_due = True
                self._wake(node)
        self.at(self.now_ms + SIMULATED_TICK_INTERVAL_MS, self._tick)

    # --- links ----------------------------------------------------------------------------

    def _set_links(self, links: list[Link], change: Callable[[], None]) -> None:
        """Apply ``change`` and tell both ends of every link that went up or down."""
        before = {link: self.network.is_up(link) for link in links}
        change()
        for link in links:
            up = self.network.is_up(link)
            if up == before[link]:
                continue
            if not up:
                self.network.close(link)
            else:
                self.network.up_since_ms[link] = self.now_ms
                self.network.reconnects[link] += 1
            self.trace.add(self.now_ms, "link-up" if up else "link-down", link[0], link[1], "")
            for end, other in (link, (link[1], link[0])):
                node = self.nodes[end]
                if node.alive:
                    event = PeerUp(self.keys[other]) if up else PeerDown(self.keys[other])
                    node.inbox.append(event)
                    self._wake(node)

    def _node_links(self, index: int) -> list[Link]:
        return [SimNetwork.link_of(index, peer) for peer in self.nodes[index].peers]

    def _set_alive(self, index: int, alive: bool) -> None:
        def change() -> None:
            self.network.alive[index] = alive

        self._set_links(self._node_links(index), change)

    def _partition_starts(self, index: int) -> None:
        if self.faults_stopped:
            return
        partition = self.plan.partitions[index]
        self.counts["partitions"] += 1
        self._hold_partition(partition, +1)
        nodes = sorted({self.names[a] for a, _ in partition.cut})
        span = FaultSpan(
            f"partition:{partition.kind}",
            self.now_ms / 1000,
            None,
            nodes,
            f"{len(partition.cut)} directed links cut",
        )
        self.partition_spans[index] = span
        self.metrics.faults.append(span)
        self.trace.add(self.now_ms, "cut", -1, -1, f"{partition.kind} {partition.cut}")
        self.at(partition.end_ms, self._partition_heals, index)

    def _partition_heals(self, index: int) -> None:
        span = self.partition_spans.pop(index, None)
        if span is None:
            return
        partition = self.plan.partitions[index]
        self._hold_partition(partition, -1)
        span.end_s = self.now_ms / 1000
        self.trace.add(self.now_ms, "heal", -1, -1, f"{partition.kind} {partition.cut}")
        self._watch(
            "heal",
            f"{partition.kind} of {len(partition.cut)} directed links",
            [SimNetwork.link_of(a, b) for a, b in partition.cut],
        )

    def _hold_partition(self, partition: Partition, holds: int) -> None:
        if not partition.both_ways:
            for sender, receiver in partition.cut:
                self.network.cut_one_way(sender, receiver, holds)
            return
        links = sorted({SimNetwork.link_of(a, b) for a, b in partition.cut})

        def change() -> None:
            for link in links:
                self.network.down_holds[link] += holds
                assert self.network.down_holds[link] >= 0

        self._set_links(links, change)

    # --- crashes ---------------------------------------------------------------------------

    def _crash_planned(self, crash: Crash) -> None:
        node = self.nodes[crash.node]
        if self.faults_stopped or not node.alive or node.armed_crash is not None:
            self.counts["crashes_skipped"] += 1
            return
        node.down_ms = crash.down_ms
        if crash.kind == "now":
            during = "idle"
            if node.busy:
                during = "sync" if node.held is not None else "snapshot"
            self._crash(node, during)
            return
        node.armed_crash = crash.kind
        self.at(self.now_ms + CRASH_ARMED_MS_MAX, self._crash_disarmed, (node, node.life))

    def _crash_disarmed(self, argument: tuple[SimNode, int]) -> None:
        node, life = argument
        if node.alive and node.life == life and node.armed_crash is not None:
            node.armed_crash = None
            self._crash(node, "sync" if node.held is not None else "idle")

    def _crash(self, node: SimNode, during: str) -> None:
        self.counts["crashes"] += 1
        if during in ("sync", "snapshot"):
            self.counts[f"crashes_in_{during}"] += 1
        node.crash(during)
        self.trace.add(self.now_ms, "crash", node.index, -1, during)
        self.workload.node_crashed(node.index)
        if self.offers is not None:
            self.offers.workload.node_crashed(node.index)
        self._set_alive(node.index, False)
        span = FaultSpan("crash", self.now_ms / 1000, None, [node.name], f"during {during}")
        self.crash_spans[node.index] = span
        self.metrics.faults.append(span)
        restart_ms = self.now_ms + node.down_ms
        if not self.faults_stopped:
            restart_ms = min(restart_ms, max(self.now_ms, self.options.duration_ms))
        self.at(restart_ms, self._restart, (node, node.life))

    def _restart(self, argument: tuple[SimNode, int]) -> None:
        node, life = argument
        if node.alive or node.life != life:
            return
        self.counts["restarts"] += 1
        self._start_node(node.index)
        span = self.crash_spans.pop(node.index, None)
        if span is not None:
            span.end_s = self.now_ms / 1000
        self._watch("restart", node.name, self._node_links(node.index))

    # --- the operator ------------------------------------------------------------------------

    def _arrival(self, _: None) -> None:
        if self.workload.stopped:
            return
        self._send_request(self.workload.arrival(self.now_ms))
        delay = self.workload.next_arrival_in_ms()
        if delay is not None:
            self.at(self.now_ms + delay, self._arrival)

    def _send_request(self, request: OperatorRequest) -> None:
        node = self.nodes[request.node]
        self.trace.add(self.now_ms, "request", self.operator_index, node.index, request.request_id)
        if not node.alive:
            self.workload.unreachable(request)
            return
        self.at(self.now_ms + OPERATOR_LATENCY_MS, self._request_arrives, request)

    def _request_arrives(self, request: OperatorRequest) -> None:
        node = self.nodes[request.node]
        if not node.alive:
            self.workload.unreachable(request)
            return
        node.inbox.append(Received(self.operator_key, request.payload))
        self._wake(node)

    def _answer(self, payload: bytes) -> None:
        self.trace.add(self.now_ms, "answer", -1, self.operator_index, payload_tag(payload))
        if self.offers is not None and self.offers.workload.owns(payload):
            self.offers.answered(payload)
            return
        follow_up, acknowledged = self.workload.answered(payload, self.now_ms)
        if acknowledged is not None:
            self._check_acknowledged(acknowledged)
        if follow_up is not None:
            self._send_request(follow_up)

    def _check_acknowledged(self, transfer: Acknowledged) -> None:
        """The node answered ``pay``: the proposal must already be durable at the payer."""
        if not self.books.book(transfer.payer, transfer.payee).has_proposal(transfer.msg_id):
            self._violation(
                "durability",
                f"{self.names[transfer.payer]} acknowledged transfer {transfer.msg_id} to "
                f"{self.names[transfer.payee]} before it was durable",
                transfer.payer,
                transfer.payee,
            )

    # --- checks and measurements ----------------------------------------------------------------

    def _check_links(self, _: None) -> None:
        for a, b in self.links:
            if self.network.is_up((a, b)):
                self.counts["link_checks"] += check_link(self.nodes[a], self.nodes[b], self.now_ms)
        self.at(self.now_ms + CHECK_INTERVAL_MS, self._check_links)

    def _watch(self, kind: str, label: str, links: list[Link]) -> None:
        self.convergences.watch(kind, label, links, self.now_ms)

    def _poll_convergence(self, _: None) -> None:
        self.convergences.poll(self.now_ms)
        self.at(self.now_ms + CONVERGENCE_POLL_MS, self._poll_convergence)

    def _sample_event(self, _: None) -> None:
        self._sample()
        self.at(self.now_ms + self.sample_interval_ms, self._sample_event)

    def _sample(self) -> None:
        accepted, rejected = self.books.totals()
        alive = [node for node in self.nodes if node.alive]
        self.metrics.samples.append(
            Sample(
                time_s=self.now_ms / 1000,
                accepted=accepted,
                rejected=rejected,
                pending=sum(node.pending() for node in alive),
                unacked=sum(node.unacked() for node in alive),
                offered=self.workload.counters.offered,
                nodes_down=len(self.nodes) - len(alive),
                links_down=sum(1 for link in self.links if not self.network.is_up(link)),
            )
        )

    # --- the end of the run --------------------------------------------------------------------

    def _stop_faults(self, _: None) -> None:
        self.faults_stopped = True
        self.workload.stopped = True
        if self.offers is not None:
            self.offers.workload.stopped = True
        self.network.stop_faults()
        for index in sorted(self.partition_spans):
            self._partition_heals(index)
        for node in self.nodes:
            node.armed_crash = None
            if not node.alive:
                self.at(self.now_ms, self._restart, (node, node.life))
        self.trace.add(self.now_ms, "faults-stop", -1, -1, "")

    def _drain(self) -> None:
        """Run until every node is quiet, or fail the resolution invariant."""
        bound_ms = RESOLVE_BOUND_MS if self.offers is None else OFFERS_RESOLVE_BOUND_MS
        deadline_ms = self.options.duration_ms + bound_ms
        while True:
            self._run_until(min(deadline_ms, self.now_ms + DRAIN_POLL_MS))
            if self._all_quiet():
                return
            if self.now_ms >= deadline_ms:
                stuck = unresolved(self.nodes)
                if self.offers is not None and not stuck:
                    stuck = self.offers.unresolved()
                raise InvariantViolation(
                    Violation(
                        "resolution",
                        f"{bound_ms / 1000:g} s after faults stopped, still unresolved: "
                        + ("; ".join(stuck[:8]) or "operator requests unanswered"),
                        tuple(name.split(" ")[0] for name in stuck[:8]),
                        self.now_ms,
                    )
                )

    def _all_quiet(self) -> bool:
        if self.workload.waiting:
            return False
        if self.offers is not None and not self.offers.quiet():
            return False
        return all(node.alive and not node.busy and not node.has_work() for node in self.nodes)

    def _final_checks(self) -> None:
        for a, b in self.links:
            if not check_link(self.nodes[a], self.nodes[b], self.now_ms):
                self._violation("resolution", "link not quiet after the drain", a, b)
        check_conservation(self.nodes, self.now_ms)
        if self.offers is not None:
            self.offers.final_checks()
        for payer, payee, msg_id in self.workload.acknowledged():
            book = self.books.book(payer, payee)
            if UNKNOWN in (book.outcome(True, msg_id), book.outcome(False, msg_id)):
                self._violation(
                    "durability",
                    f"acknowledged transfer {msg_id} is not final on both sides",
                    payer,
                    payee,
                )
        for (proposer, decider), book in sorted(self.books.books.items()):
            if book.settled < book.proposed_count():
                self._violation(
                    "resolution",
                    f"proposal {book.settled} is not final on both sides after the drain",
                    proposer,
                    decider,
                )

    def _violation(self, invariant: str, message: str, *indices: int) -> NoReturn:
        names = tuple(self.names[index] for index in indices)
        raise InvariantViolation(Violation(invariant, message, names, self.now_ms))

    def _counters(self) -> dict[str, int]:
        network = self.network.counters
        workload = self.workload.counters
        accepted, rejected = self.books.totals()
        return {
            **self.counts,
            "payloads_sent": network.sent,
            "payloads_lost": network.lost,
            "payloads_duplicated": network.duplicated,
            "payloads_refused": network.refused,
            "payloads_lost_in_flight": network.cut,
            "transfers_offered": workload.offered,
            "transfers_acknowledged": workload.acknowledged,
            "transfers_refused": workload.refused,
            "requests_unanswered": workload.unreachable + workload.forgotten,
            **({} if self.offers is None else self.offers.counters()),
            "proposals_accepted": accepted,
            "proposals_rejected": rejected,
            "passes": sum(node.passes for node in self.nodes),
            "syncs": sum(node.syncs for node in self.nodes),
            "snapshots": sum(node.snapshots for node in self.nodes),
            "faults_injected": self.counts["partitions"]
            + self.counts["crashes"]
            + network.lost
            + network.duplicated,
        }


def run_simulation(
    options: SimulationOptions, progress: Callable[[int], None] | None = None
) -> SimulationResult:
    """Run one simulation. Sets structlog to warnings: the nodes' debug events cost time."""
    configure_logging("warning")
    return Simulation(options).run(progress)
