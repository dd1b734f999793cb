"""What issue 4's simulator target leaves for the nodes' code: the signing and msgpack floor.

The target: 1,000 simulated node-seconds per wall-clock second for a 50-node
mesh, so one simulated second of the whole mesh may take 50 ms of wall time.
The simulator runs every node's real engine, and every frame a node sends is
signed for real with ed25519 (the issue asks for real signatures; frames
repeated byte for byte reuse their signature, see node/signatures.py). This
runs the issue's command and, in the same run, times the two library calls
no Python code of ours can make cheaper, libsodium's ``crypto_sign`` and
msgpack's ``packb``/``unpackb``, then prints them per simulated second
against that budget. When they alone exceed it, the target is out of reach
for this stack on this machine, whatever the rest of the code does.

    python -m tools.bench_sim_floor [--nodes 50] [--duration 120] [--rate 200] [--seed 7]
                                    [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import nacl.bindings

from node.cli import main as ledgermesh

TARGET_NODE_SECONDS_PER_S = 1_000


class _Timed:
    """Wall time and calls spent inside one library function."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        return timed


@contextlib.contextmanager
def _timing(module: Any, name: str, timed: _Timed) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, timed.wrap(original))
    try:
        yield
    finally:
        setattr(module, name, original)


def measure(nodes: int, duration_s: int, rate: int, seed: int) -> dict[str, Any]:
    command = [
        "simulate",
        *("--nodes", str(nodes), "--topology", "random:degree=4", "--seed", str(seed)),
        *("--duration", str(duration_s), "--loss", "0.2", "--duplicate", "0.1"),
        *("--delay", "5..200ms", "--partitions", "3", "--crashes", "10"),
        *("--workload", f"transfers:rate={rate}", "--json"),
    ]
    signing, packing, unpacking = _Timed(), _Timed(), _Timed()
    output = io.StringIO()
    with (
        _timing(nacl.bindings, "crypto_sign", signing),
        _timing(msgpack, "packb", packing),
        _timing(msgpack, "unpackb", unpacking),
        contextlib.redirect_stdout(output),
    ):
        code = ledgermesh(command)
    if code not in (0, None):
        raise SystemExit(f"the simulation failed (exit {code}): {output.getvalue()[-2000:]}")
    run = json.loads(output.getvalue())
    simulated_s = float(run["simulated_s"])
    budget_ms = 1000 * nodes / TARGET_NODE_SECONDS_PER_S

    def per_simulated_s(timed: _Timed) -> float:
        return 1000 * timed.seconds / simulated_s

    sign_ms, msgpack_ms = (
        per_simulated_s(signing),
        per_simulated_s(packing) + per_simulated_s(unpacking),
    )
    return {
        "command": "ledgermesh " + " ".join(command),
        "node_seconds_per_s": run["node_seconds_per_s"],
        "simulated_s": simulated_s,
        "wall_s": run["wall_s"],
        "wall_ms_per_simulated_s": round(1000 * run["wall_s"] / simulated_s, 1),
        "budget_ms_per_simulated_s": budget_ms,
        "signatures": signing.calls,
        "signatures_per_simulated_s": round(signing.calls / simulated_s),
        "sign_us_each": round(1e6 * signing.seconds / max(1, signing.calls), 1),
        "sign_ms_per_simulated_s": round(sign_ms, 1),
        "msgpack_calls": packing.calls + unpacking.calls,
        "msgpack_ms_per_simulated_s": round(msgpack_ms, 1),
        "floor_ms_per_simulated_s": round(sign_ms + msgpack_ms, 1),
        "floor_over_budget": round((sign_ms + msgpack_ms) / budget_ms, 2),
        "invariant_violations": run["invariant_violations"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_sim_floor",
        description="Time signing and msgpack inside issue 4's simulation, against its budget.",
    )
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--duration", type=int, default=120, help="simulated seconds")
    parser.add_argument("--rate", type=int, default=200, help="transfers per simulated second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.duration < 1 or args.rate < 0:
        parser.error("--nodes >= 2, --duration >= 1, --rate >= 0")
    print(f"running: {args.nodes} nodes, {args.duration} simulated s ...", file=sys.stderr)
    figures = measure(args.nodes, args.duration, args.rate, args.seed)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    budget = figures["budget_ms_per_simulated_s"]
    print(figures["command"])
    print(
        f"whole run: {figures['node_seconds_per_s']} node-s/s, "
        f"{figures['wall_ms_per_simulated_s']} ms of wall time per simulated second "
        f"(budget for {TARGET_NODE_SECONDS_PER_S:,} node-s/s: {budget:g} ms)"
    )
    print(
        f"ed25519 signing: {figures['signatures_per_simulated_s']}/simulated s x "
        f"{figures['sign_us_each']} us = {figures['sign_ms_per_simulated_s']} ms"
    )
    print(f"msgpack pack/unpack: {figures['msgpack_ms_per_simulated_s']} ms")
    print(
        f"floor (these two alone): {figures['floor_ms_per_simulated_s']} ms per simulated "
        f"second = {figures['floor_over_budget']}x the budget"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
