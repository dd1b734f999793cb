"""When a node snapshots: later as its snapshot grows, never above the limit."""

from __future__ import annotations

import random

import pytest

import node.engine
from node.api.protocol import Request, encode_request
from node.config import NodeConfig
from node.net.base import Received
from simulations.options import OPERATOR_KEY, node_key
from simulations.simnode import SimNode


def started_node() -> SimNode:
    key = node_key(0)
    config = NodeConfig("bank-a.test", ("sim", 0), key.public_key, OPERATOR_KEY.public_key, ())
    sim_node = SimNode(0, config, key, [], random.Random("snapshots"))
    sim_node.start(0, lambda: [], lambda: 0.0)
    return sim_node


def test_the_next_snapshot_waits_longer_the_bigger_this_one_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node.engine, "SNAPSHOT_EVERY_RECORDS", 1)
    monkeypatch.setattr(node.engine, "SNAPSHOT_BYTES_PER_RECORD", 10)
    engine = started_node().engine
    assert engine is not None
    engine.write_snapshot()
    size = len(engine.state.to_snapshot())
    assert size > 100
    assert engine.snapshot_every_records == size // 10
    engine.records_since_snapshot = size // 10 - 1
    assert not engine.snapshot_due()
    engine.records_since_snapshot += 1
    assert engine.snapshot_due()


def define_asset(engine: node.engine.NodeEngine, code: str) -> None:
    """An operator request that logs a record, answered once durable."""
    request = Request(1, "asset_define", {"code": code, "decimals": 2})
    decisions = engine.decide(
        [Received(OPERATOR_KEY.public_key, encode_request(request))], 0, tick=False
    )
    engine.sync()
    assert engine.outgoing(decisions), "answered"


def test_a_snapshot_above_the_limit_is_skipped_and_the_node_recovers_from_its_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim_node = started_node()
    engine = sim_node.engine
    assert engine is not None
    define_asset(engine, "USD")
    engine.write_snapshot()  # under the limit
    first_lsn = engine.snapshot_lsn
    define_asset(engine, "EUR")
    monkeypatch.setattr(node.engine, "SNAPSHOT_BYTES_MAX", 10)
    engine.write_snapshot()  # too big now: skipped, and the node goes on
    assert engine.snapshots_skipped == 1
    assert engine.snapshot_lsn == first_lsn
    define_asset(engine, "GBP")
    assets = sorted(row["uai"] for row in engine.accounts.assets())
    # A restart rebuilds the same books from the old snapshot and every record since.
    sim_node.crash("idle")
    sim_node.start(0, lambda: [], lambda: 0.0)
    assert sim_node.engine is not None
    assert sorted(row["uai"] for row in sim_node.engine.accounts.assets()) == assets
    assert assets == ["bank-a.test/EUR", "bank-a.test/GBP", "bank-a.test/USD"]
