"""The payment core: one per node, playing payer, forwarder and payee over SNAP.

Theory of operation:
- The core never touches a SNAP ledger. It asks (``ProposeConditional``,
  ``AcceptIncoming``, ``RejectIncoming``) and is told (``IncomingConditional``,
  ``IncomingFinal``, ``OutgoingFinal``). Every decision is a record, applied at
  once and emitted before the effects that depend on it; a learned preimage is
  recorded first of all. Replay of the records rebuilds the state (``apply``).
- Payer: ActionPay records the payment (the same id again only reports it),
  finds any path to the payee and sends an invoice request along it (repeated
  every PAYMENT_INVOICE_RETRY_MS). With the invoice's condition it proposes
  the missing amount over the cheapest path(s) within ``max_fee``, the last
  transfer expiring PAYMENT_FINAL_DELTA_MS from now. A rejected part adds its
  failed edge to what the payment avoids, teaches the graph, and the missing
  amount is retried over other paths until the deadline (or the invoice's
  expiry); a failure the payee gave is not retried. The payment succeeds when
  every live part is accepted and they add up to the amount; it fails when no
  part is open and none can be sent.
- Forwarder: an incoming conditional whose route names a next hop is checked
  (next hop is a trusted peer, our policy for the sender: the fee left and the
  expiry delta between what we get and what we give, the time left, the
  expiry not too far, pending and credit towards the next hop) and forwarded
  with the same condition; else rejected at once with ``code@source>target``.
  Downstream's accept gives the preimage: record it, accept upstream at once.
  Downstream's reject is passed upstream at once, reason unchanged.
- Payee: an incoming conditional with an empty route must match an open
  invoice (unit, not expired, time left, parts adding up to no more than the
  amount). When the parts add up to the amount, all are accepted with the
  invoice's preimage; until then they are held, and rejected (``timeout``)
  when the invoice expires.
- Preset conditions (exchanges, docs/PAYMENTS.md): ``ActionInvoice`` makes an
  invoice whose preimage the shell drew, with no request; ``ActionExpect`` one
  whose preimage we do not know: its parts are held, ``NotifyHeld`` says when
  they add up, and they are accepted as soon as the preimage is learned (our
  payment with that condition succeeded, or ``ActionReveal``). An expectation
  does not time out while our payment with its condition is pending or
  succeeded: once we may have revealed the preimage, what we hold is ours to
  claim. ``ActionAbandon`` rejects what an invoice holds and all later parts.
  ``ActionPay`` with a condition proposes at once, with no invoice request,
  never a part whose first transfer expires after ``latest_expiry_ms``.
- Restart: the shell feeds IncomingConditional for every pending incoming
  conditional of its SNAP ledgers; one the core already decided gets its
  decision again. TimerTick re-derives what is owed: an open incoming whose
  downstream is closed is accepted (preimage) or rejected upstream; an
  invoice whose held parts add up is accepted if its preimage is known, else
  ``NotifyHeld`` is repeated once.
- Retention (``state``): an invoice past its expiry with nothing held is
  recorded ended (``InvoiceExpired``, at most PAYMENT_INVOICES_EXPIRED_PER_TICK_MAX
  per tick), so it can be forgotten; an ActionPay whose id is only remembered
  by its outcome is answered with that outcome (no paths), never paid again.
- Pure: time is ``now_ms``; randomness arrives in inputs (``fresh_preimage``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from node.limits import (
    AMOUNT_MAX,
    HASH_BYTES,
    PAYMENT_EXPIRY_MS_MAX,
    PAYMENT_FINAL_DELTA_MS,
    PAYMENT_INVOICE_LIFETIME_MS,
    PAYMENT_INVOICE_RETRY_MS,
    PAYMENT_INVOICES_EXPIRED_PER_TICK_MAX,
    PAYMENT_PENDING_PER_PEER_MAX,
)
from node.payments.checks import abandon_problem, invoice_problem, pay_problem, payee_problem
from node.payments.events import (
    FINAL_FAILURES,
    AcceptIncoming,
    ActionAbandon,
    ActionExpect,
    ActionInvoice,
    ActionPay,
    ActionReveal,
    Effect,
    Failure,
    IncomingClosed,
    IncomingConditional,
    IncomingFinal,
    IncomingOpened,
    Input,
    InvoiceAbandoned,
    InvoiceCreated,
    InvoiceExpired,
    InvoiceLearned,
    NotifyHeld,
    NotifyPayment,
    NotifyReceived,
    NotifyRefused,
    OutgoingClosed,
    OutgoingFinal,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PersistRecord,
    PreimageLearned,
    ProposeConditional,
    ReceiveInvoiceAnswer,
    ReceiveInvoiceRequest,
    Record,
    RejectIncoming,
    SendToPeer,
)
from node.payments.messages import InvoiceAnswer, InvoiceRequest, RouteHop
from node.payments.routing import HopPolicy, Path, RouteGraph
from node.payments.state import (
    Incoming,
    IncomingKey,
    Invoice,
    Outcome,
    Payment,
    PaymentState,
    failed_edge,
)
from node.signatures import sha256

AvailableCredit = Callable[[str, str], int]
"""(peer domain, unit) -> what the peer would still accept from us now (from SNAP)."""
PayeeKnown = Callable[[str, str], bool]
"""(payee: an address of ours, or our domain; unit) -> can we credit it in that unit?"""


def rejection(code: str, source: str, target: str) -> str:
    return f"{code}@{source}>{target}"


class PaymentCore:
    """One node's payments. See the module's theory of operation."""

    def __init__(
        self,
        own_domain: str,
        policies: Mapping[str, HopPolicy],
        graph: RouteGraph,
        available_credit: AvailableCredit,
        payee_known: PayeeKnown,
        state: PaymentState | None = None,
    ) -> None:
        """``policies``: trusted peer domain -> how we forward what it sends us (as announced).
        ``state``: the state rebuilt from the log (the shell's), else an empty one."""
        self.own_domain = own_domain
        self.policies = dict(policies)
        self.graph = graph
        self.available_credit = available_credit
        self.payee_known = payee_known
        # (payer domain, payment id) already credited to a payee here, for ever (the
        # customer desk's books): an id reused once its invoice was forgotten must
        # not be paid again into a credit that never comes. The shell sets it.
        self.credited: Callable[[str, str], bool] = lambda payer, payment_id: False
        self.state = PaymentState() if state is None else state
        self._effects: list[Effect] = []

    def apply(self, record: Record) -> None:
        self.state.apply(record)

    def handle(self, event: Input, now_ms: int) -> list[Effect]:
        self._effects = []
        if isinstance(event, ActionPay):
            self._pay(event, now_ms)
        elif isinstance(event, ActionInvoice | ActionExpect):
            self._make_invoice(event, now_ms)
        elif isinstance(event, ActionReveal):
            self._reveal(event, now_ms)
        elif isinstance(event, ActionAbandon):
            self._abandon(event)
        elif isinstance(event, ReceiveInvoiceRequest):
            self._on_invoice_request(event, now_ms)
        elif isinstance(event, ReceiveInvoiceAnswer):
            self._on_invoice_answer(event, now_ms)
        elif isinstance(event, IncomingConditional):
            self._on_incoming(event, now_ms)
        elif isinstance(event, IncomingFinal):
            self._on_incoming_final(event)
        elif isinstance(event, OutgoingFinal):
            self._on_outgoing_final(event, now_ms)
        else:
            self._tick(now_ms)
        effects, self._effects = self._effects, []
        return effects

    def _record(self, record: Record) -> None:
        self.state.apply(record)
        self._effects.append(PersistRecord(record))

    # --- payer -------------------------------------------------------------------------

    def _pay(self, action: ActionPay, now_ms: int) -> None:
        known = self.state.payments.get(action.payment_id)
        if known is not None:
            self._notify(known)
            return
        outcome = self.state.outcome(action.payment_id)
        if outcome is not None:
            self._notify_outcome(action.payment_id, outcome)
            return
        problem = pay_problem(action, self.own_domain, self.state, now_ms)
        if problem is not None:
            self._effects.append(NotifyRefused("bad-payment", problem))
            return
        started = PaymentStarted(
            action.payment_id,
            action.payee,
            action.payee_domain,
            action.amount,
            action.unit,
            action.max_fee,
            action.deadline_ms,
            action.hold_id,
            action.condition,
            action.final_delta_ms,
            action.latest_expiry_ms,
        )
        self._record(started)
        payment = self.state.payments[action.payment_id]
        if payment.condition is None:
            self._request_invoice(payment, now_ms)
        else:
            self._attempt(payment, now_ms)

    def _request_invoice(self, payment: Payment, now_ms: int) -> None:
        started = payment.started
        found = self.graph.find(
            started.payee_domain,
            1,
            started.unit,
            now_ms + PAYMENT_FINAL_DELTA_MS,
            AMOUNT_MAX,
            self.available_credit,
            frozenset(),
            now_ms,
        )
        if isinstance(found, str):
            known = started.payee_domain in self.graph.own_peers or any(
                target == started.payee_domain for _, target, _ in self.graph.edges
            )
            code = Failure.NO_ROUTE if known else Failure.UNKNOWN_PAYEE
            self._end(payment, False, str(code), None)
            return
        path = (self.own_domain, *(hop.domain for hop in found[0].hops))
        request = InvoiceRequest(
            started.payment_id, started.payee, started.amount, started.unit, path
        )
        payment.request_sent_ms = now_ms
        self._effects.append(SendToPeer(path[1], request))

    def _on_invoice_answer(self, event: ReceiveInvoiceAnswer, now_ms: int) -> None:
        answer = event.message
        if not isinstance(answer, InvoiceAnswer):
            return
        index = self._position(answer.path, event.peer, downstream=True)
        if index is None:
            self._effects.append(NotifyRefused("bad-invoice", f"not via {event.peer}"))
        elif index > 0:
            self._effects.append(SendToPeer(answer.path[index - 1], answer))
        else:
            payment = self.state.payments.get(answer.payment_id)
            if payment is None or payment.status is not PaymentStatus.PENDING:
                return
            if payment.condition is not None:
                return  # a repeated answer
            if answer.error is not None or answer.condition is None:
                error = answer.error or str(Failure.UNKNOWN_PAYEE)
                self._end(payment, False, error, answer.path[-1])
            elif answer.amount != payment.started.amount:
                self._end(payment, False, str(Failure.AMOUNT_MISMATCH), answer.path[-1])
            else:
                self._record(InvoiceLearned(answer.payment_id, answer.condition, answer.expires_ms))
                self._attempt(payment, now_ms)

    def _attempt(self, payment: Payment, now_ms: int) -> None:
        """Propose what the live parts do not yet cover, or end the payment."""
        state, started = self.state, payment.started
        assert payment.condition is not None
        live = state.live_parts(payment)
        missing = started.amount - sum(state.delivered(part) for part in live)
        if missing == 0:
            self._settle_if_done(payment)
            return
        last_code, last_edge = failed_edge(self._last_failure(payment))
        give_up_ms = min(started.deadline_ms, payment.invoice_expires_ms)
        if now_ms >= give_up_ms or last_code in FINAL_FAILURES:
            code = last_code if last_code in FINAL_FAILURES else str(Failure.TIMEOUT)
            self._fail_when_idle(payment, code, last_edge)
            return
        fee_left = started.max_fee - sum(part.amount - state.delivered(part) for part in live)
        found = self._find(payment, missing, fee_left, now_ms)
        if isinstance(found, str):
            keep_last = last_code and found not in (Failure.FEE_TOO_HIGH, Failure.EXPIRY_TOO_FAR)
            code = last_code if keep_last else found
            self._fail_when_idle(payment, code, last_edge)
            return
        for path in found:
            first = path.hops[0]
            self._open_outgoing(
                OutgoingOpened(
                    state.next_ref,
                    first.domain,
                    first.amount,
                    started.unit,
                    payment.condition,
                    first.expires_at_ms,
                    path.route_after_first(),
                    started.payment_id,
                    None,
                    None,
                )
            )
        self._notify(payment)

    def _find(
        self, payment: Payment, missing: int, fee_left: int, now_ms: int
    ) -> tuple[Path, ...] | str:
        """Paths for ``missing``; ``expiry-too-far`` if one would outlive ``latest_expiry_ms``."""
        started = payment.started
        final_delta_ms = started.final_delta_ms or PAYMENT_FINAL_DELTA_MS
        found = self.graph.find(
            started.payee_domain,
            missing,
            started.unit,
            now_ms + final_delta_ms,
            fee_left,
            self.available_credit,
            frozenset(payment.avoid),
            now_ms,
        )
        latest_ms = started.latest_expiry_ms
        if isinstance(found, str) or latest_ms is None:
            return found
        if any(path.hops[0].expires_at_ms > latest_ms for path in found):
            return Failure.EXPIRY_TOO_FAR
        return found

    def _last_failure(self, payment: Payment) -> str | None:
        closed = [self.state.outgoing[r] for r in payment.parts if self.state.outgoing[r].closed]
        rejected = [part.reason for part in closed if not part.accepted]
        return rejected[-1] if rejected else None

    def _fail_when_idle(self, payment: Payment, code: str, edge: tuple[str, str] | None) -> None:
        if not self.state.open_parts(payment):
            hop = None if edge is None else f"{edge[0]}>{edge[1]}"
            self._end(payment, False, code, hop)

    def _settle_if_done(self, payment: Payment) -> None:
        parts = [self.state.outgoing[r] for r in payment.parts]
        accepted = sum(self.state.delivered(p) for p in parts if p.closed and p.accepted)
        if accepted == payment.started.amount and not self.state.open_parts(payment):
            self._end(payment, True, None, None)

    def _end(self, payment: Payment, succeeded: bool, reason: str | None, hop: str | None) -> None:
        self._record(PaymentEnded(payment.started.payment_id, succeeded, reason, hop))
        self._notify(payment)

    def _notify(self, payment: Payment) -> None:
        state = self.state
        live = state.live_parts(payment)
        parts = [state.outgoing[r] for r in payment.parts]
        paths = tuple(
            (RouteHop(part.peer, part.amount, part.expires_at_ms), *part.route) for part in parts
        )
        fee = sum(part.amount - state.delivered(part) for part in live)
        preimage = None
        if payment.status is PaymentStatus.SUCCEEDED and payment.condition is not None:
            preimage = state.preimages.get(payment.condition)
        self._effects.append(
            NotifyPayment(
                payment.started.payment_id,
                payment.status,
                paths,
                fee,
                payment.failed_hop,
                payment.reason,
                preimage,
                payment.started.hold_id,
            )
        )

    def _notify_outcome(self, payment_id: str, outcome: Outcome) -> None:
        """A forgotten payment's id again: its outcome, never a second payment."""
        status = PaymentStatus.SUCCEEDED if outcome.succeeded else PaymentStatus.FAILED
        self._effects.append(
            NotifyPayment(
                payment_id,
                status,
                (),
                outcome.fee,
                outcome.failed_hop,
                outcome.reason,
                outcome.preimage,
                outcome.hold_id,
            )
        )

    def _open_outgoing(self, opened: OutgoingOpened) -> None:
        self._record(opened)
        self._effects.append(
            ProposeConditional(
                opened.peer,
                opened.amount,
                opened.unit,
                opened.condition,
                opened.expires_at_ms,
                opened.route,
                opened.ref,
            )
        )

    # --- invoices (payee, and relaying) ------------------------------------------------------

    def _position(self, path: tuple[str, ...], peer: str, *, downstream: bool) -> int | None:
        """Our index in ``path`` when ``peer`` is the neighbour it names, else None."""
        if self.own_domain not in path:
            return None
        index = path.index(self.own_domain)
        neighbour = index + 1 if downstream else index - 1
        if not 0 <= neighbour < len(path) or path[neighbour] != peer:
            return None
        return index

    def _on_invoice_request(self, event: ReceiveInvoiceRequest, now_ms: int) -> None:
        request = event.message
        if not isinstance(request, InvoiceRequest):
            return
        index = self._position(request.path, event.peer, downstream=False)
        if index is None:
            self._effects.append(NotifyRefused("bad-invoice", f"not via {event.peer}"))
        elif index < len(request.path) - 1:
            if request.path[index + 1] in self.policies:
                self._effects.append(SendToPeer(request.path[index + 1], request))
        else:
            self._effects.append(SendToPeer(event.peer, self._invoice_for(request, event, now_ms)))

    def _invoice_for(
        self, request: InvoiceRequest, event: ReceiveInvoiceRequest, now_ms: int
    ) -> InvoiceAnswer:
        payer = request.path[0]
        condition = self.state.invoice_by_request.get((payer, request.payment_id))
        if condition is None:
            if not self.payee_known(request.payee, request.unit):
                error = str(Failure.UNKNOWN_PAYEE)
                return InvoiceAnswer(request.payment_id, request.path, None, 0, 0, error)
            if self.credited(payer, request.payment_id):
                error = str(Failure.ALREADY_PAID)  # its invoice was forgotten, not its credit
                return InvoiceAnswer(request.payment_id, request.path, None, 0, 0, error)
            preimage = event.fresh_preimage
            assert len(preimage) == HASH_BYTES, "the shell draws 32 random bytes"
            condition = sha256(preimage)
            expires_ms = now_ms + PAYMENT_INVOICE_LIFETIME_MS
            created = InvoiceCreated(
                condition,
                preimage,
                payer,
                request.payment_id,
                request.payee,
                request.amount,
                request.unit,
                expires_ms,
            )
            self._record(created)
        invoice = self.state.invoices[condition].created
        return InvoiceAnswer(
            request.payment_id, request.path, condition, invoice.amount, invoice.expires_ms, None
        )

    # --- incoming conditionals ---------------------------------------------------------

    def _on_incoming(self, event: IncomingConditional, now_ms: int) -> None:
        known = self.state.incoming.get((event.peer, event.msg_id))
        if known is not None:
            self._repeat_decision(event.peer, event.msg_id, known)
            return
        if event.route:
            code, edge = self._forward_problem(event, now_ms)
        else:
            code, edge = payee_problem(event, self.state, now_ms), (event.peer, self.own_domain)
        if code is not None:
            reason = rejection(code, *edge)
            self._effects.append(RejectIncoming(event.peer, event.msg_id, reason))
        elif event.route:
            self._forward(event)
        else:
            self._hold_part(event, now_ms)

    def _repeat_decision(self, peer: str, msg_id: int, incoming: Incoming) -> None:
        if incoming.closed and incoming.accepted:
            preimage = self.state.preimages[incoming.condition]
            self._effects.append(AcceptIncoming(peer, msg_id, preimage))
        elif incoming.closed:
            self._effects.append(RejectIncoming(peer, msg_id, incoming.reason or ""))

    def _forward_problem(
        self, event: IncomingConditional, now_ms: int
    ) -> tuple[str | None, tuple[str, str]]:
        here = (event.peer, self.own_domain)
        next_hop = event.route[0]
        onward = (self.own_domain, next_hop.domain)
        policy = self.policies.get(event.peer)
        if policy is None or next_hop.domain not in self.policies:
            return Failure.NO_ROUTE, onward
        if event.expires_at_ms > now_ms + PAYMENT_EXPIRY_MS_MAX:
            return Failure.EXPIRY_TOO_FAR, here
        if (
            event.expires_at_ms - now_ms < policy.expiry_delta_ms
            or event.expires_at_ms - next_hop.expires_at_ms < policy.expiry_delta_ms
            or next_hop.expires_at_ms <= now_ms
        ):
            return Failure.EXPIRY_TOO_SHORT, here
        if event.amount - next_hop.amount < policy.fee(next_hop.amount):
            return Failure.FEE_TOO_LOW, here
        if self.state.open_towards(next_hop.domain) >= PAYMENT_PENDING_PER_PEER_MAX:
            return Failure.TOO_MANY_PENDING, onward
        if self.available_credit(next_hop.domain, event.unit) < next_hop.amount:
            return Failure.INSUFFICIENT_CREDIT, onward
        return None, here

    def _forward(self, event: IncomingConditional) -> None:
        ref = self.state.next_ref
        next_hop = event.route[0]
        self._record(
            IncomingOpened(
                event.peer,
                event.msg_id,
                event.amount,
                event.unit,
                event.condition,
                event.expires_at_ms,
                ref,
            )
        )
        self._open_outgoing(
            OutgoingOpened(
                ref,
                next_hop.domain,
                next_hop.amount,
                event.unit,
                event.condition,
                next_hop.expires_at_ms,
                event.route[1:],
                None,
                event.peer,
                event.msg_id,
            )
        )

    def _hold_part(self, event: IncomingConditional, now_ms: int) -> None:
        self._record(
            IncomingOpened(
                event.peer,
                event.msg_id,
                event.amount,
                event.unit,
                event.condition,
                event.expires_at_ms,
                None,
            )
        )
        self._complete(self.state.invoices[event.condition], now_ms, repeat=False)

    def _complete(self, invoice: Invoice, now_ms: int, *, repeat: bool) -> None:
        """Parts that add up are accepted with the preimage, or, for an expectation
        whose preimage is unknown, announced (NotifyHeld; once per restart if ``repeat``)."""
        state, created = self.state, invoice.created
        held = state.held_parts(invoice)
        if invoice.abandoned or state.held(invoice) < created.amount:
            return
        expiries = [state.incoming[key].expires_at_ms for key in held]
        if min(expiries) <= now_ms:
            return  # SNAP rejects the expired part; the rest wait for a replacement
        preimage = state.preimages.get(created.condition)
        if preimage is None:
            if not (repeat and invoice.held_notified):
                invoice.held_notified = True  # volatile: a restart announces once more
                notice = NotifyHeld(
                    created.condition, created.payment_id, created.payer, min(expiries)
                )
                self._effects.append(notice)
            return
        for peer, msg_id in held:
            self._record(IncomingClosed(peer, msg_id, True, None))
            self._effects.append(AcceptIncoming(peer, msg_id, preimage))
        self._effects.append(
            NotifyReceived(
                created.payer, created.payment_id, created.payee, created.amount, created.unit
            )
        )

    # --- preset invoices and expectations (exchanges) ----------------------------------------

    def _make_invoice(self, action: ActionInvoice | ActionExpect, now_ms: int) -> None:
        known = self.state.invoice_by_request.get((action.payer, action.payment_id))
        if known is not None:
            if known != action.condition:
                detail = "this payer's payment id has another invoice"
                self._effects.append(NotifyRefused("bad-invoice", detail))
            return
        preimage = action.preimage if isinstance(action, ActionInvoice) else None
        problem = invoice_problem(action, preimage, self.own_domain, self.state, now_ms)
        if problem is None and not self.payee_known(action.payee, action.unit):
            problem = str(Failure.UNKNOWN_PAYEE)
        if problem is not None:
            self._effects.append(NotifyRefused("bad-invoice", problem))
            return
        created = InvoiceCreated(
            action.condition,
            preimage,
            action.payer,
            action.payment_id,
            action.payee,
            action.amount,
            action.unit,
            action.expires_ms,
        )
        self._record(created)

    def _reveal(self, action: ActionReveal, now_ms: int) -> None:
        if len(action.preimage) != HASH_BYTES or sha256(action.preimage) != action.condition:
            detail = "the preimage does not hash to the condition"
            self._effects.append(NotifyRefused("bad-reveal", detail))
        elif action.condition not in self.state.invoices:
            self._effects.append(NotifyRefused("bad-reveal", "no invoice has this condition"))
        else:
            self._learn_preimage(action.condition, action.preimage, now_ms)

    def _learn_preimage(self, condition: bytes, preimage: bytes, now_ms: int) -> None:
        """Record a preimage first of all; an invoice waiting for it takes what it holds."""
        if condition not in self.state.preimages:
            self._record(PreimageLearned(condition, preimage))
        invoice = self.state.invoices.get(condition)
        if invoice is not None:
            self._complete(invoice, now_ms, repeat=False)

    def _abandon(self, action: ActionAbandon) -> None:
        invoice = self.state.invoices.get(action.condition)
        problem = abandon_problem(action, invoice, self.state)
        if problem is not None:
            self._effects.append(NotifyRefused("bad-abandon", problem))
            return
        assert invoice is not None
        if invoice.abandoned or invoice.expired:
            return  # ended already: nothing is held, nothing to record (and replay)
        self._record(InvoiceAbandoned(action.condition, action.reason))
        for key in self.state.held_parts(invoice):
            reason = rejection(Failure.ABANDONED, key[0], self.own_domain)
            self._record(IncomingClosed(*key, False, reason))
            self._effects.append(RejectIncoming(*key, reason))

    def _on_incoming_final(self, event: IncomingFinal) -> None:
        incoming = self.state.incoming.get((event.peer, event.msg_id))
        if incoming is not None and not incoming.closed:
            self._record(IncomingClosed(event.peer, event.msg_id, event.accepted, event.reason))

    # --- outcomes from downstream ----------------------------------------------------------

    def _on_outgoing_final(self, event: OutgoingFinal, now_ms: int) -> None:
        outgoing = self.state.outgoing.get(event.ref)
        if outgoing is None or outgoing.closed:
            return
        if event.accepted:
            preimage = event.preimage
            assert preimage is not None and sha256(preimage) == outgoing.condition, "SNAP checks"
            if outgoing.condition not in self.state.preimages:
                self._record(PreimageLearned(outgoing.condition, preimage))
            self._record(OutgoingClosed(event.ref, True, None))
            self._learn_preimage(outgoing.condition, preimage, now_ms)
        else:
            reason = event.reason or ""
            if failed_edge(reason)[1] is None:  # SNAP's own rejection: this edge failed
                code = (
                    Failure.NOT_PROPOSED if reason == Failure.NOT_PROPOSED else _snap_code(reason)
                )
                reason = rejection(code, self.own_domain, outgoing.peer)
            self._record(OutgoingClosed(event.ref, False, reason))
            self._learn(reason, outgoing.amount, outgoing.unit, now_ms)
        if outgoing.upstream is not None:
            self._settle_upstream(outgoing.upstream)
        elif outgoing.payment_id is not None:
            self._attempt(self.state.payments[outgoing.payment_id], now_ms)

    def _learn(self, reason: str, amount: int, unit: str, now_ms: int) -> None:
        code, edge = failed_edge(reason)
        if edge is not None:
            capacity_failure = code in (Failure.INSUFFICIENT_CREDIT, Failure.TOO_MANY_PENDING)
            self.graph.learn_failure((*edge, unit), amount if capacity_failure else 1, now_ms)

    def _settle_upstream(self, key: IncomingKey) -> None:
        """Pass downstream's outcome upstream, at once."""
        incoming = self.state.incoming[key]
        if incoming.closed:
            return  # upstream decided on its own (expired): nothing is owed
        assert incoming.downstream_ref is not None
        downstream = self.state.outgoing.get(incoming.downstream_ref)
        if downstream is None:
            # A crash tore the log between the forward's two records: its proposal
            # downstream was never recorded, so it never left (it is logged and
            # synced before it leaves). Nothing is owed downstream: reject upstream.
            reason = rejection(Failure.NOT_PROPOSED, key[0], self.own_domain)
            self._record(IncomingClosed(*key, False, reason))
            self._effects.append(RejectIncoming(*key, reason))
            return
        if not downstream.closed:
            return
        if downstream.accepted:
            self._record(IncomingClosed(*key, True, None))
            preimage = self.state.preimages[incoming.condition]
            self._effects.append(AcceptIncoming(*key, preimage))
        else:
            self._record(IncomingClosed(*key, False, downstream.reason))
            self._effects.append(RejectIncoming(*key, downstream.reason or ""))

    # --- time ----------------------------------------------------------------------------

    def _tick(self, now_ms: int) -> None:
        holding: dict[bytes, Invoice] = {}
        for key, incoming in self.state.open_incoming_items():
            if incoming.closed:
                continue  # closed by an earlier one of this loop
            if incoming.downstream_ref is not None:
                self._settle_upstream(key)
            else:
                holding[incoming.condition] = self.state.invoices[incoming.condition]
        for invoice in holding.values():
            self._complete(invoice, now_ms, repeat=True)
            if invoice.created.expires_ms <= now_ms and not self.state.claimable(invoice):
                for key in self.state.held_parts(invoice):
                    reason = rejection(Failure.TIMEOUT, key[0], self.own_domain)
                    self._record(IncomingClosed(*key, False, reason))
                    self._effects.append(RejectIncoming(*key, reason))
        limit = PAYMENT_INVOICES_EXPIRED_PER_TICK_MAX
        for invoice in self.state.expired_invoices(now_ms, limit):
            self._record(InvoiceExpired(invoice.created.condition))
        for payment in self.state.pending_payments():
            if payment.status is not PaymentStatus.PENDING:
                continue  # ended by an earlier one of this loop
            if payment.condition is not None:
                if not self.state.open_parts(payment):
                    self._attempt(payment, now_ms)
            elif now_ms >= payment.started.deadline_ms:
                self._end(payment, False, str(Failure.TIMEOUT), None)
            elif (payment.request_sent_ms or 0) + PAYMENT_INVOICE_RETRY_MS <= now_ms:
                self._request_invoice(payment, now_ms)


_SNAP_CODES = {
    "credit-limit": Failure.INSUFFICIENT_CREDIT,
    "too-many-pending": Failure.TOO_MANY_PENDING,
    "expired": Failure.EXPIRY_TOO_SHORT,
}


def _snap_code(reason: str) -> Failure:
    """The payment code of a REJECT the peer's SNAP ledger sent on its own."""
    return _SNAP_CODES.get(reason, Failure.REJECTED)
