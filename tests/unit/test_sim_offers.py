"""The offers workload's spec, and its checkers failing on broken states.

The checkers read a real (short, fault-free) simulated mesh that traded offers;
each test breaks one thing in a node's state the way a bug would and expects
the checker to name it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from node.exchange_desk import decode_acceptance
from node.offers.take import SignedAcceptance
from node.payments.state import PaymentState
from node.wire import pack
from simulations.errors import SimulationError
from simulations.faults import FaultRates
from simulations.offers_check import (
    check_atomicity,
    check_books,
    check_no_overfill,
    spread_problems,
)
from simulations.options import SimulationOptions
from simulations.simulator import Simulation
from simulations.specs import OffersSpec, parse_topology, parse_workload
from simulations.violations import InvariantViolation

NO_FAULTS = FaultRates(loss=0.0, duplicate=0.0, delay_ms=(5, 50), partitions=0, crashes=0)


def test_offers_spec_round_trips_and_defaults_takes_to_the_rate() -> None:
    spec = parse_workload("offers:rate=5")
    assert spec == OffersSpec(rate=5.0, takes=5.0)
    assert parse_workload(str(spec)) == spec
    mixed = parse_workload("offers:rate=1,takes=4,cancel=0.5,customers=2,transfers=10")
    assert isinstance(mixed, OffersSpec)
    assert (mixed.takes, mixed.cancel, mixed.customers) == (4.0, 0.5, 2)
    assert mixed.transfer_spec.rate == 10.0


@pytest.mark.parametrize(
    "text",
    ["offers:rate=-1", "offers:cancel=2", "offers:customers=0", "offers:speed=3", "offers:takes=x"],
)
def test_bad_offers_specs_are_one_line_errors(text: str) -> None:
    with pytest.raises(SimulationError) as error:
        parse_workload(text)
    assert "\n" not in str(error.value) and "--workload" in str(error.value)


@pytest.fixture(scope="module")
def traded() -> Iterator[Simulation]:
    """Six nodes in a ring that made, cancelled and took offers for 30 s, then drained."""
    options = SimulationOptions(
        seed=3,
        nodes=6,
        topology=parse_topology("ring"),
        duration_ms=30_000,
        rates=NO_FAULTS,
        workload=parse_workload("offers:rate=3,takes=4,cancel=0.3"),
    )
    simulation = Simulation(options)
    result = simulation.run()
    assert result.violation is None, result.violation.render()
    counters = result.counters
    assert counters["exchanges_settled"] > 5 and counters["takes_same_bank"] > 2
    assert counters["offer_cancels"] > 0
    yield simulation


def _settled_exchange(simulation: Simulation) -> tuple[int, int, bytes]:
    """(taker's node, maker's node, take id) of an exchange that settled both legs."""
    for taker in simulation.nodes:
        assert taker.engine is not None
        for take_id, exchange in taker.engine.state.exchange.exchanges.items():
            if exchange.side == "taker" and exchange.state == "settled":
                maker = simulation.names.index(exchange.maker_validator)
                return taker.index, maker, take_id
    raise AssertionError("no settled exchange")


def test_a_credit_lost_on_one_side_is_an_exchange_settled_on_one_leg(
    traded: Simulation,
) -> None:
    taker, maker, take_id = _settled_exchange(traded)
    engine = traded.nodes[maker].engine
    assert engine is not None
    credits = engine.state.books._state.credits
    credit = (traded.names[taker], take_id.hex())
    assert credit in credits
    credits.discard(credit)
    try:
        with pytest.raises(InvariantViolation) as caught:
            check_atomicity(traded.nodes, traded.now_ms)
        assert caught.value.violation.invariant == "atomicity"
        assert "'maker_credited': False" in caught.value.violation.message
    finally:
        credits.add(credit)
    check_atomicity(traded.nodes, traded.now_ms)


def test_receipts_of_leg_a_are_checked_and_no_honest_maker_is_claimable(
    traded: Simulation,
) -> None:
    """Every settled exchange had M's receipt before leg B; without faults no
    taker's validator ends holding a claim. A receipt M never logged, or a leg B
    paid without one, is a violation."""
    assert check_atomicity(traded.nodes, traded.now_ms)["exchange_claims"] == 0
    taker, maker, take_id = _settled_exchange(traded)
    made = traded.nodes[maker].engine.state.exchange.exchanges[take_id]  # type: ignore[union-attr]
    kept = traded.nodes[taker].engine.state.exchange.exchanges[take_id]  # type: ignore[union-attr]
    receipt = made.held
    assert receipt is not None and kept.held == receipt
    flipped = receipt[:-1] + bytes([receipt[-1] ^ 1])
    for m_copy, t_copy, wanted in ((None, None, "without a receipt"), (receipt, flipped, "never")):
        made.held, kept.held = m_copy, t_copy
        try:
            with pytest.raises(InvariantViolation) as caught:
                check_atomicity(traded.nodes, traded.now_ms)
            assert caught.value.violation.invariant == "receipts"
            assert wanted in caught.value.violation.message
        finally:
            made.held = kept.held = receipt
    check_atomicity(traded.nodes, traded.now_ms)


def test_an_acceptance_the_makers_validator_forgot_is_caught(traded: Simulation) -> None:
    _, maker, take_id = _settled_exchange(traded)
    engine = traded.nodes[maker].engine
    assert engine is not None
    exchanges = engine.state.exchange.exchanges
    forgotten = exchanges.pop(take_id)
    try:
        with pytest.raises(InvariantViolation) as caught:
            check_no_overfill(traded.nodes, traded.now_ms)
        assert caught.value.violation.invariant == "overfill"
        assert "never logged" in caught.value.violation.message
    finally:
        exchanges[take_id] = forgotten


def test_acceptances_beyond_the_offer_are_an_overfill(traded: Simulation) -> None:
    _, maker, take_id = _settled_exchange(traded)
    engine = traded.nodes[maker].engine
    assert engine is not None
    exchanges = engine.state.exchange.exchanges
    original = exchanges[take_id]
    # The same acceptance again under other take ids: as if M had signed it many times.
    signed = decode_acceptance(original.acceptance or b"")
    view = engine.state.books.offer(signed.acceptance.offer_id)
    assert view is not None
    times = view.offer.sell_amount // signed.acceptance.amount + 1
    copies = [bytes([n % 256, n // 256]) * 16 for n in range(1, times + 1)]
    for fake_id in copies:
        acceptance = dataclasses.replace(signed.acceptance, take_id=fake_id)
        encoded = pack(SignedAcceptance(acceptance, signed.signature).to_wire())
        exchanges[fake_id] = dataclasses.replace(original, acceptance=encoded)
    try:
        with pytest.raises(InvariantViolation) as caught:
            check_no_overfill(traded.nodes, traded.now_ms)
        assert caught.value.violation.invariant == "overfill"
        assert "acceptances" in caught.value.violation.message
    finally:
        for fake_id in copies:
            del exchanges[fake_id]
    check_no_overfill(traded.nodes, traded.now_ms)


def test_held_money_counted_twice_breaks_a_nodes_conservation(traded: Simulation) -> None:
    node = traded.nodes[0]
    assert node.engine is not None
    held = node.engine.state.books._state.held
    uai = f"{node.name}/USD"
    held[uai] = held.get(uai, 0) + 1
    try:
        with pytest.raises(InvariantViolation) as caught:
            check_books(node, traded.now_ms)
        assert caught.value.violation.invariant == "offers-conservation"
        assert uai in caught.value.violation.message
    finally:
        held[uai] -= 1
    check_books(node, traded.now_ms)


def test_a_live_offer_missing_from_a_book_is_reported(traded: Simulation) -> None:
    reach = traded.offers.reach if traded.offers is not None else []
    assert spread_problems(traded.nodes, reach, traded.now_ms, 0) == []
    for maker in traded.nodes:
        assert maker.engine is not None
        live = [
            view
            for view in maker.engine.state.books.open_offers()
            if view.left > 0 and view.offer.expires_ms > 1_800_000_000_000 + traded.now_ms
        ]
        if live:
            break
    else:
        raise AssertionError("no live offer left")
    far = traded.nodes[reach[maker.index][-1]]
    assert far.engine is not None
    book = far.engine.offers.book
    entry = book.get(live[0].offer_id)
    assert entry is not None
    book.remove(live[0].offer_id)
    try:
        problems = spread_problems(traded.nodes, reach, traded.now_ms, 0)
        assert problems == [
            f"{far.name}: offer {live[0].offer_id.hex()[:16]} of {maker.name} "
            f"(left {live[0].left}) missing"
        ]
    finally:
        book.put(entry, traded.now_ms)


def test_legs_that_retention_forgot_are_still_checked(traded: Simulation) -> None:
    """In a long run the makers' validators forget ended legs B (retention keeps
    their outcomes only): the checker reads those, so an honest maker is still
    not claimable, and a leg B paid without a receipt is still caught."""
    taker, maker, take_id = _settled_exchange(traded)
    kept: dict[int, PaymentState] = {}
    for node in traded.nodes:
        assert node.engine is not None
        kept[node.index] = node.engine.state.payments
        forgetful = PaymentState(1)  # what a node keeping one ended payment would hold
        for record in kept[node.index].snapshot_records():
            forgetful.apply(record)
        node.engine.state.payments = forgetful
    try:
        made = traded.nodes[maker].engine.state.exchange.exchanges[take_id]  # type: ignore[union-attr]
        payments = traded.nodes[maker].engine.state.payments  # type: ignore[union-attr]
        assert made.terms.payment_id not in payments.payments  # leg B: forgotten
        assert payments.outcome(made.terms.payment_id) is not None
        assert check_atomicity(traded.nodes, traded.now_ms)["exchange_claims"] == 0
        copy = traded.nodes[taker].engine.state.exchange.exchanges[take_id]  # type: ignore[union-attr]
        receipt = made.held
        made.held = copy.held = None
        try:
            with pytest.raises(InvariantViolation) as caught:
                check_atomicity(traded.nodes, traded.now_ms)
            assert "without a receipt" in caught.value.violation.message
        finally:
            made.held = copy.held = receipt
    finally:
        for node in traded.nodes:
            node.engine.state.payments = kept[node.index]  # type: ignore[union-attr]
