"""``ledgermesh mesh generate``: the directories of a mesh of real nodes, ready to start.

Rules:
- Each node gets what ``ledgermesh init`` makes (node key, operator key, both
  0600, ``node.toml``, ``log/``) and one ``[[peers]]`` entry per link of the
  topology, both ways, with the given credit limits. Keys come from the
  operating system's randomness: these are real nodes.
- Where a node dials a peer is ``peer_address(node, peer)``: by default the
  peer's own listen address; the chaos run points it at a fault-injecting
  relay instead.
- ``mesh.json`` in the mesh directory lists the nodes (name, directory,
  listen address, public key) and the links, for people and for tools.
- Refuses to write over an existing node directory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node import units
from node.config import (
    CONFIG_FILE,
    KEY_FILE,
    LOG_DIRECTORY,
    OPERATOR_KEY_FILE,
    NodeConfig,
    PeerConfig,
    save_config,
)
from node.crypto import generate_key, write_key_file
from simulations.errors import SimulationError
from simulations.specs import TopologySpec
from simulations.topology import Link, build_links, neighbours

MESH_FILE = "mesh.json"
DEFAULT_LIMITS = ("USD=100000000.00",)
BASE_PORT_DEFAULT = 7400

Address = tuple[str, int]


@dataclass(frozen=True)
class MeshNode:
    name: str
    directory: Path
    listen: Address
    public_key: bytes


@dataclass(frozen=True)
class Mesh:
    directory: Path
    nodes: list[MeshNode]
    links: list[Link]

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "nodes": [
                {
                    "name": node.name,
                    "dir": str(node.directory),
                    "listen": f"{node.listen[0]}:{node.listen[1]}",
                    "public_key": node.public_key.hex(),
                }
                for node in self.nodes
            ],
            "links": [[self.nodes[a].name, self.nodes[b].name] for a, b in self.links],
        }


def parse_limits(texts: list[str]) -> dict[str, int]:
    """``USD=1000.00`` -> {"1E-2 USD": 100000}."""
    limits: dict[str, int] = {}
    for text in texts:
        unit_text, separator, amount_text = text.rpartition("=")
        if not separator:
            raise SimulationError(f"--limit {text!r} is not UNIT=AMOUNT (e.g. USD=1000.00)")
        try:
            unit = units.normalize_unit(unit_text)
            limits[unit] = units.parse_amount(amount_text, unit)
        except units.AmountError as error:
            raise SimulationError(f"--limit {text!r}: {error}") from None
    return limits


def node_name(index: int) -> str:
    return f"bank-{index:02d}.test"


def generate_mesh(
    directory: Path,
    nodes: int,
    topology: TopologySpec,
    *,
    seed: int,
    listen: list[Address],
    limits: dict[str, int],
    peer_address: Callable[[int, int], Address] | None = None,
) -> Mesh:
    """Write the node directories and ``mesh.json``; return what was written."""
    assert len(listen) == nodes
    links = build_links(topology, nodes, random.Random(f"ledgermesh-mesh/{seed}"))
    adjacency = neighbours(links, nodes)
    names = [node_name(index) for index in range(nodes)]
    directories = [directory / name for name in names]
    for path in directories:
        if (path / CONFIG_FILE).exists():
            raise SimulationError(f"{path} already holds a node; choose an empty directory")
    keys = [generate_key() for _ in range(nodes)]
    address = peer_address or (lambda _node, peer: listen[peer])
    for index, path in enumerate(directories):
        path.mkdir(parents=True, exist_ok=True)
        (path / LOG_DIRECTORY).mkdir(exist_ok=True)
        write_key_file(path / KEY_FILE, keys[index])
        operator = generate_key()
        write_key_file(path / OPERATOR_KEY_FILE, operator)
        peers = tuple(
            PeerConfig(names[peer], keys[peer].public_key, address(index, peer), dict(limits))
            for peer in adjacency[index]
        )
        config = NodeConfig(
            names[index], listen[index], keys[index].public_key, operator.public_key, peers
        )
        save_config(path, config)
    mesh = Mesh(
        directory,
        [MeshNode(names[i], directories[i], listen[i], keys[i].public_key) for i in range(nodes)],
        links,
    )
    (directory / MESH_FILE).write_text(json.dumps(mesh.to_json(), indent=1) + "\n")
    return mesh


def start_instructions(mesh: Mesh) -> list[str]:
    """The commands that start the mesh by hand and look at it."""
    lines = [f"ledgermesh run {node.directory} &" for node in mesh.nodes]
    first = mesh.nodes[0].directory
    lines += [f"ledgermesh peers {first}", f"ledgermesh status {first}"]
    return lines
