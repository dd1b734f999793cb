"""What people type for the simulator, topologies and fault plans: parsed, or refused clearly."""

from __future__ import annotations

import random

import pytest

from simulations.errors import SimulationError
from simulations.faults import FaultRates, draw_rates, plan_faults
from simulations.specs import (
    TopologySpec,
    parse_delay_ms,
    parse_duration_ms,
    parse_seed_range,
    parse_topology,
    parse_workload,
)
from simulations.topology import build_links, neighbours


def test_durations_and_delays_in_the_units_people_type() -> None:
    assert parse_duration_ms("3600", "--duration") == 3_600_000
    assert parse_duration_ms("90s", "--duration") == 90_000
    assert parse_duration_ms("250ms", "--duration") == 250
    assert parse_duration_ms("1h", "--duration") == 3_600_000
    assert parse_delay_ms("5..200ms") == (5, 200)
    assert parse_delay_ms("1..2s") == (1_000, 2_000)
    assert parse_delay_ms("50ms") == (50, 50)
    assert parse_seed_range("1..500") == list(range(1, 501))
    assert parse_seed_range("7") == [7]


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (lambda text: parse_duration_ms(text, "--duration"), "soon"),
        (parse_delay_ms, "200..5ms"),
        (parse_seed_range, "9..1"),
        (parse_topology, "mesh"),
        (parse_topology, "random:degree=1"),
        (parse_topology, "ring:degree=3"),
        (parse_workload, "payments:rate=3"),
        (parse_workload, "transfers:rate=fast"),
        (parse_workload, "transfers:conditional=0.8,unknown=0.5"),
    ],
)
def test_bad_input_is_one_clear_error(parser, text: str) -> None:
    with pytest.raises(SimulationError) as raised:
        parser(text)
    assert text.split(":")[0].split("..")[0] in str(raised.value) or "--" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_workload_spec_round_trips_through_its_text() -> None:
    spec = parse_workload("transfers:rate=200")
    assert spec.rate == 200
    assert parse_workload(str(spec)) == spec


@pytest.mark.parametrize("text", ["ring", "line", "full", "star", "random:degree=4"])
def test_every_topology_is_connected_and_seeded(text: str) -> None:
    spec = parse_topology(text)
    links = build_links(spec, 12, random.Random(3))
    assert links == build_links(spec, 12, random.Random(3))
    reached, frontier = {0}, [0]
    adjacency = neighbours(links, 12)
    while frontier:
        for peer in adjacency[frontier.pop()]:
            if peer not in reached:
                reached.add(peer)
                frontier.append(peer)
    assert reached == set(range(12))
    assert all(a < b for a, b in links)


def test_random_topology_has_the_asked_degree() -> None:
    links = build_links(TopologySpec("random", 4), 50, random.Random(7))
    assert len(links) == 50 * 4 // 2


def test_fault_plans_are_fixed_by_the_seed_and_end_within_the_run() -> None:
    links = build_links(TopologySpec("random", 3), 10, random.Random(1))
    rates = FaultRates(0.1, 0.05, (5, 200), partitions=6, crashes=8)
    plan = plan_faults(rates, 10, links, 60_000, random.Random(5))
    assert plan == plan_faults(rates, 10, links, 60_000, random.Random(5))
    assert plan != plan_faults(rates, 10, links, 60_000, random.Random(6))
    assert len(plan.partitions) == 6 and len(plan.crashes) == 8
    for partition in plan.partitions:
        assert 0 <= partition.start_ms < partition.end_ms <= 60_000
        assert partition.cut
    assert all(0 <= crash.at_ms < 60_000 for crash in plan.crashes)


def test_swarm_rates_are_drawn_per_seed_within_the_maxima() -> None:
    maxima = FaultRates(0.3, 0.2, (50, 300), partitions=3, crashes=5)
    drawn = [draw_rates(seed, maxima) for seed in range(1, 50)]
    assert drawn[0] == draw_rates(1, maxima)
    assert len(set(drawn)) > 40
    for rates in drawn:
        assert 0 <= rates.loss <= 0.3 and 0 <= rates.duplicate <= 0.2
        assert rates.delay_ms[0] <= rates.delay_ms[1] <= 300
        assert rates.partitions <= 3 and rates.crashes <= 5
