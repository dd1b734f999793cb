"""The deterministic simulator: same seed, same run; real invariants that a broken build fails.

Every node runs the real engine and log on a simulated disk, under a simulated
clock, with seeded loss, duplication, reordering, partitions and crashes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.engine import NodeEngine
from node.storage.disk import SimulatedDisk
from simulations.cli import register
from simulations.errors import SimulationError
from simulations.faults import FaultRates
from simulations.options import SimulationOptions, SimulationResult
from simulations.simulator import run_simulation
from simulations.specs import parse_topology, parse_workload

RATES = FaultRates(loss=0.15, duplicate=0.1, delay_ms=(5, 120), partitions=2, crashes=4)


def options(seed: int, *, nodes: int = 5, duration_ms: int = 20_000) -> SimulationOptions:
    return SimulationOptions(
        seed=seed,
        nodes=nodes,
        topology=parse_topology("random:degree=3"),
        duration_ms=duration_ms,
        rates=RATES,
        workload=parse_workload("transfers:rate=25"),
    )


def parser() -> argparse.ArgumentParser:
    """The main CLI's shape: subcommands, each with the common --json flag."""
    main = argparse.ArgumentParser(prog="ledgermesh")
    commands = main.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    register(commands, common)
    return main


def run_cli(*argv: str) -> Any:
    args = parser().parse_args(argv)
    return args.handler(args)


def assert_clean(result: SimulationResult) -> None:
    assert result.violation is None, result.violation.render()


def test_the_same_seed_gives_the_same_trace_and_another_seed_another() -> None:
    first, again, other = (run_simulation(options(seed)) for seed in (5, 5, 6))
    for result in (first, again, other):
        assert_clean(result)
    assert first.digest == again.digest
    assert first.events == again.events and first.counters == again.counters
    assert other.digest != first.digest
    # The run really was hostile, and really did work.
    counters = first.counters
    assert counters["crashes"] >= 2 and counters["partitions"] == 2
    assert counters["payloads_lost"] > 50 and counters["payloads_duplicated"] > 20
    assert counters["transfers_acknowledged"] > 300
    assert counters["proposals_accepted"] > 300


def test_a_replay_in_another_process_gives_the_same_digest() -> None:
    """No hash-order dependence: another interpreter with another hash seed agrees."""
    result = run_simulation(options(9))
    script = (
        "from tests.integration.test_simulation import options\n"
        "from simulations.simulator import run_simulation\n"
        "print(run_simulation(options(9)).digest)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert completed.stdout.strip() == result.digest, (
        "the run depends on PYTHONHASHSEED: some node code iterates a set or frozenset "
        "(bytes and str hash differently in every process); iterate sorted() instead"
    )


def test_a_disk_that_reports_syncs_it_did_not_do_is_caught(monkeypatch) -> None:
    """The broken build: fsync returns, nothing is durable. A crash must expose it."""

    def lying_sync(self: SimulatedDisk, name: str, life: int) -> None:
        self._count_change()  # counted as an operation, but synced_bytes never moves

    monkeypatch.setattr(SimulatedDisk, "_sync", lying_sync)
    result = run_simulation(options(3))
    assert result.violation is not None
    violation = result.violation.violation
    assert violation.invariant == "durability"
    assert "survived its crash" in violation.message
    report = result.violation.render()
    for expected in ("seed:      3", "time:", violation.nodes[0], "last events:", "replay:"):
        assert expected in report
    assert len(result.violation.last_events) > 10


def test_an_engine_that_sends_before_syncing_is_caught(monkeypatch) -> None:
    """The broken build: the node never waits for its fsync before answering."""
    monkeypatch.setattr(NodeEngine, "sync_due", property(lambda self: False))
    result = run_simulation(options(4))
    assert result.violation is not None
    assert result.violation.violation.invariant == "durability"
    assert "before it was durable" in result.violation.violation.message


def test_the_replay_command_reproduces_the_failing_run(monkeypatch) -> None:
    monkeypatch.setattr(SimulatedDisk, "_sync", lambda self, name, life: self._count_change())
    failed = run_simulation(options(3))
    assert failed.violation is not None
    words = shlex.split(failed.violation.replay_command)
    assert words[:2] == ["ledgermesh", "simulate"]
    with pytest.raises(SimulationError) as raised:
        run_cli(*words[1:], "--json")
    assert "durability" in str(raised.value) and "seed 3" in str(raised.value)


def test_a_short_swarm_finds_no_violation(tmp_path: Path) -> None:
    """40 seeds of 8 nodes, each with its own drawn fault rates, on both cores."""
    arguments = ["--nodes", "8", "--duration", "30", "--seeds", "1..40", "--workers", "2"]
    run_cli("simulate", *arguments, "--report", str(tmp_path))
    summary = json.loads((tmp_path / "swarm.json").read_text())
    assert [seed["violation"] for seed in summary["seeds"]] == [None] * 40
    assert summary["seeds_run"] == 40
    assert summary["invariant_violations"] == 0
    assert summary["crashes"] > 40 and summary["partitions"] > 20
    assert summary["faults_injected"] > 10_000
    assert summary["transfers_acknowledged"] > 15_000
    assert summary["simulated_hours"] > 0.3
    assert [row["seed"] for row in summary["seeds"]] == list(range(1, 41))
    assert (tmp_path / "swarm.png").stat().st_size > 10_000


def test_simulate_prints_its_rate_and_writes_a_report(tmp_path: Path) -> None:
    summary = run_cli(
        "simulate", "--nodes", "6", "--duration", "30", "--seed", "11", "--report", str(tmp_path)
    )
    assert summary["invariant_violations"] == 0
    assert summary["node_seconds_per_s"] > 0
    assert summary["replay"].startswith("ledgermesh simulate --nodes 6 ")
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["digest"] == summary["digest"]
    assert len(written["samples"]) >= 30
    assert written["faults"] and written["convergences"]
    assert all(item["seconds"] is not None for item in written["convergences"])
    assert (tmp_path / "timeline.png").stat().st_size > 30_000


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--topology", "blob"],
        ["simulate", "--loss", "1.5"],
        ["simulate", "--delay", "9..1ms"],
        ["simulate", "--duration", "forever"],
        ["simulate", "--seeds", "5..2"],
        ["simulate", "--workload", "transfers:rate=-1"],
        ["simulate", "--nodes", "1"],
    ],
)
def test_bad_flags_are_one_line_errors(argv: list[str]) -> None:
    with pytest.raises(SimulationError) as raised:
        run_cli(*argv)
    assert "\n" not in str(raised.value)
