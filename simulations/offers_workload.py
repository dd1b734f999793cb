"""The offers workload: customers of every node make, cancel and take exchange offers.

Rules:
- Setup first, by the operator of each node (``customers.setup_steps``): the
  requests are sent together when the node starts and again, those still
  unanswered, whenever it restarts. A customer trades once its registration
  and deposits are answered.
- Offers arrive as a Poisson process at ``rate`` per simulated second over the
  mesh: a random ready customer sells some of its bank's EUR for USD of its own
  bank (a share OFFER_SAME_BANK_SHARE) or of a bank at most
  OFFER_BUY_BANK_HOPS_MAX links away. A share ``cancel`` of the offers made is
  cancelled by its maker at a random time before it expires.
- Takes arrive at ``takes`` per second: one of the OFFER_TAKE_RECENT offers
  made last is taken by a customer of the bank whose USD it buys (so the take
  is at the maker's bank, or across validators), as ``ledgermesh offer take``
  does: ask its own node for the offer (``offer``), then sign a take of all
  that is left or of a random part. A node that has not heard of the offer
  yet answers unknown-offer: counted, not retried.
- Requests are the API's bytes from the customer's own key (the operator's
  for setup); answers come back to that key. A request to a crashed node, or
  in flight when it crashes, is unanswered; setup requests are sent again.
- Outcomes are read from the nodes at the end (``offers_check``), not from
  answers: the workload only counts what it asked and what it was told.
- All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from node.api.protocol import ApiError, Request, decode_response, encode_request, request_id_of
from node.ledger.signed import Offer, OfferCancel, Take, pay_for
from node.limits import PAYMENT_HOPS_MAX
from simulations.customers import Customer, SetupStep, make_customers, setup_steps
from simulations.limits import (
    EPOCH_MS,
    OFFER_BUY_BANK_HOPS_MAX,
    OFFER_LIFETIME_MS_RANGE,
    OFFER_PRICE_PPM_RANGE,
    OFFER_SAME_BANK_SHARE,
    OFFER_SELL_RANGE,
    OFFER_TAKE_ALL_SHARE,
    OFFER_TAKE_RECENT,
)
from simulations.specs import OffersSpec

REQUEST_ID_BASE = 1 << 48  # ids of this workload's requests: apart from the transfers'
FEE_PPM = 20_000  # makers and takers allow 2 % in mesh fees, plus one unit per hop


def hops_within(adjacency: list[list[int]], start: int, hops_max: int) -> dict[int, int]:
    """Nodes at most ``hops_max`` links from ``start`` -> their distance (breadth first)."""
    distance = {start: 0}
    frontier = [start]
    for hops in range(1, hops_max + 1):
        following = []
        for node in frontier:
            for peer in adjacency[node]:
                if peer not in distance:
                    distance[peer] = hops
                    following.append(peer)
        frontier = following
    return distance


def fee_allowance(amount: int) -> int:
    return -(-amount * FEE_PPM // 1_000_000) + PAYMENT_HOPS_MAX


@dataclass(frozen=True)
class ClientRequest:
    """Bytes of one API request for ``node``, from the client holding ``client_key``."""

    node: int
    client_key: bytes
    request_id: int
    payload: bytes


@dataclass
class MadeOffer:
    offer_id: bytes
    maker: Customer
    buy_node: int
    expires_ms: int  # simulated ms


@dataclass
class _Waiting:
    kind: str  # setup | create | cancel | view | take
    node: int
    customer: Customer | None = None
    step: SetupStep | None = None
    offer: MadeOffer | None = None


@dataclass
class OffersCounters:
    requests: int = 0
    unanswered: int = 0  # the node was down, or crashed with the request in flight
    setup_refused: int = 0
    offers_made: int = 0
    offers_refused: int = 0
    cancels_sent: int = 0
    cancels_done: int = 0
    cancels_refused: int = 0
    takes_tried: int = 0
    takes_unseen: int = 0  # the taker's node did not know the offer (yet)
    takes_sent: int = 0
    takes_same_bank: int = 0
    takes_accepted_answer: int = 0  # answered without error (cross: started)
    takes_refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


class OffersWorkload:
    def __init__(
        self,
        spec: OffersSpec,
        names: list[str],
        adjacency: list[list[int]],
        operator_key: bytes,
        rng: random.Random,
    ) -> None:
        self.spec = spec
        self.names = names
        self.operator_key = operator_key
        self.rng = rng
        self.customers = [make_customers(i, name, spec.customers) for i, name in enumerate(names)]
        self.keys = {c.key.public_key: c for cs in self.customers for c in cs}
        self.setup: list[list[SetupStep | None]] = [
            list(setup_steps(name, self.customers[i])) for i, name in enumerate(names)
        ]  # None: answered
        self.setup_in_flight: dict[int, tuple[int, int]] = {}  # request id -> (node, position)
        self.buy_banks = [
            sorted(node for node in hops_within(adjacency, i, OFFER_BUY_BANK_HOPS_MAX) if node != i)
            for i in range(len(names))
        ]
        self.next_request_id = REQUEST_ID_BASE
        self.waiting: dict[int, _Waiting] = {}
        self.recent: deque[MadeOffer] = deque(maxlen=OFFER_TAKE_RECENT)
        self.counters = OffersCounters()
        self.stopped = False

    # --- arrivals ---------------------------------------------------------------------------

    def next_offer_in_ms(self) -> int | None:
        return self._next(self.spec.rate)

    def next_take_in_ms(self) -> int | None:
        return self._next(self.spec.takes)

    def _next(self, rate: float) -> int | None:
        return None if rate <= 0 else round(self.rng.expovariate(rate / 1000.0))

    def _ready(self) -> list[Customer]:
        return [c for customers in self.customers for c in customers if c.ready]

    def new_offer(self, now_ms: int) -> ClientRequest | None:
        ready = self._ready()
        if not ready:
            return None
        rng = self.rng
        maker = rng.choice(ready)
        name = self.names[maker.node]
        banks = self.buy_banks[maker.node]
        buy_node = maker.node if not banks or rng.random() < OFFER_SAME_BANK_SHARE else None
        if buy_node is None:
            buy_node = rng.choice(banks)
        sell = rng.randint(*OFFER_SELL_RANGE)
        buy = max(1, sell * rng.randint(*OFFER_PRICE_PPM_RANGE) // 1_000_000)
        min_fill = 1 if rng.random() < 0.7 else max(1, sell // 4)
        max_fee = 0 if buy_node == maker.node else fee_allowance(sell)
        created_ms = EPOCH_MS + now_ms
        expires_ms = now_ms + rng.randint(*OFFER_LIFETIME_MS_RANGE)
        offer = Offer(
            maker.address,
            f"{name}/EUR",
            sell,
            f"{self.names[buy_node]}/USD",
            buy,
            min_fill,
            max_fee,
            EPOCH_MS + expires_ms,
            maker.next_nonce(),
            created_ms,
        )
        made = MadeOffer(offer.offer_id, maker, buy_node, expires_ms)
        waiting = _Waiting("create", maker.node, maker, offer=made)
        return self._request(waiting, maker.key.public_key, "offer_create", maker.signed(offer))

    def new_take(self, now_ms: int) -> ClientRequest | None:
        """Ask a taker's node for one of the recent offers (the take follows the answer)."""
        live = [made for made in self.recent if made.expires_ms > now_ms]
        if not live:
            return None
        made = self.rng.choice(live)
        takers = [c for c in self.customers[made.buy_node] if c.ready and c is not made.maker]
        if not takers:
            return None
        taker = self.rng.choice(takers)
        self.counters.takes_tried += 1
        waiting = _Waiting("view", taker.node, taker, offer=made)
        args = {"offer_id": made.offer_id.hex()}
        return self._request(waiting, taker.key.public_key, "offer", args)

    def cancel(self, made: MadeOffer, now_ms: int) -> ClientRequest | None:
        if self.stopped or made.expires_ms <= now_ms:
            return None
        maker = made.maker
        cancel = OfferCancel(maker.address, made.offer_id, maker.next_nonce())
        self.counters.cancels_sent += 1
        waiting = _Waiting("cancel", maker.node, maker, offer=made)
        return self._request(waiting, maker.key.public_key, "offer_cancel", maker.signed(cancel))

    def _take(self, waiting: _Waiting, view: dict[str, Any], now_ms: int) -> ClientRequest | None:
        taker, made = waiting.customer, waiting.offer
        assert taker is not None and made is not None
        left, min_fill = view["left"], view["min_fill"]
        if left <= 0 or view["state"] != "live":
            return None
        amount = left
        if self.rng.random() >= OFFER_TAKE_ALL_SHARE and left > min_fill:
            amount = self.rng.randint(min_fill, left)
        terms = Offer(
            view["maker"], view["sell_uai"], view["sell_amount"], view["buy_uai"],
            view["buy_amount"], view["min_fill"], 0, 0, 1, 0,
        )  # fmt: skip
        pay = pay_for(terms, amount)
        same_bank = view["validator"] == self.names[taker.node]
        take = Take(
            taker.address,
            made.offer_id,
            view["maker"],
            view["sell_uai"],
            view["buy_uai"],
            amount,
            pay,
            0 if same_bank else fee_allowance(pay),
            taker.next_nonce(),
            EPOCH_MS + now_ms,
        )
        self.counters.takes_sent += 1
        self.counters.takes_same_bank += same_bank
        follow = _Waiting("take", taker.node, taker, offer=made)
        return self._request(follow, taker.key.public_key, "offer_take", taker.signed(take))

    # --- setup --------------------------------------------------------------------------------

    def node_started(self, node: int) -> list[ClientRequest]:
        """The setup requests of ``node`` neither answered nor in flight, to send now."""
        requests = []
        for position, step in enumerate(self.setup[node]):
            if step is None or (node, position) in self.setup_in_flight.values():
                continue
            customer = None if step.customer is None else self.customers[node][step.customer]
            waiting = _Waiting("setup", node, customer, step)
            request = self._request(waiting, self.operator_key, step.op, step.args)
            self.setup_in_flight[request.request_id] = (node, position)
            requests.append(request)
        return requests

    def _setup_answered(self, request_id: int, error: ApiError | None) -> None:
        node, position = self.setup_in_flight.pop(request_id)
        if error is not None:
            self.counters.setup_refused += 1
        self.setup[node][position] = None
        if all(step is None for step in self.setup[node]):
            for customer in self.customers[node]:
                customer.ready = True

    # --- requests and answers -----------------------------------------------------------------

    def _request(self, waiting: _Waiting, key: bytes, op: str, args: Any) -> ClientRequest:
        if not isinstance(args, dict):
            args = {"instruction": args}
        request_id = self.next_request_id
        self.next_request_id += 1
        self.waiting[request_id] = waiting
        self.counters.requests += 1
        payload = encode_request(Request(request_id, op, args))
        return ClientRequest(waiting.node, key, request_id, payload)

    def owns(self, payload: bytes) -> bool:
        request_id = request_id_of(payload)
        return request_id is not None and request_id >= REQUEST_ID_BASE

    def unanswered(self, request: ClientRequest) -> None:
        waiting = self.waiting.pop(request.request_id, None)
        if waiting is not None:
            self._forget(request.request_id, waiting)

    def node_crashed(self, node: int) -> None:
        lost = [rid for rid, waiting in self.waiting.items() if waiting.node == node]
        for request_id in lost:
            self._forget(request_id, self.waiting.pop(request_id))

    def _forget(self, request_id: int, waiting: _Waiting) -> None:
        self.counters.unanswered += 1
        self.setup_in_flight.pop(request_id, None)

    def answered(
        self, payload: bytes, now_ms: int
    ) -> tuple[ClientRequest | None, MadeOffer | None]:
        """An answer: maybe a follow-up request (a take), maybe an offer to cancel later."""
        try:
            request_id, result = decode_response(payload)
            error: ApiError | None = None
        except ApiError as refused:
            request_id, result, error = request_id_of(payload) or 0, None, refused
        waiting = self.waiting.pop(request_id, None)
        if waiting is None:
            return None, None
        if waiting.kind == "setup":
            self._setup_answered(request_id, error)
            return None, None
        if error is not None:
            self._refused(waiting.kind, error.code)
            return None, None
        if waiting.kind == "create":
            assert waiting.offer is not None
            self.counters.offers_made += 1
            self.recent.append(waiting.offer)
            cancel = self.rng.random() < self.spec.cancel
            return None, waiting.offer if cancel else None
        if waiting.kind == "cancel":
            self.counters.cancels_done += 1
        elif waiting.kind == "take":
            self.counters.takes_accepted_answer += 1
        elif waiting.kind == "view" and not self.stopped:
            return self._take(waiting, result, now_ms), None
        return None, None

    def _refused(self, kind: str, code: str) -> None:
        counters = self.counters
        if kind == "create":
            counters.offers_refused += 1
        elif kind == "cancel":
            counters.cancels_refused += 1
        elif kind == "view":
            counters.takes_unseen += 1
        else:
            counters.takes_refused += 1
        key = f"{kind}:{code}"
        counters.refusals[key] = counters.refusals.get(key, 0) + 1
