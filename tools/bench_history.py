"""What a node's history costs its clock: the payment core's tick after N closed payments.

A validator ticks every TICK_INTERVAL_MS. The payment core's tick must cost
what is open (payments pending, transfers held), not everything the node ever
did: a bank's validator runs for months. This builds, from real records
(``node.payments.events``), the state of a validator that paid ``N`` payments
as payer and forwarded ``N`` as a middle hop, all closed, plus ``--open``
payments still pending, then times ``PaymentCore.handle(TimerTick())`` and the
per-peer cap check (``open_towards``), for each N of ``--closed``.

    python -m tools.bench_history [--closed 0,10000,100000] [--open 32] [--ticks 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from node.payments.core import PaymentCore
from node.payments.events import (
    IncomingClosed,
    IncomingOpened,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    TimerTick,
)
from node.payments.routing import RouteGraph
from node.payments.state import PaymentState
from node.signatures import sha256

OWN, UPSTREAM, DOWNSTREAM = "b.test", "a.test", "c.test"
NOW_MS = 1_700_000_000_000
LATER_MS = NOW_MS + 3_600_000


def history(closed: int, pending: int) -> PaymentState:
    """A validator's payment state: ``closed`` payments of its own and ``closed``
    forwarded transfers, all ended, and ``pending`` payments of its own in flight."""
    state = PaymentState()
    ref = 0
    for index in range(closed + pending):
        payment_id = f"p{index}"
        condition = sha256(payment_id.encode())
        started = PaymentStarted(
            payment_id, "x.test", DOWNSTREAM, 10, "USD", 1, LATER_MS, None, condition
        )
        state.apply(started)
        out = OutgoingOpened(
            ref, DOWNSTREAM, 10, "USD", condition, LATER_MS, (), payment_id, None, None
        )
        state.apply(out)
        ref += 1
        if index >= closed:
            continue  # in flight
        state.apply(OutgoingClosed(out.ref, True, None))
        state.apply(PaymentEnded(payment_id, True, None, None))
        forwarded = sha256(condition)
        state.apply(IncomingOpened(UPSTREAM, index, 11, "USD", forwarded, LATER_MS, ref))
        onward = OutgoingOpened(
            ref, DOWNSTREAM, 10, "USD", forwarded, LATER_MS, (), None, UPSTREAM, index
        )
        state.apply(onward)
        ref += 1
        state.apply(OutgoingClosed(onward.ref, True, None))
        state.apply(IncomingClosed(UPSTREAM, index, True, None))
    return state


def measure(closed: int, pending: int, ticks: int) -> dict[str, Any]:
    state = history(closed, pending)
    core = PaymentCore(
        OWN,
        {},
        RouteGraph(OWN, [UPSTREAM, DOWNSTREAM]),
        lambda peer, unit: 10**9,
        lambda payee, unit: True,
        state,
    )
    tick_ms = []
    for _ in range(ticks):
        start = time.perf_counter()
        core.handle(TimerTick(), NOW_MS)
        tick_ms.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    for _ in range(ticks):
        state.open_towards(DOWNSTREAM)
    cap_us = (time.perf_counter() - start) / ticks * 1e6
    return {
        "closed_payments": closed,
        "pending_payments": pending,
        "tick_ms_p50": round(statistics.median(tick_ms), 4),
        "tick_ms_max": round(max(tick_ms), 4),
        "open_towards_us": round(cap_us, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_history",
        description="the payment core's clock tick after N closed payments",
    )
    parser.add_argument("--closed", default="0,10000,100000", help="history sizes, comma-separated")
    parser.add_argument("--open", type=int, default=32, help="payments in flight (default 32)")
    parser.add_argument("--ticks", type=int, default=50, help="ticks timed per size (default 50)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    try:
        sizes = [int(part) for part in args.closed.split(",")]
    except ValueError:
        print(f"error: --closed {args.closed!r} is not a list of integers", file=sys.stderr)
        return 2
    if any(size < 0 for size in sizes) or args.open < 0 or args.ticks < 1:
        print("error: sizes and --open must be >= 0, --ticks >= 1", file=sys.stderr)
        return 2
    rows = []
    for size in sizes:
        print(f"building a history of {size:,} closed payments...", file=sys.stderr)
        rows.append(measure(size, args.open, args.ticks))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"payment core, {args.open} payments in flight, tick every 100 ms")
    print("closed payments   tick p50 ms   tick max ms   open_towards us")
    for row in rows:
        print(
            f"{row['closed_payments']:>15,}   {row['tick_ms_p50']:>11.4f}"
            f"   {row['tick_ms_max']:>11.4f}   {row['open_towards_us']:>15.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
