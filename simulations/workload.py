"""The simulated operators: transfers offered to the mesh through the real operator API.

Rules:
- Transfers arrive as a Poisson process at ``rate`` per simulated second over
  the whole mesh, each on a random link in a random direction. A share are
  hashlocked against an invoice the payee made first (the payee accepts on
  arrival), a share against a condition nobody can open (they must expire and
  be rejected on both sides); the rest are plain.
- Requests and answers are the operator API's bytes (``encode_request`` /
  ``decode_response``), delivered to the node as ``Received(operator_key, ...)``
  exactly as the QUIC endpoint delivers them. A request to a crashed node is
  unanswered; one in flight when its node crashes is forgotten.
- An answered ``pay`` is an acknowledged transfer: the node promised it is
  durable. The simulator checks that promise at once and again at the end.
- All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from node.api.protocol import ApiError, Request, decode_response, encode_request, request_id_of
from simulations.limits import EPOCH_MS, EXPIRY_MS_RANGE, UNITS
from simulations.specs import WorkloadSpec
from simulations.topology import Link


@dataclass(frozen=True)
class Acknowledged:
    payer: int
    payee: int
    msg_id: int
    amount: int
    unit: str


@dataclass(frozen=True)
class OperatorRequest:
    """Bytes of one operator API request for ``node``."""

    node: int
    request_id: int
    payload: bytes


@dataclass
class _Waiting:
    node: int
    op: str
    payer: int
    payee: int
    amount: int
    unit: str


@dataclass
class WorkloadCounters:
    offered: int = 0  # transfers the operators started
    requests: int = 0
    unreachable: int = 0  # the node was down
    acknowledged: int = 0
    refused: int = 0  # an error answer (too many pending, ...)
    forgotten: int = 0  # in flight when the node crashed


class Workload:
    def __init__(
        self, spec: WorkloadSpec, links: list[Link], names: list[str], rng: random.Random
    ) -> None:
        self.spec = spec
        self.links = links
        self.names = names
        self.rng = rng
        self.next_request_id = 1
        self.waiting: dict[int, _Waiting] = {}
        # Acknowledged transfers, compactly: an hour of a big mesh is a million of them.
        self._payers: array[int] = array("i")
        self._payees: array[int] = array("i")
        self._msg_ids: array[int] = array("q")
        self.counters = WorkloadCounters()
        self.stopped = False

    def next_arrival_in_ms(self) -> int | None:
        if self.spec.rate <= 0 or not self.links:
            return None
        return round(self.rng.expovariate(self.spec.rate / 1000.0))

    def arrival(self, now_ms: int) -> OperatorRequest:
        """A new transfer: the first request to send, and the node it goes to."""
        rng = self.rng
        a, b = rng.choice(self.links)
        payer, payee = (a, b) if rng.random() < 0.5 else (b, a)
        amount = rng.randint(1, self.spec.amount_max)
        unit = rng.choice(UNITS)
        self.counters.offered += 1
        draw = rng.random()
        if draw < self.spec.unknown:
            condition = rng.randbytes(32)
            return self._pay(payer, payee, amount, unit, condition, now_ms)
        if draw < self.spec.unknown + self.spec.conditional:
            waiting = _Waiting(payee, "invoice", payer, payee, amount, unit)
            return self._request(waiting, {"amount": amount, "unit": unit})
        return self._pay(payer, payee, amount, unit, None, now_ms)

    def _pay(
        self, payer: int, payee: int, amount: int, unit: str, condition: bytes | None, now_ms: int
    ) -> OperatorRequest:
        args: dict[str, object] = {"peer": self.names[payee], "amount": amount, "unit": unit}
        if condition is not None:
            args["condition"] = condition
            args["expires_at_ms"] = EPOCH_MS + now_ms + self.rng.randint(*EXPIRY_MS_RANGE)
        return self._request(_Waiting(payer, "pay", payer, payee, amount, unit), args)

    def _request(self, waiting: _Waiting, args: dict[str, object]) -> OperatorRequest:
        request_id = self.next_request_id
        self.next_request_id += 1
        self.waiting[request_id] = waiting
        self.counters.requests += 1
        payload = encode_request(Request(request_id, waiting.op, args))
        return OperatorRequest(waiting.node, request_id, payload)

    def unreachable(self, request: OperatorRequest) -> None:
        self.waiting.pop(request.request_id, None)
        self.counters.unreachable += 1

    def answered(
        self, payload: bytes, now_ms: int
    ) -> tuple[OperatorRequest | None, Acknowledged | None]:
        """An answer arrived: maybe a follow-up request, maybe an acknowledged transfer."""
        try:
            request_id, result = decode_response(payload)
        except ApiError:
            failed_id = request_id_of(payload)
            if failed_id is not None and self.waiting.pop(failed_id, None) is not None:
                self.counters.refused += 1
            return None, None
        waiting = self.waiting.pop(request_id, None)
        if waiting is None:
            return None, None
        if waiting.op == "invoice":
            if self.stopped:
                return None, None
            condition = result["condition"]
            follow_up = self._pay(
                waiting.payer, waiting.payee, waiting.amount, waiting.unit, condition, now_ms
            )
            return follow_up, None
        self.counters.acknowledged += 1
        acknowledged = Acknowledged(
            waiting.payer, waiting.payee, result["msg_id"], waiting.amount, waiting.unit
        )
        self._payers.append(acknowledged.payer)
        self._payees.append(acknowledged.payee)
        self._msg_ids.append(acknowledged.msg_id)
        return None, acknowledged

    def acknowledged(self) -> Iterator[tuple[int, int, int]]:
        """(payer, payee, msg_id) of every acknowledged transfer, in order."""
        return zip(self._payers, self._payees, self._msg_ids, strict=True)

    def node_crashed(self, node: int) -> None:
        """The operator's connection to ``node`` broke: its requests will not be answered."""
        lost = [request_id for request_id, w in self.waiting.items() if w.node == node]
        for request_id in lost:
            del self.waiting[request_id]
        self.counters.forgotten += len(lost)
