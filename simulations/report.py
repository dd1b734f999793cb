"""Reports of runs: a JSON summary and PNG plots a person can read at a glance.

Rules:
- ``write_run_report`` writes ``summary.json`` (the run's summary, every time
  series, every fault span and every convergence) and ``timeline.png``: four
  panels on one simulated-time axis -- throughput, pending transfers, the
  faults as bars, and the convergence time after each heal or restart. Faults
  are also shaded behind the first two panels, so cause and effect line up.
- ``write_swarm_report`` writes ``swarm.json`` and ``swarm.png`` (per seed:
  faults injected and transfers acknowledged, failing seeds in red).
- matplotlib runs headless (the Agg backend); nothing here affects a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt

from simulations.metrics import FaultSpan, Metrics, Sample

FIGURE_WIDTH_IN = 12
PANEL_HEIGHT_IN = 2.6
FAULT_COLOURS = {
    "crash": "tab:red",
    "partition:link": "tab:orange",
    "partition:split": "tab:purple",
    "partition:one-way": "tab:brown",
}


def _rates(samples: list[Sample], field: str) -> tuple[list[float], list[float]]:
    """Per-second rate of a cumulative counter, between consecutive samples."""
    times, rates = [], []
    for before, after in itertools.pairwise(samples):
        span_s = after.time_s - before.time_s
        if span_s > 0:
            times.append(after.time_s)
            rates.append((getattr(after, field) - getattr(before, field)) / span_s)
    return times, rates


def _shade_faults(axes: Any, faults: list[FaultSpan], end_s: float) -> None:
    for span in faults:
        colour = FAULT_COLOURS.get(span.kind, "grey")
        axes.axvspan(
            span.start_s,
            span.end_s if span.end_s is not None else end_s,
            color=colour,
            alpha=0.08,
            linewidth=0,
        )


def _fault_label(span: FaultSpan) -> str:
    who = span.nodes[0] if len(span.nodes) == 1 else f"{len(span.nodes)} nodes"
    return f"{span.kind.replace('partition:', 'cut ')} {who}"


def _plot_faults(axes: Any, faults: list[FaultSpan], end_s: float) -> None:
    """One row per subject (a node's crashes, a link's cuts), its faults as bars along it."""
    rows: dict[str, int] = {}
    for span in faults:
        row = rows.setdefault(_fault_label(span), len(rows))
        end = span.end_s if span.end_s is not None else end_s
        axes.barh(
            row,
            max(end - span.start_s, end_s / 500),
            left=span.start_s,
            color=FAULT_COLOURS.get(span.kind, "grey"),
            height=0.7,
        )
    if rows:
        axes.set_yticks(range(len(rows)), list(rows), fontsize=6 if len(rows) < 30 else 4)
        axes.invert_yaxis()
    else:
        axes.text(0.5, 0.5, "no faults", transform=axes.transAxes, ha="center", va="center")
        axes.set_yticks([])
    axes.set_ylabel("faults")


def _plot_convergence(axes: Any, metrics: Metrics) -> None:
    done = [c for c in metrics.convergences if c.seconds is not None]
    never = [c for c in metrics.convergences if c.seconds is None]
    for kind, marker in (("heal", "o"), ("restart", "s")):
        points = [c for c in done if c.kind == kind]
        axes.scatter(
            [c.at_s for c in points],
            [c.seconds for c in points],
            marker=marker,
            label=f"after a {kind}",
            s=18,
        )
    if never:
        top = max((c.seconds or 0.0 for c in done), default=1.0) * 1.1 or 1.0
        axes.scatter(
            [c.at_s for c in never],
            [top] * len(never),
            marker="x",
            color="red",
            label="never converged",
        )
    axes.set_ylabel("converged after (s)")
    if metrics.convergences:
        axes.legend(loc="upper right", fontsize=7)


def plot_timeline(metrics: Metrics, title: str, faults_stop_s: float, path: Path) -> None:
    samples = metrics.samples
    end_s = samples[-1].time_s if samples else faults_stop_s
    figure, panels = plt.subplots(4, 1, sharex=True, figsize=(FIGURE_WIDTH_IN, 4 * PANEL_HEIGHT_IN))
    throughput, pending, faults, convergence = panels
    for field, label in (
        ("accepted", "accepted /s"),
        ("rejected", "rejected /s"),
        ("offered", "offered /s"),
    ):
        times, rates = _rates(samples, field)
        throughput.plot(times, rates, label=label, linewidth=1)
    throughput.set_ylabel("transfers per second")
    throughput.legend(loc="upper right", fontsize=7)
    pending.plot(
        [s.time_s for s in samples], [s.pending for s in samples], label="pending proposals"
    )
    pending.plot(
        [s.time_s for s in samples],
        [s.unacked for s in samples],
        label="messages awaiting an ACK",
        linewidth=1,
    )
    pending.set_ylabel("in flight")
    pending.legend(loc="upper right", fontsize=7)
    for axes in (throughput, pending):
        _shade_faults(axes, metrics.faults, end_s)
    _plot_faults(faults, metrics.faults, end_s)
    _plot_convergence(convergence, metrics)
    for axes in panels:
        axes.axvline(faults_stop_s, color="black", linestyle="--", linewidth=0.8)
        axes.grid(alpha=0.3)
    convergence.set_xlabel("simulated time (s); dashed line: faults stop")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_run_report(
    directory: Path, summary: dict[str, Any], metrics: Metrics, faults_stop_s: float
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    summary_path = directory / "summary.json"
    summary_path.write_text(json.dumps({**summary, **metrics.to_json()}, indent=1, sort_keys=True))
    plot_path = directory / "timeline.png"
    title = (
        f"seed {summary['seed']}: {summary['nodes']} nodes, {summary['topology']}; "
        f"{summary['crashes']} crashes, {summary['partitions']} partitions; "
        f"violation: {summary['violation']['invariant'] if summary['violation'] else 'none'}"
    )
    plot_timeline(metrics, title, faults_stop_s, plot_path)
    return [summary_path, plot_path]


def write_swarm_report(
    directory: Path, summary: dict[str, Any], per_seed: list[dict[str, Any]]
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "swarm.json"
    json_path.write_text(json.dumps({**summary, "seeds": per_seed}, indent=1, sort_keys=True))
    plot_path = directory / "swarm.png"
    figure, (faults, transfers) = plt.subplots(
        2, 1, sharex=True, figsize=(FIGURE_WIDTH_IN, 2 * PANEL_HEIGHT_IN)
    )
    seeds = [row["seed"] for row in per_seed]
    colours = ["tab:red" if row["violation"] else "tab:blue" for row in per_seed]
    faults.bar(seeds, [row["faults_injected"] for row in per_seed], color=colours)
    faults.set_ylabel("faults injected")
    transfers.bar(seeds, [row["transfers_acknowledged"] for row in per_seed], color=colours)
    transfers.set_ylabel("transfers acknowledged")
    transfers.set_xlabel("seed (red: invariant violated)")
    figure.suptitle(
        f"{summary['seeds_run']} seeds, {summary['invariant_violations']} violations", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(plot_path, dpi=110)
    plt.close(figure)
    return [json_path, plot_path]


def _chaos_spans(events: list[dict[str, Any]], end_s: float) -> list[FaultSpan]:
    """Kills (until the restart) and cuts (until the heal) as fault spans."""
    open_spans: dict[tuple[str, str], FaultSpan] = {}
    spans: list[FaultSpan] = []
    for event in events:
        kind, detail, time_s = event["kind"], event["detail"], event["time_s"]
        if kind in ("kill", "cut"):
            span = FaultSpan(
                "crash" if kind == "kill" else "partition:link", time_s, None, [detail], kind
            )
            open_spans[(kind, detail)] = span
            spans.append(span)
        elif kind in ("restart", "heal"):
            opened = open_spans.pop(("kill" if kind == "restart" else "cut", detail), None)
            if opened is not None:
                opened.end_s = time_s
        elif kind == "faults-stop":
            for span in open_spans.values():
                span.end_s = time_s
            open_spans.clear()
    for span in spans:
        if span.end_s is None:
            span.end_s = end_s
    return spans


def write_chaos_report(directory: Path, summary: dict[str, Any]) -> list[Path]:
    """``chaos.json`` and ``chaos.png``: acknowledged transfers per second over the faults."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "chaos.json"
    json_path.write_text(json.dumps(summary, indent=1, sort_keys=True))
    events = summary["events"]
    stop_s = next(
        (e["time_s"] for e in events if e["kind"] == "faults-stop"), summary["duration_s"]
    )
    end_s = max([stop_s, *(e["time_s"] for e in events)])
    spans = _chaos_spans(events, end_s)
    figure, (acks, faults) = plt.subplots(
        2, 1, sharex=True, figsize=(FIGURE_WIDTH_IN, 2 * PANEL_HEIGHT_IN)
    )
    bins = max(1, int(end_s) + 1)
    acks.hist(summary["ack_times_s"], bins=bins, range=(0, bins))
    acks.set_ylabel("acknowledged /s")
    _shade_faults(acks, spans, end_s)
    _plot_faults(faults, spans, end_s)
    for axes in (acks, faults):
        axes.axvline(stop_s, color="black", linestyle="--", linewidth=0.8)
        for event in events:
            if event["kind"] == "converged":
                axes.axvline(event["time_s"], color="green", linestyle=":", linewidth=1)
    faults.set_xlabel("seconds; dashed: faults stop; dotted green: converged")
    figure.suptitle(
        f"chaos seed {summary['seed']}: {summary['nodes']} nodes, {summary['kills']} kills, "
        f"{summary['cuts']} cuts, {len(summary['violations'])} violations",
        fontsize=10,
    )
    figure.tight_layout()
    png_path = directory / "chaos.png"
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return [json_path, png_path]
