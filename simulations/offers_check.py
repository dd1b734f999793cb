"""The invariants of exchange offers, checked on the nodes' own state.

Rules:
- Conservation (per node, every OFFER_CHECK_INTERVAL_MS and at the end): per
  asset of the node's Books, what is outstanding equals every user's balance
  plus what open holds keep plus what open reservations keep; the Books'
  ``held`` and ``reserved`` equal the sums over the open holds and offers;
  the validator's own books balance is minus what is outstanding; no user
  balance is negative.
- No overfill (at the end): at the maker's validator, per offer, the
  same-bank takes and the carved fills on the maker's chain add up to at
  most the offer's amount, and so do the same-bank takes plus the
  acceptances it signed (its ``accept`` records, and every acceptance a
  taker's validator holds: each must be one the maker's validator logged).
- Atomicity (at the end, once every exchange ended): a take across
  validators settles both legs or neither. Both: the taker credited at T
  (leg B) and the maker credited at M (leg A), the taker's hold and the
  carved hold settled. Neither: no credit on either side, the taker's hold
  released, the carved hold (if any) released.
- Receipts (at the end): M logged its receipt of leg A before leg B went out
  (every maker-side exchange whose leg B succeeded, is pending or had a part
  accepted has one; a leg B refused in the pass that started it has none, by
  design), and a
  receipt the taker's validator holds is the very one M logged. A failed
  exchange whose taker holds a receipt while M never learned the secret is
  a claim the taker could make against an M that followed the protocol
  (leg B failed after the receipt): counted (``exchange_claims``), not a
  violation.
- Spread (after the drain, within OFFER_SPREAD_BOUND_MS): every live offer
  (open at its maker's validator, something left, not expiring soon) is in
  the order book of every node its validator's trust reaches (at most
  TRUST_HOPS_MAX links away), with what is left; a closed or fully carved
  offer is in nobody's book.
- Checks read the engines' state and never change it. A failure raises
  ``InvariantViolation`` (``spread_problems`` returns them, for polling).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import NoReturn

from node.engine import NodeEngine
from node.exchange_desk import decode_acceptance
from node.exchange_state import Exchange
from node.ledger.codec import domain_of
from node.ledger.signed import OfferFill, Take
from node.payments.events import PaymentStatus
from simulations.limits import EPOCH_MS
from simulations.simnode import SimNode
from simulations.violations import InvariantViolation, Violation


def _fail(invariant: str, message: str, nodes: tuple[str, ...], time_ms: int) -> NoReturn:
    raise InvariantViolation(Violation(invariant, message, nodes, time_ms))


def _engine(node: SimNode) -> NodeEngine:
    assert node.engine is not None, f"{node.name} is down"
    return node.engine


# --- conservation --------------------------------------------------------------------------


def check_books(node: SimNode, time_ms: int) -> None:
    books = _engine(node).state.books
    users: dict[str, int] = defaultdict(int)
    for address in books.addresses():
        for uai, balance in books.balances(address).items():
            if balance < 0:
                _fail(
                    "offers-conservation", f"{address} holds {balance} {uai}", (node.name,), time_ms
                )
            users[uai] += balance
    held: dict[str, int] = defaultdict(int)
    for hold in books.open_holds():
        held[hold.transfer.uai] += hold.transfer.held
    reserved: dict[str, int] = defaultdict(int)
    for view in books.open_offers():
        reserved[view.offer.sell_uai] += view.left + view.fee_left
    own = books.balances(node.name)
    for uai, totals in sorted(books.totals().items()):
        sums = (users[uai] + held[uai] + reserved[uai], held[uai], reserved[uai], -own.get(uai, 0))
        kept = (totals.outstanding, totals.held, totals.reserved, totals.outstanding)
        if sums != kept:
            _fail(
                "offers-conservation",
                f"{uai}: users + held + reserved, held, reserved, -books = {sums}, "
                f"but outstanding, held, reserved, outstanding = {kept}",
                (node.name,),
                time_ms,
            )


# --- no overfill ----------------------------------------------------------------------------


def _exchanges(node: SimNode, side: str) -> Iterator[Exchange]:
    for exchange in _engine(node).state.exchange.exchanges.values():
        if exchange.side == side:
            yield exchange


def _fills_on_chains(node: SimNode) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Per offer of ``node``'s customers: (same-bank takes, carved fills) on the makers' chains."""
    books = _engine(node).state.books
    takes: dict[bytes, int] = defaultdict(int)
    fills: dict[bytes, int] = defaultdict(int)
    for address in books.addresses():
        for entry in books.chain_file(address).entries:
            instruction = entry.body.instruction.instruction
            if isinstance(instruction, Take) and instruction.maker == address:
                takes[instruction.offer_id] += instruction.amount
            elif isinstance(instruction, OfferFill) and instruction.maker == address:
                fills[instruction.offer_id] += instruction.amount
    return takes, fills


