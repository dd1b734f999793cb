"""Payments across a mesh of payment cores over real SNAP ledgers: 1-3 hops, refusals."""

from __future__ import annotations

from node.payments.events import PaymentStatus
from tests.unit.test_payments_support import Mesh, domain

LINE = [("a", "b", 10_000), ("b", "c", 10_000), ("c", "d", 10_000)]


def test_one_hop_payment_settles_without_fee() -> None:
    mesh = Mesh([("a", "b", 10_000)])
    mesh.pay("a", "b", 500)
    mesh.settle(5)
    notice = mesh.last("a")
    assert notice.status is PaymentStatus.SUCCEEDED and notice.fee == 0
    assert notice.preimage is not None and notice.hold_id == "hold-p1"
    assert (mesh.net("a"), mesh.net("b")) == (-500, 500)


def test_three_hops_settle_on_every_ledger_and_fees_add_up() -> None:
    mesh = Mesh(LINE)
    mesh.pay("a", "d", 1_000)
    mesh.settle(5)
    notice = mesh.last("a")
    assert notice.status is PaymentStatus.SUCCEEDED
    assert [hop.domain for hop in notice.paths[0]] == [domain(n) for n in "bcd"]
    assert notice.fee == 3 + 4  # c: 2 + 1000 ppm of 1000 (rounded up); b: of 1003
    assert mesh.net("d") == 1_000 and mesh.net("a") == -1_000 - notice.fee
    assert mesh.net("b") == 4 and mesh.net("c") == 3
    assert mesh.pending() == 0
    expiries = [hop.expires_at_ms for hop in notice.paths[0]]
    assert expiries[0] - expiries[1] == expiries[1] - expiries[2] == 20_000


def test_same_payment_id_never_pays_twice() -> None:
    mesh = Mesh(LINE)
    mesh.pay("a", "d", 100)
    mesh.settle(3)
    mesh.pay("a", "d", 100)
    mesh.settle(3)
    assert mesh.net("d") == 100
    assert mesh.last("a").status is PaymentStatus.SUCCEEDED


def test_unknown_payee_fails_with_its_reason() -> None:
    mesh = Mesh(LINE)
    node = mesh.nodes[domain("a")]
    from node.payments.events import ActionPay

    mesh.feed(
        node,
        ActionPay("x", "nobody@d.test", domain("d"), 5, "1E-2 USD", 10, mesh.now_ms + 60_000, None),
    )
    mesh.settle(3)
    assert mesh.last("a").status is PaymentStatus.FAILED
    assert mesh.last("a").reason == "unknown-payee"


def test_unknown_domain_and_no_route() -> None:
    mesh = Mesh(LINE)
    mesh.pay("a", "zz", 5)
    assert mesh.last("a").reason == "unknown-payee"


def test_fee_above_max_fails_before_anything_is_proposed() -> None:
    mesh = Mesh(LINE)
    mesh.pay("a", "d", 1_000, max_fee=5)
    mesh.settle(3)
    assert mesh.last("a").status is PaymentStatus.FAILED
    assert mesh.last("a").reason == "fee-too-high"
    assert mesh.net("a") == 0


def test_diamond_retries_around_a_hop_without_credit() -> None:
    # a-b-d and a-c-d; the graph believes b-d is big, but d extends b little
    mesh = Mesh([("a", "b", 10_000), ("b", "d", 10_000), ("a", "c", 10_000), ("c", "d", 10_000)])
    mesh.nodes[domain("d")].peers[domain("b")] = 50  # d's real limit towards b
    mesh.nodes[domain("d")].ledgers[domain("b")].set_units({"1E-2 USD": 50})
    mesh.pay("a", "d", 1_000)
    mesh.settle(5)
    notice = mesh.last("a")
    assert notice.status is PaymentStatus.SUCCEEDED
    assert mesh.net("d") == 1_000 and mesh.net("b") == 0 and mesh.pending() == 0


def test_multipath_when_no_single_path_carries_the_amount() -> None:
    mesh = Mesh([("a", "b", 600), ("b", "d", 600), ("a", "c", 600), ("c", "d", 600)])
    mesh.pay("a", "d", 1_000, max_fee=100)
    mesh.settle(5)
    notice = mesh.last("a")
    assert notice.status is PaymentStatus.SUCCEEDED
    assert len(notice.paths) == 2
    assert mesh.net("d") == 1_000 and mesh.net("a") == -1_000 - notice.fee


def test_insufficient_credit_everywhere_fails_and_releases() -> None:
    mesh = Mesh([("a", "b", 100), ("b", "c", 100)])
    mesh.pay("a", "c", 1_000)
    mesh.settle(3)
    assert mesh.last("a").status is PaymentStatus.FAILED
    assert mesh.last("a").reason == "insufficient-credit"
    assert mesh.pending() == 0


def test_middle_hop_crash_after_forwarding_settles_everywhere() -> None:
    mesh = Mesh(LINE)
    mesh.pay("a", "d", 1_000)
    for _ in range(40):  # until c has forwarded to d
        if not mesh.wire:
            break
        sender, receiver, message = mesh.wire.popleft()
        mesh.wire.appendleft((sender, receiver, message))
        if sender == domain("c") and type(message).__name__ == "Propose":
            break
        mesh.deliver_one()
    assert mesh.nodes[domain("c")].core.state.open_refs() == [0]  # forwarded, no preimage yet
    mesh.wire.clear()  # the crash loses what was in flight
    mesh.crash("c")
    mesh.settle(10)
    assert mesh.last("a").status is PaymentStatus.SUCCEEDED
    assert [mesh.net(n) for n in "abcd"] == [-1_007, 4, 3, 1_000]
