"""What a node's history costs: the payment core's tick, memory and snapshot after N payments.

A validator ticks every TICK_INTERVAL_MS. The payment core's tick must cost
what is open (payments pending, transfers held), not everything the node ever
did: a bank's validator runs for months. This builds, from real records
(``node.payments.events``), the state of a validator that paid ``N`` payments
as payer, forwarded ``N`` as a middle hop and was paid ``N`` invoices as payee,
all ended, plus ``--open`` payments still pending, then times
``PaymentCore.handle(TimerTick())`` and the per-peer cap check
(``open_towards``), for each N of ``--closed``. With ``--footprint`` it builds
the same history again under tracemalloc and reports the payment state's
memory and the bytes of its part of the snapshot (retention keeps both
bounded: docs/PAYMENTS.md, "Retention"); run it in a tree without retention
for the figures before.

    python -m tools.bench_history [--closed 0,10000,100000] [--open 32] [--ticks 50]
                                  [--footprint] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from node.payments.core import PaymentCore
from node.payments.events import (
    IncomingClosed,
    IncomingOpened,
    InvoiceCreated,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PreimageLearned,
    Record,
    TimerTick,
)
from node.payments.records import record_to_wire
from node.payments.routing import RouteGraph
from node.payments.state import PaymentState
from node.signatures import sha256
from node.wire import pack

OWN, UPSTREAM, DOWNSTREAM = "b.test", "a.test", "c.test"
NOW_MS = 1_700_000_000_000
LATER_MS = NOW_MS + 3_600_000


def history_records(closed: int, pending: int) -> Iterator[Record]:
    """The records of a validator that paid ``closed`` payments of its own, forwarded
    ``closed`` transfers and was paid ``closed`` invoices, all ended, with ``pending``
    payments of its own still in flight."""
    ref = 0
    for index in range(closed + pending):
        payment_id = f"p{index}"
        preimage = sha256(payment_id.encode())
        condition = sha256(preimage)
        yield PaymentStarted(
            payment_id, "x.test", DOWNSTREAM, 10, "USD", 1, LATER_MS, None, condition
        )
        out = OutgoingOpened(
            ref, DOWNSTREAM, 10, "USD", condition, LATER_MS, (), payment_id, None, None
        )
        yield out
        ref += 1
        if index >= closed:
            continue  # in flight
        yield PreimageLearned(condition, preimage)
        yield OutgoingClosed(out.ref, True, None)
        yield PaymentEnded(payment_id, True, None, None)
        forwarded_preimage = sha256(preimage)
        forwarded = sha256(forwarded_preimage)
        yield IncomingOpened(UPSTREAM, index, 11, "USD", forwarded, LATER_MS, ref)
        onward = OutgoingOpened(
            ref, DOWNSTREAM, 10, "USD", forwarded, LATER_MS, (), None, UPSTREAM, index
        )
        yield onward
        ref += 1
        yield PreimageLearned(forwarded, forwarded_preimage)
        yield OutgoingClosed(onward.ref, True, None)
        yield IncomingClosed(UPSTREAM, index, True, None)
        invoice_preimage = sha256(forwarded_preimage)
        invoice = sha256(invoice_preimage)
        yield InvoiceCreated(
            invoice, invoice_preimage, UPSTREAM, payment_id, "y.test", 10, "USD", LATER_MS
        )
        yield IncomingOpened(UPSTREAM, 10**9 + index, 10, "USD", invoice, LATER_MS, None)
        yield IncomingClosed(UPSTREAM, 10**9 + index, True, None)


def footprint(closed: int, pending: int) -> dict[str, Any]:
    """Memory the payment state holds (tracemalloc) and the bytes of its part of the
    snapshot: ``snapshot_records()`` where the state has retention, else every
    record (the snapshot held them all before retention)."""
    tracemalloc.start()
    state = PaymentState()
    every_record_bytes = 0
    applied = 0
    for record in history_records(closed, pending):
        state.apply(record)
        applied += 1
        every_record_bytes += len(pack(record_to_wire(record)))
    memory_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    snapshot_records = getattr(state, "snapshot_records", None)
    if snapshot_records is None:
        snapshot_bytes = every_record_bytes
    else:
        snapshot_bytes = len(pack([record_to_wire(record) for record in snapshot_records()]))
    return {
        "records": applied,
        "state_memory_mb": round(memory_bytes / 2**20, 1),
        "snapshot_payments_mb": round(snapshot_bytes / 2**20, 2),
        "payments_kept": len(state.payments),
        "outcomes_kept": len(getattr(state, "outcomes", {})),
    }


def measure(closed: int, pending: int, ticks: int) -> dict[str, Any]:
    records = list(history_records(closed, pending))
    start = time.perf_counter()
    state = PaymentState()
    for record in records:
        state.apply(record)
    apply_us = (time.perf_counter() - start) / len(records) * 1e6 if records else 0.0
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
        "apply_us_per_record": round(apply_us, 2),  # what replay costs
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench_history",
        description="the payment core's clock tick after N closed payments",
    )
    parser.add_argument("--closed", default="0,10000,100000", help="history sizes, comma-separated")
    parser.add_argument("--open", type=int, default=32, help="payments in flight (default 32)")
    parser.add_argument("--ticks", type=int, default=50, help="ticks timed per size (default 50)")
    parser.add_argument(
        "--footprint", action="store_true", help="also the state's memory and snapshot bytes"
    )
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
        row = measure(size, args.open, args.ticks)
        if args.footprint:
            row.update(footprint(size, args.open))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"payment core, {args.open} payments in flight, tick every 100 ms")
    print("closed payments   tick p50 ms   tick max ms   open_towards us   apply us/record")
    for row in rows:
        print(
            f"{row['closed_payments']:>15,}   {row['tick_ms_p50']:>11.4f}"
            f"   {row['tick_ms_max']:>11.4f}   {row['open_towards_us']:>15.3f}"
            f"   {row['apply_us_per_record']:>15.2f}"
        )
    if args.footprint:
        print("closed payments     records   state MB   snapshot MB   kept in full   outcomes")
        for row in rows:
            print(
                f"{row['closed_payments']:>15,}   {row['records']:>9,}"
                f"   {row['state_memory_mb']:>8.1f}"
                f"   {row['snapshot_payments_mb']:>11.2f}   {row['payments_kept']:>12,}"
                f"   {row['outcomes_kept']:>8,}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
