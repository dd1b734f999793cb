"""The ``simulate``, ``chaos`` and ``mesh generate`` commands of the ``ledgermesh`` CLI.

Rules:
- ``register`` adds the commands to the main parser; each handler takes the
  parsed arguments and returns a JSON-able result (printed by the main CLI as
  JSON with ``--json``, as text otherwise) or raises ``SimulationError`` with
  one line (exit 1).
- A run that finds an invariant violation prints the details (to stderr as
  text, to stdout with ``--json``), writes its report if asked, then raises
  ``SimulationError`` with the summary: the command exits non-zero.
- Progress bars go to stderr, only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import trio

from node.logs import configure_logging
from simulations.errors import SimulationError
from simulations.faults import FaultRates
from simulations.limits import (
    CHAOS_NODES_MAX,
    CHAOS_RATE_DEFAULT,
    DELAY_MS_MAX,
    DURATION_MS_MAX,
    SWARM_DELAY_MS_MAX,
    SWARM_DUPLICATE_MAX,
    SWARM_LOSS_MAX,
    SWARM_SEEDS_MAX,
    WORKLOAD_RATE_MAX,
)
from simulations.options import SimulationOptions
from simulations.simulator import run_simulation
from simulations.specs import (
    parse_delay_ms,
    parse_duration_ms,
    parse_probability,
    parse_seed_range,
    parse_topology,
    parse_workload,
)

DEFAULT_RATES = FaultRates(loss=0.1, duplicate=0.05, delay_ms=(5, 200), partitions=2, crashes=3)
SWARM_MAXIMA = FaultRates(
    loss=SWARM_LOSS_MAX,
    duplicate=SWARM_DUPLICATE_MAX,
    delay_ms=(50, SWARM_DELAY_MS_MAX),
    partitions=3,
    crashes=5,
)
FAULT_COUNT_MAX = 10_000


# --- simulate ---------------------------------------------------------------------------------


def _fault_rates(args: argparse.Namespace, defaults: FaultRates) -> FaultRates:
    loss = defaults.loss if args.loss is None else parse_probability(args.loss, "--loss")
    duplicate = (
        defaults.duplicate
        if args.duplicate is None
        else parse_probability(args.duplicate, "--duplicate")
    )
    delay_ms = defaults.delay_ms if args.delay is None else parse_delay_ms(args.delay)
    if delay_ms[1] > DELAY_MS_MAX:
        raise SimulationError(f"--delay: at most {DELAY_MS_MAX} ms")
    partitions = defaults.partitions if args.partitions is None else args.partitions
    crashes = defaults.crashes if args.crashes is None else args.crashes
    if not (0 <= partitions <= FAULT_COUNT_MAX and 0 <= crashes <= FAULT_COUNT_MAX):
        raise SimulationError(f"--partitions and --crashes must be 0..{FAULT_COUNT_MAX}")
    return FaultRates(loss, duplicate, delay_ms, partitions, crashes)


def _simulation_options(args: argparse.Namespace, rates: FaultRates) -> SimulationOptions:
    duration_ms = parse_duration_ms(args.duration, "--duration")
    if not 0 < duration_ms <= DURATION_MS_MAX:
        raise SimulationError(f"--duration must be more than 0 and at most {DURATION_MS_MAX} ms")
    workload = parse_workload(args.workload)
    if workload.rate > WORKLOAD_RATE_MAX:
        raise SimulationError(f"--workload rate must be at most {WORKLOAD_RATE_MAX:g}")
    return SimulationOptions(
        seed=args.seed,
        nodes=args.nodes,
        topology=parse_topology(args.topology),
        duration_ms=duration_ms,
        rates=rates,
        workload=workload,
    )


def cmd_simulate(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("warning")
    if args.seeds is not None:
        return _swarm(args)
    from simulations.progress import Progress

    options = _simulation_options(args, _fault_rates(args, DEFAULT_RATES))
    bar = Progress(f"seed {options.seed}", options.duration_ms)
    result = run_simulation(options, lambda now_ms: bar.update(now_ms, f"{now_ms / 1000:,.0f}s"))
    bar.finish()
    summary = result.summary()
    output: dict[str, Any] = {
        "seed": summary["seed"],
        "digest": summary["digest"],
        "node_seconds_per_s": summary["node_seconds_per_s"],
        "simulated_s": summary["simulated_s"],
        "wall_s": summary["wall_s"],
        "invariant_violations": 0 if result.violation is None else 1,
        **{key: value for key, value in summary.items() if key not in ("violation", "replay")},
        "replay": summary["replay"],
    }
    if args.report is not None:
        from simulations.report import write_run_report

        files = write_run_report(args.report, summary, result.metrics, options.duration_ms / 1000)
        output["report"] = [str(path) for path in files]
    if result.violation is not None:
        _show_failure(args, output, result.violation.render())
        raise SimulationError(result.violation.summary())
    return output


def _show_failure(args: argparse.Namespace, output: Any, details: str) -> None:
    if args.json:
        print(json.dumps(output, sort_keys=True))
    else:
        print(details, file=sys.stderr)
    sys.stdout.flush()


def _swarm(args: argparse.Namespace) -> dict[str, Any]:
    from simulations.swarm import run_swarm, swarm_summary

    seeds = parse_seed_range(args.seeds)
    if len(seeds) > SWARM_SEEDS_MAX:
        raise SimulationError(f"--seeds: at most {SWARM_SEEDS_MAX} seeds at once")
    maxima = _fault_rates(args, SWARM_MAXIMA)
    base = _simulation_options(args, maxima)
    outcomes, wall_s = run_swarm(base, maxima, seeds, args.workers)
    summary = swarm_summary(base, outcomes, wall_s)
    if args.report is not None:
        from simulations.report import write_swarm_report

        files = write_swarm_report(args.report, summary, [o.summary for o in outcomes])
        summary["report"] = [str(path) for path in files]
    failed = [outcome for outcome in outcomes if outcome.failed]
    if failed:
        assert failed[0].violation_text is not None
        _show_failure(args, summary, failed[0].violation_text)
        raise SimulationError(
            f"{len(failed)} of {len(outcomes)} seeds violated an invariant; "
            f"first: seed {failed[0].seed}, replay: {failed[0].summary['replay']}"
        )
    return summary


# --- chaos --------------------------------------------------------------------------------------


def cmd_chaos(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("warning")
    from simulations.chaos import ChaosOptions, run_chaos

    if not 2 <= args.nodes <= CHAOS_NODES_MAX:
        raise SimulationError(f"--nodes must be 2..{CHAOS_NODES_MAX} for a chaos run")
    if not 0 < args.rate <= WORKLOAD_RATE_MAX:
        raise SimulationError("--rate must be a positive number of transfers per second")
    options = ChaosOptions(
        nodes=args.nodes,
        topology=parse_topology(args.topology),
        duration_s=parse_duration_ms(args.duration, "--duration") / 1000,
        kill_every_s=parse_duration_ms(args.kill_every, "--kill-every") / 1000,
        cut_links=parse_probability(args.cut_links, "--cut-links"),
        loss=parse_probability(args.loss, "--loss"),
        duplicate=parse_probability(args.duplicate, "--duplicate"),
        delay_ms=parse_delay_ms(args.delay),
        seed=args.seed,
        rate=args.rate,
        directory=args.dir,
    )
    if options.duration_s <= 0:
        raise SimulationError("--duration must be positive")
    summary = trio.run(run_chaos, options)
    if args.report is not None:
        from simulations.report import write_chaos_report

        files = write_chaos_report(args.report, summary)
        summary["report"] = [str(path) for path in files]
    printed = {key: value for key, value in summary.items() if key not in ("events", "ack_times_s")}
    if summary["violations"]:
        details = "CHAOS RUN FAILED\n" + "\n".join(f"  {line}" for line in summary["violations"])
        details += f"\n  node directories kept in {summary['directory']}"
        _show_failure(args, printed, details)
        raise SimulationError(
            f"{len(summary['violations'])} invariant violations; first: {summary['violations'][0]}"
        )
    return printed


# --- mesh generate -------------------------------------------------------------------------------


def cmd_mesh_generate(args: argparse.Namespace) -> dict[str, Any]:
    from simulations.meshgen import generate_mesh, parse_limits, start_instructions

    if not 2 <= args.nodes <= CHAOS_NODES_MAX * 8:
        raise SimulationError(f"--nodes must be 2..{CHAOS_NODES_MAX * 8}")
    if not 1024 <= args.base_port <= 65535 - args.nodes:
        raise SimulationError("--base-port must leave room for one port per node below 65536")
    mesh = generate_mesh(
        args.dir,
        args.nodes,
        parse_topology(args.topology),
        seed=args.seed,
        listen=[(args.host, args.base_port + index) for index in range(args.nodes)],
        limits=parse_limits(args.limit or ["USD=100000000.00"]),
    )
    described = mesh.to_json()
    return {
        "directory": described["directory"],
        "nodes": described["nodes"],
        "links": len(mesh.links),
        "start": start_instructions(mesh),
    }


# --- the parser ---------------------------------------------------------------------------------


def _add_simulate(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    help_text = "simulate a mesh with seeded faults in simulated time; check its invariants"
    sub = commands.add_parser("simulate", help=help_text, description=help_text, parents=[common])
    sub.set_defaults(handler=cmd_simulate)
    sub.add_argument("--nodes", type=int, default=10, help="nodes in the mesh (default 10)")
    sub.add_argument(
        "--topology",
        default="random:degree=4",
        help="ring, line, full, star or random:degree=K (default random:degree=4)",
    )
    sub.add_argument("--seed", type=int, default=1, help="the seed of the run (default 1)")
    sub.add_argument(
        "--seeds",
        metavar="A..B",
        help="swarm mode: run every seed A..B, each drawing its own fault rates "
        "up to --loss/--duplicate/--delay/--partitions/--crashes",
    )
    sub.add_argument("--duration", default="60", help="simulated time with faults: 3600, 90s, 1h")
    sub.add_argument("--loss", help="share of payloads lost per link (default 0.1)")
    sub.add_argument("--duplicate", help="share of payloads duplicated (default 0.05)")
    sub.add_argument("--delay", help="delay range per payload, e.g. 5..200ms (default)")
    sub.add_argument("--partitions", type=int, help="link cuts and partitions (default 2)")
    sub.add_argument("--crashes", type=int, help="node crashes (default 3)")
    sub.add_argument(
        "--workload",
        default="transfers:rate=20",
        help="transfers:rate=N[,conditional=F,unknown=F,amount=N]: N transfers "
        "per simulated second over the mesh (default rate=20); or "
        "offers:rate=N[,takes=T,cancel=F,customers=C,transfers=X]: customers of every "
        "node make N offers and T takes per second (docs/SIMULATION.md)",
    )
    sub.add_argument("--workers", type=int, help="swarm worker processes (default: one per core)")
    sub.add_argument("--report", type=Path, metavar="DIR", help="write a JSON summary and plots")


def _add_chaos(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    help_text = "run real nodes over QUIC through fault-injecting relays; SIGKILL them; check"
    sub = commands.add_parser("chaos", help=help_text, description=help_text, parents=[common])
    sub.set_defaults(handler=cmd_chaos)
    sub.add_argument("--nodes", type=int, default=6, help="node processes (default 6)")
    sub.add_argument("--topology", default="ring", help="ring, line, full, star, random:degree=K")
    sub.add_argument("--duration", default="120", help="seconds of faults (default 120)")
    sub.add_argument("--kill-every", default="10s", help="SIGKILL a node this often (0: never)")
    sub.add_argument(
        "--cut-links",
        default="0.2",
        help="chance per link, every few seconds, of a cut (default 0.2)",
    )
    sub.add_argument("--loss", default="0.05", help="share of datagrams lost (default 0.05)")
    sub.add_argument("--duplicate", default="0.0", help="share of datagrams duplicated")
    sub.add_argument("--delay", default="0..2ms", help="delay range per datagram (default 0..2ms)")
    sub.add_argument("--seed", type=int, default=1, help="drives every choice of the run")
    sub.add_argument(
        "--rate",
        type=float,
        default=CHAOS_RATE_DEFAULT,
        help=f"transfers per second offered (default {CHAOS_RATE_DEFAULT:g})",
    )
    sub.add_argument(
        "--dir",
        type=Path,
        help="where to put the nodes (default: a temporary "
        "directory, kept only when the run fails)",
    )
    sub.add_argument("--report", type=Path, metavar="DIR", help="write a JSON summary and a plot")


def _add_mesh(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    mesh = commands.add_parser("mesh", help="make meshes of real nodes").add_subparsers(
        dest="mesh_command", required=True, metavar="COMMAND"
    )
    help_text = "write keys and configs for a mesh of nodes on one machine"
    sub = mesh.add_parser("generate", help=help_text, description=help_text, parents=[common])
    sub.set_defaults(handler=cmd_mesh_generate)
    sub.add_argument("dir", type=Path, metavar="DIR", help="the mesh's directory")
    sub.add_argument("--nodes", type=int, default=4, help="nodes (default 4)")
    sub.add_argument("--topology", default="ring", help="ring, line, full, star, random:degree=K")
    sub.add_argument("--seed", type=int, default=1, help="for random topologies")
    sub.add_argument("--host", default="127.0.0.1", help="listen host (default 127.0.0.1)")
    sub.add_argument(
        "--base-port", type=int, default=7400, help="node i listens on BASE+i (default 7400)"
    )
    sub.add_argument(
        "--limit",
        action="append",
        metavar="UNIT=AMOUNT",
        help="credit every node extends to each peer (default USD=100000000.00)",
    )


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``simulate``, ``chaos`` and ``mesh generate`` to the ``ledgermesh`` parser."""
    _add_simulate(commands, common)
    _add_chaos(commands, common)
    _add_mesh(commands, common)
