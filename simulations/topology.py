"""Which nodes trust which: the links of a simulated or real mesh.

Rules:
- Links are undirected pairs ``(a, b)`` with ``a < b`` of node indices, sorted,
  so the same spec, node count and seed always give the same list.
- Every topology is connected: ``random:degree=K`` starts from a ring through a
  seeded permutation of the nodes, then adds seeded random links until the
  average degree is K (or the mesh is full).
- Pure: randomness is the ``rng`` argument.
"""

from __future__ import annotations

import random

from simulations.errors import SimulationError
from simulations.specs import TopologySpec

NODES_MIN = 2
NODES_MAX = 1_000

Link = tuple[int, int]


def _pair(a: int, b: int) -> Link:
    return (a, b) if a < b else (b, a)


def build_links(spec: TopologySpec, nodes: int, rng: random.Random) -> list[Link]:
    """The links of ``nodes`` nodes arranged as ``spec``."""
    if not NODES_MIN <= nodes <= NODES_MAX:
        raise SimulationError(f"--nodes must be {NODES_MIN}..{NODES_MAX}, not {nodes}")
    links: set[Link] = set()
    if spec.kind in ("ring", "line"):
        links.update(_pair(i, i + 1) for i in range(nodes - 1))
        if spec.kind == "ring" and nodes > 2:
            links.add(_pair(nodes - 1, 0))
    elif spec.kind == "full":
        links.update((a, b) for a in range(nodes) for b in range(a + 1, nodes))
    elif spec.kind == "star":
        links.update((0, b) for b in range(1, nodes))
    else:
        links = _random_links(nodes, spec.degree, rng)
    return sorted(links)


def _random_links(nodes: int, degree: int, rng: random.Random) -> set[Link]:
    order = list(range(nodes))
    rng.shuffle(order)
    links = {_pair(order[i], order[(i + 1) % nodes]) for i in range(nodes)} if nodes > 2 else set()
    if nodes == 2:
        links.add((0, 1))
    wanted = min(nodes * degree // 2, nodes * (nodes - 1) // 2)
    while len(links) < wanted:
        a, b = rng.sample(range(nodes), 2)
        links.add(_pair(a, b))
    return links


def neighbours(links: list[Link], nodes: int) -> list[list[int]]:
    """For each node, the sorted indices of the nodes it has a link with."""
    result: list[list[int]] = [[] for _ in range(nodes)]
    for a, b in links:
        result[a].append(b)
        result[b].append(a)
    return [sorted(items) for items in result]
