"""A small real chaos run: node processes over real QUIC, through fault-injecting UDP relays,
SIGKILLed and restarted, links cut and healed; then every node's own view must agree.

What a bank's engineer needs to be true after all that: every transfer a node
acknowledged is final at both ends with the same outcome, both sides of every
link see the same balances, value is conserved, and every log verifies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_simulation import run_cli

pytestmark = pytest.mark.slow


def test_a_small_real_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    summary = run_cli(
        "chaos",
        "--nodes", "3",
        "--topology", "ring",
        "--duration", "14",
        "--kill-every", "3s",
        "--cut-links", "0.2",
        "--loss", "0.05",
        "--duplicate", "0.02",
        "--seed", "3",
        "--rate", "10",
        "--dir", str(tmp_path / "mesh"),
        "--report", str(tmp_path / "report"),
    )  # fmt: skip
    assert summary["violations"] == []
    # The faults happened...
    assert summary["kills"] >= 2
    assert summary["datagrams_lost"] > 0 and summary["datagrams_forwarded"] > 100
    # ...and the mesh kept working through them, then settled everything.
    assert summary["transfers_acknowledged"] > 30
    assert summary["transfers_settled"] == summary["transfers_acknowledged"]
    assert summary["converge_s_after_last_fault"] is not None
    report = json.loads((tmp_path / "report" / "chaos.json").read_text())
    assert [event["kind"] for event in report["events"]].count("kill") == summary["kills"]
    assert (tmp_path / "report" / "chaos.png").stat().st_size > 10_000
    assert (tmp_path / "mesh" / "mesh.json").exists()
