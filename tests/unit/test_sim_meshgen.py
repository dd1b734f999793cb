"""``ledgermesh mesh generate``: node directories a person can start by hand."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from node.config import load_config
from simulations.errors import SimulationError
from simulations.meshgen import generate_mesh, parse_limits
from simulations.specs import parse_topology
from tests.integration.test_simulation import run_cli


def test_generate_writes_keys_configs_and_the_trust_of_every_link(tmp_path: Path) -> None:
    result = run_cli("mesh", "generate", str(tmp_path), "--nodes", "4", "--base-port", "7700")
    assert result["links"] == 4
    assert result["start"][0] == f"ledgermesh run {tmp_path / 'bank-00.test'} &"
    configs = [load_config(tmp_path / f"bank-{index:02d}.test") for index in range(4)]
    for index, config in enumerate(configs):
        assert config.listen == ("127.0.0.1", 7700 + index)
        assert len(config.peers) == 2  # a ring
        for peer in config.peers:
            other = next(c for c in configs if c.public_key == peer.public_key)
            assert peer.address == other.listen
            assert peer.limits == {"1E-2 USD": 10_000_000_000}
            assert other.peer_by_key(config.public_key) is not None  # trust both ways
        for key_file in ("node.key", "operator.key"):
            mode = (tmp_path / config.name / key_file).stat().st_mode
            assert not mode & (stat.S_IRWXG | stat.S_IRWXO)
    mesh = json.loads((tmp_path / "mesh.json").read_text())
    assert [node["name"] for node in mesh["nodes"]] == [c.name for c in configs]


def test_generate_refuses_to_overwrite_a_node(tmp_path: Path) -> None:
    listen = [("127.0.0.1", 7800), ("127.0.0.1", 7801)]
    generate_mesh(tmp_path, 2, parse_topology("line"), seed=1, listen=listen, limits={})
    with pytest.raises(SimulationError):
        generate_mesh(tmp_path, 2, parse_topology("line"), seed=1, listen=listen, limits={})


def test_limits_are_typed_in_the_currency() -> None:
    assert parse_limits(["USD=12.50", "EUR=3"]) == {"1E-2 USD": 1250, "1E-2 EUR": 300}
    with pytest.raises(SimulationError):
        parse_limits(["USD"])