def check_no_overfill(nodes: list[SimNode], time_ms: int) -> None:
    accepted: dict[bytes, dict[bytes, int]] = defaultdict(dict)  # offer -> take -> amount
    logged: set[bytes] = set()  # take ids the makers' validators logged acceptances for
    for node in nodes:
        for exchange in _exchanges(node, "maker"):
            assert exchange.acceptance is not None
            acceptance = decode_acceptance(exchange.acceptance).acceptance
            accepted[acceptance.offer_id][acceptance.take_id] = acceptance.amount
            logged.add(acceptance.take_id)
    for node in nodes:
        for exchange in _exchanges(node, "taker"):
            if exchange.acceptance is None:
                continue
            acceptance = decode_acceptance(exchange.acceptance).acceptance
            if acceptance.take_id not in logged:
                _fail(
                    "overfill",
                    f"{node.name} holds an acceptance of take {acceptance.take_id.hex()[:16]} "
                    f"that {exchange.maker_validator} never logged",
                    (node.name, exchange.maker_validator),
                    time_ms,
                )
    for node in nodes:
        books = _engine(node).state.books
        takes, fills = _fills_on_chains(node)
        for offer_id in books.offer_ids():
            view = books.offer(offer_id)
            assert view is not None
            amount = view.offer.sell_amount
            signed = sum(accepted[offer_id].values())
            if takes[offer_id] + fills[offer_id] > amount or takes[offer_id] + signed > amount:
                _fail(
                    "overfill",
                    f"offer {offer_id.hex()[:16]} of {amount}: same-bank takes "
                    f"{takes[offer_id]}, carved fills {fills[offer_id]}, acceptances {signed}",
                    (node.name,),
                    time_ms,
                )


# --- atomicity ------------------------------------------------------------------------------


def open_exchanges(nodes: list[SimNode]) -> list[str]:
    """Exchanges not ended yet, and open exchange holds, as "node: what" lines."""
    stuck = []
    for node in nodes:
        engine = _engine(node)
        for exchange in engine.state.exchange.open_exchanges():
            stuck.append(f"{node.name}: {exchange.side} exchange {exchange.terms.payment_id[:16]}")
        for hold in engine.state.books.open_holds():
            if hold.kind in ("take", "offer-fill"):
                stuck.append(f"{node.name}: open {hold.kind} hold {hold.transfer.payment_id[:16]}")
    return stuck


def _legs(taker: SimNode, maker: SimNode, take: Take) -> dict[str, object]:
    """What each side shows of one exchange: credits and the two holds' statuses."""
    t_books, m_books = _engine(taker).state.books, _engine(maker).state.books
    payment_id = take.payment_id
    t_hold = t_books.hold(take.taker, payment_id)
    m_hold = m_books.hold(take.maker, payment_id)
    return {
        "taker_credited": t_books.credited(maker.name, payment_id),
        "maker_credited": m_books.credited(taker.name, payment_id),
        "taker_hold": None if t_hold is None else t_hold.status,
        "carved_hold": None if m_hold is None else m_hold.status,
    }


BOTH = {
    "taker_credited": True,
    "maker_credited": True,
    "taker_hold": "settled",
    "carved_hold": "settled",
}


def check_atomicity(nodes: list[SimNode], time_ms: int) -> dict[str, int]:
    """Every take across validators settled on both legs or on none; returns the outcomes."""
    by_name = {node.name: node for node in nodes}
    outcomes = {
        "exchanges_settled": 0,
        "exchanges_failed": 0,
        "exchanges_refused": 0,
        "exchange_claims": 0,
    }
    for taker in nodes:
        for exchange in _exchanges(taker, "taker"):
            take = exchange.terms
            maker = by_name[exchange.maker_validator]
            legs = _legs(taker, maker, take)
            outcomes["exchange_claims"] += _receipt_claim(exchange, maker, time_ms)
            neither = (
                not legs["taker_credited"]
                and not legs["maker_credited"]
                and legs["taker_hold"] == "released"
                and legs["carved_hold"] in (None, "released")
            )
            if legs == BOTH:
                outcomes["exchanges_settled"] += 1
            elif neither:
                refused = legs["carved_hold"] is None
                outcomes["exchanges_refused" if refused else "exchanges_failed"] += 1
            else:
                _fail(
                    "atomicity",
                    f"take {take.payment_id[:16]} of offer {take.offer_id.hex()[:16]} "
                    f"({exchange.state} at {taker.name}): {legs}",
                    (taker.name, maker.name),
                    time_ms,
                )
    for maker in nodes:
        for exchange in _exchanges(maker, "maker"):
            take = exchange.terms
            taker_name = domain_of(take.taker)
            if _leg_b_went_out(maker, take) and exchange.held is None:
                _fail(
                    "receipts",
                    f"{maker.name} paid leg B of take {take.payment_id[:16]} without a "
                    "receipt of leg A in its log",
                    (maker.name,),
                    time_ms,
                )
            if take.take_id not in _engine(by_name[taker_name]).state.exchange.exchanges:
                _fail(
                    "atomicity",
                    f"{maker.name} accepted take {take.payment_id[:16]} that {taker_name} "
                    "holds no record of",
                    (maker.name, taker_name),
                    time_ms,
                )
    return outcomes


def _leg_b_went_out(maker: SimNode, take: Take) -> bool:
    """Leg B did not fail in the pass that started it: it succeeded, is still
    going, or got a part accepted. (One refused at once, with no receipt, is the
    protocol: nothing was promised.)"""
    payments = _engine(maker).state.payments
    leg_b = payments.payments.get(take.payment_id)
    if leg_b is None:
        # Forgotten after it ended (retention): a success went out; a failure's
        # parts are gone with it, so it is not held to having a receipt.
        outcome = payments.outcome(take.payment_id)
        return outcome is not None and outcome.succeeded
    accepted = any(payments.outgoing[ref].accepted for ref in leg_b.parts)
    return leg_b.status is not PaymentStatus.FAILED or accepted


def _receipt_claim(exchange: Exchange, maker: SimNode, time_ms: int) -> int:
    """1 if the taker's validator could claim against M for this exchange, else 0;
    a receipt that is not the one M logged is a violation."""
    if exchange.held is None:
        return 0
    made = _engine(maker).state.exchange.exchanges.get(exchange.terms.take_id)
    if made is None or made.held != exchange.held:
        _fail(
            "receipts",
            f"the taker's validator holds a receipt of take "
            f"{exchange.terms.payment_id[:16]} that {maker.name} never logged",
            (maker.name,),
            time_ms,
        )
    condition = decode_acceptance(made.acceptance or b"").acceptance.condition
    payments = _engine(maker).state.payments
    leg_b = payments.outcome(exchange.terms.payment_id)  # once retention forgot leg B
    learned = condition in payments.preimages or (leg_b is not None and leg_b.succeeded)
    return int(exchange.state == "failed" and not learned)


# --- spread ---------------------------------------------------------------------------------


def spread_problems(
    nodes: list[SimNode], reach: list[list[int]], now_ms: int, margin_ms: int
) -> list[str]:
    """Live offers missing from (or stale in) a book they should be in, and closed offers
    still in one, as lines; offers expiring within ``margin_ms`` are left out."""
    problems: list[str] = []
    soon_ms = EPOCH_MS + now_ms + margin_ms
    for maker in nodes:
        books = _engine(maker).state.books
        for offer_id in books.offer_ids():
            view = books.offer(offer_id)
            assert view is not None
            if view.offer.expires_ms <= soon_ms:
                continue
            live = view.status == "open" and view.left > 0
            where = reach[maker.index] if live else range(len(nodes))
            for index in where:
                entry = _engine(nodes[index]).offers.book.get(offer_id)
                if live and (entry is None or entry.left != view.left):
                    seen = "missing" if entry is None else f"left {entry.left}"
                    problems.append(
                        f"{nodes[index].name}: offer {offer_id.hex()[:16]} of {maker.name} "
                        f"(left {view.left}) {seen}"
                    )
                elif not live and entry is not None:
                    problems.append(
                        f"{nodes[index].name}: offer {offer_id.hex()[:16]} of {maker.name} "
                        f"({view.status} {view.reason or 'carved'}) still in its book"
                    )
    return problems
