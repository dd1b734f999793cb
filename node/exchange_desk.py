"""The exchange desk: taking an offer of another validator's customer, atomically.

Two validators: T (the taker's) and M (the maker's). T draws a secret s and
binds both legs to h = sha256(s) (docs/OFFERS.md, "Taking an offer"):

1. T (``start``): the Books hold the taker's ``pay + max_fee``; the payment
   core gets T's invoice for leg B (h, s: the maker's money to the taker); the
   take is logged with s, then a TAKE signed by T goes along a path to M.
2. M (``on_take``): alone decides, in log order, among competing takers:
   checks the take against the offer (left, minimum fill, price), signs an
   acceptance, carves the fill out of the reservation (``OfferFill``: a hold on
   the maker's chain), logs it, expects leg A (h, preimage unknown) and answers.
3. T (``on_answer``): logs the answer (the acceptance is the taker's proof);
   starts leg A: a payment with condition h whose payee transfer outlives leg
   B's by EXCHANGE_LEG_A_FINAL_DELTA_MS.
4. M (``on_held``): leg A is held and cannot be taken back before its expiry;
   M signs and logs a receipt of it (LegAHeld: the taker's validator paid its
   part), sends it back along the take's path, and pays leg B from the carved
   hold, first hop expiring at least EXCHANGE_CLAIM_MARGIN_MS before leg A's.
   T logs the receipt (with the acceptance, the taker's claim should M never
   settle); T asks again with its TAKE until it has one.
5. T's invoice accepts leg B with s (the taker is credited); s flows back to M;
   M's payment core accepts leg A with it (the maker is credited) and the
   carved hold settles. If leg B fails, M abandons leg A (T's payment fails,
   the taker's hold is released) and the fill's money goes back to the maker's
   balance (not to the offer: an acceptance counts towards the offer for good).

Whatever crashes, both legs settle or neither: M reveals nothing and T
reveals s only by accepting leg B, after which M has until leg A's expiry to
claim it. A take not answered in EXCHANGE_TAKE_TIMEOUT_MS is given up by T;
an acceptance whose leg A never comes is given up by M.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.api.protocol import ApiError
from node.config import NodeConfig
from node.crypto import NodeKey
from node.exchange_state import Exchange, ExchangeState
from node.ledger.codec import domain_of
from node.ledger.events import ActionOfferFill, ReceiveTake
from node.ledger.signed import OfferFill, SignedInstruction, Take, pay_for
from node.limits import (
    API_FRAME_BYTES_MAX,
    CLOCK_SKEW_MS_MAX,
    EXCHANGE_CLAIM_MARGIN_MS,
    EXCHANGE_LEG_A_FINAL_DELTA_MS,
    EXCHANGE_LEG_B_TIME_MIN_MS,
    EXCHANGE_TAKE_TIMEOUT_MS,
    EXCHANGE_TAKES_OPEN_MAX,
    HASH_BYTES,
    PAYMENT_DEADLINE_MS_DEFAULT,
    PAYMENT_INVOICE_LIFETIME_MS,
    PAYMENT_INVOICE_RETRY_MS,
)
from node.offers.items import OFFER_KIND, decode_offer_body
from node.offers.take import (
    Acceptance,
    LegAHeld,
    SignedAcceptance,
    SignedLegAHeld,
    TakeAnswer,
    TakeRequest,
    TakeReveal,
    acceptance_mismatch,
    acceptance_problem,
    receipt_problem,
    settlement_horizon_ms,
    signed_acceptance_from_wire,
    signed_leg_a_held_from_wire,
    take_forward_request,
    take_problem,
)
from node.payments.events import (
    ActionAbandon,
    ActionExpect,
    ActionInvoice,
    ActionPay,
    ActionReveal,
    Failure,
    NotifyHeld,
    NotifyPayment,
    PaymentStatus,
)
from node.signatures import KIND_OFFER_ACCEPTANCE, KIND_OFFER_LEG_A_HELD, sha256
from node.units import unit_code
from node.wire import PeerMessage, pack, unpack

EXCHANGE_MESSAGES = (TakeRequest, TakeAnswer, TakeReveal)

Feed = Callable[[Any], list[Any]]
"""Feed the payment core now (its effects carried out)."""
Send = Callable[[str, PeerMessage], None]
"""Send a message to a trusted peer, by domain."""


class ExchangeDesk:
    def __init__(
        self,
        config: NodeConfig,
        key: NodeKey,
        books: Any,
        state: ExchangeState,
        run_books: Callable[[Any, int], list[Any]],
        log: Callable[[dict[str, Any]], None],
        offers: Any,
        payments: Any,
        customers: Any,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self.config = config
        self.key = key
        self.books = books
        self.state = state
        self.run_books = run_books
        self.log = log
        self.offers = offers  # the offers desk: trust, statuses
        self.payments = payments  # the payments desk: graph, payment state
        self.customers = customers  # the cross-bank customer desk: holds
        self.random_bytes = random_bytes
        self.peers = {peer.name for peer in config.peers}
        self.feed: Feed = lambda event: []  # the engine sets both per pass
        self.send: Send = lambda peer, message: None
        self.take_sent_ms: dict[bytes, int] = {}  # T: when each take was last sent
        self.revealed_ms: dict[bytes, int] = {}  # T: when each secret was last revealed
        self.recovered = False

    # --- units ---------------------------------------------------------------------------

    def _unit_of_code(self, uai: str) -> str | None:
        """Our SNAP unit for the currency code of ``uai`` (any issuer)."""
        code = uai.partition("/")[2]
        return next((u for u in self.config.units if unit_code(u) == code), None)

    def _units(self, take: Take) -> tuple[str, str]:
        """(leg A's unit: what the taker pays, leg B's: what the maker sells)."""
        unit_a, unit_b = self._unit_of_code(take.buy_uai), self._unit_of_code(take.sell_uai)
        if unit_a is None or unit_b is None:
            missing = take.buy_uai if unit_a is None else take.sell_uai
            raise ApiError("no-unit", f"{self.config.name} has no unit for {missing} ([units])")
        return unit_a, unit_b

    def on_message(
        self, peer: str, message: TakeRequest | TakeAnswer | TakeReveal, now_ms: int
    ) -> None:
        if isinstance(message, TakeRequest):
            self.on_take(peer, message, now_ms)
        elif isinstance(message, TakeReveal):
            self.on_reveal_from(peer, message, now_ms)
        else:
            self.on_answer_from(peer, message, now_ms)

    def on_reveal_from(self, peer: str, reveal: TakeReveal, now_ms: int) -> None:
        """A reveal travels the take's path forward, like the take; the last domain is M's."""
        if self._relay(peer, reveal.path, reveal, forward=True):
            self._revealed(reveal, now_ms)

    def _relay(
        self, peer: str, path: tuple[str, ...], message: PeerMessage, *, forward: bool
    ) -> bool:
        """Pass a message routed along a take's path on to the next domain (towards M
        when ``forward``, towards T otherwise); True when it ends here. A message
        that did not come from the neighbour the path names is refused."""
        here = path.index(self.config.name) if self.config.name in path else -1
        came_from, onward = (here - 1, here + 1) if forward else (here + 1, here - 1)
        if here < 0 or not 0 <= came_from < len(path) or path[came_from] != peer:
            self.offers.refuse("exchange-bad-path", f"a take message not via {peer}")
            return False
        if 0 <= onward < len(path):
            if path[onward] in self.peers:
                self.send(path[onward], message)
            return False
        return True

    def _revealed(self, reveal: TakeReveal, now_ms: int) -> None:
        """M learns the secret from T directly: leg A can be claimed even if leg B's
        accepts could not come back in time (a forwarder cut off past its expiry)."""
        exchange = self.state.exchanges.get(reveal.take_id)
        if exchange is None or exchange.side != "maker" or exchange.state != "open":
            return
        condition = _acceptance_of(exchange).acceptance.condition
        if sha256(reveal.preimage) != condition:
            self.offers.refuse("exchange-bad-reveal", reveal.take_id.hex()[:16])
            return
        if condition not in self.payments.state.payments.preimages:
            self.feed(ActionReveal(condition, reveal.preimage))
        self._settle_if_claimed(exchange, now_ms)

    def on_answer_from(self, peer: str, answer: TakeAnswer, now_ms: int) -> None:
        """An answer travels the take's path back; the first domain is the taker's."""
        if self._relay(peer, answer.path, answer, forward=False):
            self.on_answer(answer, now_ms)

    # --- T: the taker's validator ------------------------------------------------------------

    def start(self, signed: SignedInstruction, now_ms: int) -> dict[str, Any]:
        take = signed.instruction
        assert isinstance(take, Take)
        known = self.state.exchanges.get(take.take_id)
        if known is not None:
            return self.status(take.taker, take.take_id)
        if len(self.state.open_exchanges()) >= EXCHANGE_TAKES_OPEN_MAX:
            raise ApiError("too-many-takes", f"{EXCHANGE_TAKES_OPEN_MAX} takes in flight")
        maker_validator = domain_of(take.maker)
        unit_a, unit_b = self._units(take)
        if self.customers.asset_of_unit(unit_b) is None:
            raise ApiError("no-unit", f"{self.config.name} cannot credit {unit_b} to customers")
        path = self._path(maker_validator, unit_a, now_ms)
        self.run_books(ReceiveTake(signed), now_ms)  # the hold; ApiError on a refusal
        preimage = self.random_bytes(HASH_BYTES)
        condition = sha256(preimage)
        invoice = ActionInvoice(
            condition,
            preimage,
            maker_validator,
            take.payment_id,
            take.taker,
            take.amount,
            unit_b,
            now_ms + PAYMENT_INVOICE_LIFETIME_MS,
        )
        self.feed(invoice)
        record = {
            "k": "take",
            "i": signed.to_wire(),
            "preimage": preimage,
            "maker_validator": maker_validator,
            "path": list(path),
            "ms": now_ms,
        }
        offer = self._signed_offer(take, maker_validator)
        if offer is not None:
            record["offer"] = offer.to_wire()  # for the taker's claim (node.offers.unsettled)
        self.log(record)
        self._send_take(self.state.exchanges[take.take_id], now_ms)
        return self.status(take.taker, take.take_id)

    def _signed_offer(self, take: Take, maker_validator: str) -> SignedInstruction | None:
        """The maker's signed offer as gossip holds it now (verified when stored), or
        None: kept with the take, since gossip forgets it when the offer expires."""
        origin = self.offers.trust.key_of(maker_validator)
        item = self.payments.gossip.items.get((origin, OFFER_KIND, take.offer_id))
        return None if item is None else decode_offer_body(item.body).signed_offer

    def _path(self, domain: str, unit: str, now_ms: int) -> tuple[str, ...]:
        if domain in self.peers:
            return (self.config.name, domain)
        found = self.payments.graph.find(
            domain,
            1,
            unit,
            now_ms + 60_000,
            2**62,
            self.payments.available_credit,
            frozenset(),
            now_ms,
        )
        if isinstance(found, str):
            raise ApiError("no-route", f"no path to {domain}'s validator for {unit}")
        return (self.config.name, *(hop.domain for hop in found[0].hops))

    def _send_take(self, exchange: Exchange, now_ms: int) -> None:
        take = exchange.terms
        self.take_sent_ms[take.take_id] = now_ms
        assert exchange.preimage is not None
        condition = sha256(exchange.preimage)
        forward = take_forward_request(take.take_id, condition, self.config.name)
        signature = self.key.sign(forward.kind, forward.payload)
        request = TakeRequest(exchange.take, condition, self.config.name, exchange.path, signature)
        self.send(exchange.path[1], request)

    def on_answer(self, answer: TakeAnswer, now_ms: int) -> None:
        exchange = self.state.exchanges.get(answer.take_id)
        if exchange is None or exchange.side != "taker":
            return
        if exchange.state != "open":
            # M sends its receipt in the pass that starts leg B; leg A may have
            # ended here first (leg B failed at once): the receipt still counts.
            if exchange.acceptance is not None:
                self._on_receipt(exchange, answer.held, now_ms)
            return
        if exchange.acceptance is not None:
            self._on_receipt(exchange, answer.held, now_ms)  # a repeated answer, perhaps with it
            return
        if exchange.error is not None:
            return  # a repeated answer
        take = exchange.terms
        if answer.acceptance is None:
            self.log(
                {
                    "k": "answer",
                    "take_id": take.take_id,
                    "acceptance": None,
                    "error": (answer.error or "refused")[:200],
                }
            )
            self._end(exchange, False, answer.error or "refused", now_ms)
            return
        problem = self._acceptance_problem(exchange, answer.acceptance, now_ms)
        if problem is not None:
            self.offers.refuse("exchange-bad-acceptance", problem)
            return
        encoded = pack(answer.acceptance.to_wire())
        self.log({"k": "answer", "take_id": take.take_id, "acceptance": encoded, "error": None})
        self._on_receipt(exchange, answer.held, now_ms)
        unit_a, _ = self._units(take)
        assert exchange.preimage is not None
        self.feed(
            ActionPay(
                take.payment_id,
                take.maker,
                exchange.maker_validator,
                take.pay,
                unit_a,
                take.max_fee,
                now_ms + PAYMENT_DEADLINE_MS_DEFAULT,
                take.taker,
                condition=sha256(exchange.preimage),
                final_delta_ms=EXCHANGE_LEG_A_FINAL_DELTA_MS,
            )
        )

    def _on_receipt(self, exchange: Exchange, held: SignedLegAHeld | None, now_ms: int) -> None:
        """T keeps M's receipt of leg A (after the acceptance it belongs to)."""
        if held is None or exchange.held is not None or exchange.acceptance is None:
            return
        problem = receipt_problem(held, _acceptance_of(exchange).acceptance)
        if problem is None and held.receipt.issued_ms > now_ms + CLOCK_SKEW_MS_MAX:
            problem = "the receipt is from the future"
        if problem is not None:
            self.offers.refuse("exchange-bad-receipt", problem)
            return
        take_id = exchange.terms.take_id
        self.log({"k": "held", "take_id": take_id, "receipt": pack(held.to_wire())})

    def _acceptance_problem(
        self, exchange: Exchange, signed: SignedAcceptance, now_ms: int
    ) -> str | None:
        acceptance = signed.acceptance
        trust = self.offers.trust
        if trust.domain_of(acceptance.validator_key) != exchange.maker_validator:
            return f"the acceptance is not signed by {exchange.maker_validator}'s key"
        problem = acceptance_problem(signed, acceptance.validator_key)
        if problem is not None:
            return problem
        assert exchange.preimage is not None
        # Everything `evidence check` will hold M to, so a claim from what we accept
        # can only fail on time or on the secret (node.offers.unsettled).
        condition = sha256(exchange.preimage)
        mismatch = acceptance_mismatch(acceptance, exchange.terms, condition, self.config.name)
        if mismatch is not None:
            return mismatch
        if not exchange.started_ms - CLOCK_SKEW_MS_MAX <= acceptance.issued_ms:
            return "the acceptance is older than the take"
        if acceptance.issued_ms > now_ms + CLOCK_SKEW_MS_MAX:
            return "the acceptance is from the future"
        return None

    # --- M: the maker's validator ------------------------------------------------------------

    def on_take(self, peer: str, request: TakeRequest, now_ms: int) -> None:
        path = request.path
        if not self._relay(peer, path, request, forward=True):
            return
        take = request.take.instruction
        assert isinstance(take, Take)
        known = self.state.exchanges.get(take.take_id)
        if known is not None and known.acceptance is not None:
            # The same acceptance again; the expectation too, in case the log's
            # tail lost it with the answer it held back (idempotent).
            signed = decode_acceptance(known.acceptance)
            if known.state == "open":
                self.feed(self._expectation(take, signed.acceptance))
            answer = TakeAnswer(take.take_id, path, signed, None, "", _receipt_of(known))
        else:
            answer = self._decide(request, now_ms)
        self.send(peer, answer)

    def _expectation(self, take: Take, acceptance: Acceptance) -> ActionExpect:
        unit_a, _ = self._units(take)
        return ActionExpect(
            acceptance.condition,
            acceptance.taker_validator,
            take.payment_id,
            take.maker,
            take.pay,
            unit_a,
            # Held as long as leg A's parts may live: a reveal may come late.
            settlement_horizon_ms(acceptance),
        )

    def _decide(self, request: TakeRequest, now_ms: int) -> TakeAnswer:
        take = request.take.instruction
        assert isinstance(take, Take)

        def refuse(code: str, detail: str) -> TakeAnswer:
            self.offers.refuse(f"take-{code}", detail)
            return TakeAnswer(take.take_id, request.path, None, code, detail[:200])

        taker_key = self.offers.trust.key_of(request.taker_validator)
        if taker_key is None or domain_of(take.taker) != request.taker_validator:
            return refuse("unendorsed-validator", f"{request.taker_validator} is not endorsed")
        problem = take_problem(request, taker_key)
        if problem is not None:
            return refuse("bad-take", problem)
        if len(self.state.open_exchanges()) >= EXCHANGE_TAKES_OPEN_MAX:
            return refuse("too-many-takes", f"{EXCHANGE_TAKES_OPEN_MAX} takes in flight")
        view = self.books.offer(take.offer_id)
        refusal = self._offer_refusal(view, take, now_ms)
        if refusal is not None:
            return refuse(*refusal)
        try:
            self._units(take)  # both units known here, or refused
        except ApiError as error:
            return refuse(error.code, error.message)
        offer = view.offer
        share = -(-offer.max_fee * take.amount // offer.sell_amount)
        fee_budget = min(view.fee_left, share)
        filled = offer.sell_amount - view.left + take.amount
        acceptance = Acceptance(
            take.offer_id,
            take.take_id,
            self.config.name,
            self.key.public_key,
            take.taker,
            request.taker_validator,
            take.amount,
            take.pay,
            request.condition,
            filled,
            now_ms + EXCHANGE_TAKE_TIMEOUT_MS,
            now_ms,
        )
        signed_acceptance = SignedAcceptance(
            acceptance, self.key.sign(KIND_OFFER_ACCEPTANCE, acceptance.to_sign())
        )
        fill = OfferFill(
            offer.maker,
            take.offer_id,
            take.payment_id,
            offer.sell_uai,
            take.amount,
            fee_budget,
            take.taker,
            self.books.last_nonce(self.config.name) + 1,
        )
        try:
            self.run_books(ActionOfferFill(self._sign(fill)), now_ms)
        except ApiError as error:
            return refuse(error.code, error.message)
        encoded = pack(signed_acceptance.to_wire())
        self.log(
            {
                "k": "accept",
                "i": request.take.to_wire(),
                "acceptance": encoded,
                "ms": now_ms,
                "path": list(request.path),
            }
        )
        self.feed(self._expectation(take, acceptance))
        self.offers.announce_status(take.offer_id, now_ms)
        return TakeAnswer(take.take_id, request.path, signed_acceptance, None, "")

    def _offer_refusal(self, view: Any, take: Take, now_ms: int) -> tuple[str, str] | None:
        if view is None:
            return "unknown-offer", f"no offer {take.offer_id.hex()[:16]} here"
        offer = view.offer
        if view.status != "open" or offer.expires_ms <= now_ms:
            return "offer-closed", f"offer {take.offer_id.hex()[:16]} is closed"
        if (offer.maker, offer.sell_uai, offer.buy_uai) != (
            take.maker,
            take.sell_uai,
            take.buy_uai,
        ):
            return "wrong-offer", "the take names another maker or other assets"
        if take.amount > view.left:
            return "too-much", f"{take.amount} > {view.left} left"
        if take.amount < offer.min_fill and take.amount != view.left:
            return "too-small", f"{take.amount} < the minimum fill {offer.min_fill}"
        if take.pay < pay_for(offer, take.amount):
            return "price", f"{take.pay} < {pay_for(offer, take.amount)}"
        return None

    def on_held(self, notice: NotifyHeld, now_ms: int) -> None:
        """Leg A is held at us: pay leg B from the carved hold."""
        exchange = self._by_payment(notice.payment_id, "maker")
        if exchange is None or exchange.state != "open":
            return
        take = exchange.terms
        if take.payment_id in self.payments.state.payments.payments:
            return  # leg B started already
        hold = self.books.hold(take.maker, take.payment_id)
        if hold is None or hold.status != "open":
            return
        payments = self.payments.state.payments
        invoice = payments.invoices.get(notice.condition)
        if invoice is None or invoice.abandoned or payments.held(invoice) < take.pay:
            return  # leg A is no longer held (its parts were refused in this very pass)
        _, unit_b = self._units(take)
        latest = notice.min_expires_at_ms - EXCHANGE_CLAIM_MARGIN_MS
        if latest < now_ms + EXCHANGE_LEG_B_TIME_MIN_MS:
            # The taker's validator gave leg A too short a life for leg B to fit
            # before it: refuse leg A now, with nothing signed and nothing paid.
            self.feed(ActionAbandon(notice.condition, "leg-a-expiry-too-short"))
            self._end(exchange, False, "leg-a-expiry-too-short", now_ms)
            return
        self.feed(
            ActionPay(
                take.payment_id,
                take.taker,
                domain_of(take.taker),
                take.amount,
                unit_b,
                hold.transfer.max_fee,
                min(latest, now_ms + PAYMENT_DEADLINE_MS_DEFAULT),
                take.maker,
                condition=notice.condition,
                latest_expiry_ms=latest,
            )
        )
        leg_b = payments.payments.get(take.payment_id)
        if exchange.held is None and leg_b is not None and leg_b.status is PaymentStatus.PENDING:
            # Leg B is under way: now the receipt (same pass, same fsync, so it is
            # in the log before leg B or the receipt leaves). A leg B refused or
            # failed up front gets none: the exchange fails, nothing is owed.
            self._sign_receipt(exchange, notice, latest, now_ms)

    def _sign_receipt(
        self, exchange: Exchange, notice: NotifyHeld, latest_ms: int, now_ms: int
    ) -> None:
        """M: leg A is held and leg B under way; sign that, log it and send it back
        along the take's path (in the pass's log before anything of it leaves). A
        record from before receipts has no path: T's repeated TAKE gets it then."""
        acceptance = _acceptance_of(exchange).acceptance
        receipt = LegAHeld(
            acceptance.offer_id,
            acceptance.take_id,
            self.config.name,
            self.key.public_key,
            acceptance.condition,
            acceptance.pay,  # the expectation's amount: its held parts add up to it
            notice.min_expires_at_ms,
            latest_ms,
            now_ms,
        )
        held = SignedLegAHeld(receipt, self.key.sign(KIND_OFFER_LEG_A_HELD, receipt.to_sign()))
        take_id = acceptance.take_id
        self.log({"k": "held", "take_id": take_id, "receipt": pack(held.to_wire())})
        if len(exchange.path) >= 2 and exchange.path[-2] in self.peers:
            answer = TakeAnswer(take_id, exchange.path, _acceptance_of(exchange), None, "", held)
            self.send(exchange.path[-2], answer)

    def on_payment(self, notice: NotifyPayment, now_ms: int) -> None:
        """A leg's payment ended."""
        exchange = self.state.exchanges.get(_take_id(notice.payment_id))
        if exchange is not None and notice.status is not PaymentStatus.PENDING:
            succeeded = notice.status is PaymentStatus.SUCCEEDED
            self._leg_ended(exchange, succeeded, notice.reason, now_ms)

    def _leg_ended(
        self, exchange: Exchange, succeeded: bool, reason: str | None, now_ms: int
    ) -> None:
        if exchange.state != "open":
            return
        if exchange.side == "maker" and not succeeded:
            if not self._definitely_failed(exchange):
                # A part may have been accepted past a hop that could not pass the
                # accept back before it expired: the taker may hold leg B. Keep leg A
                # held; the taker's validator reveals the secret (or leg A expires).
                self._settle_if_claimed(exchange, now_ms)
                return
            condition = _acceptance_of(exchange).acceptance.condition
            self.feed(ActionAbandon(condition, reason or "leg-b-failed"))
        self._end(exchange, succeeded, reason, now_ms)

    def _definitely_failed(self, exchange: Exchange) -> bool:
        """Every part of leg B was refused up front: none can have been accepted."""
        state = self.payments.state.payments
        payment = state.payments.get(exchange.terms.payment_id)
        if payment is None:
            return True
        parts = [state.outgoing[ref] for ref in payment.parts]
        return all(part.closed and not part.accepted and _definite(part.reason) for part in parts)

    def _settle_if_claimed(self, exchange: Exchange, now_ms: int) -> None:
        """M, leg B failed as far as it knows: leg A claimed (the secret came
        directly) -> the maker pays the fill after all; leg A gone -> give it back."""
        take = exchange.terms
        payment = self.payments.state.payments.payments.get(take.payment_id)
        if payment is None or payment.status is not PaymentStatus.FAILED:
            return  # leg B pending or settled: its own outcome ends the exchange
        condition = _acceptance_of(exchange).acceptance.condition
        invoice = self.payments.state.payments.invoices.get(condition)
        hold = self.books.hold(take.maker, take.payment_id)
        if invoice is not None and invoice.paid:
            if hold is not None and hold.status == "open":
                self.customers.end_hold(hold, 0, "", now_ms)
            self._end(exchange, True, None, now_ms)
        elif invoice is None or not self.payments.state.payments.held_parts(invoice):
            self._end(exchange, False, payment.reason or "leg-b-failed", now_ms)

    # --- the clock -----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        if not self.recovered:
            self.recovered = True
            self._recover(now_ms)
        for exchange in self.state.open_exchanges():
            take = exchange.terms
            started = take.payment_id in self.payments.state.payments.payments
            if exchange.side == "maker" and started:
                self._settle_if_claimed(exchange, now_ms)  # waiting for a reveal
                continue
            if exchange.side == "taker" and self.books.credited(
                exchange.maker_validator, take.payment_id
            ):
                self._reveal(exchange, now_ms)
            if started or now_ms < exchange.started_ms + EXCHANGE_TAKE_TIMEOUT_MS:
                waiting = exchange.acceptance is None and exchange.error is None
                # Leg A is on its way: M's receipt of it may have been lost.
                waiting = waiting or (started and exchange.held is None)
                due = self.take_sent_ms.get(take.take_id, 0) + PAYMENT_INVOICE_RETRY_MS
                if exchange.side == "taker" and waiting and now_ms >= due:
                    self._send_take(exchange, now_ms)  # repeated until answered
                continue
            if exchange.side == "maker":
                condition = _acceptance_of(exchange).acceptance.condition
                self.feed(ActionAbandon(condition, "leg-a-timeout"))
            self._end(exchange, False, "timeout", now_ms)

    def _reveal(self, exchange: Exchange, now_ms: int) -> None:
        """T holds leg B (the taker is credited): tell M the secret along the take's
        path too, until our leg A ends, so M can claim even if leg B's way back is cut."""
        take = exchange.terms
        if now_ms < self.revealed_ms.get(take.take_id, 0) + PAYMENT_INVOICE_RETRY_MS:
            return
        self.revealed_ms[take.take_id] = now_ms
        assert exchange.preimage is not None
        self.send(exchange.path[1], TakeReveal(take.take_id, exchange.path, exchange.preimage))

    def _recover(self, now_ms: int) -> None:
        """After a restart: an exchange's hold whose exchange record was lost with
        the log's tail (the pass never left the node) is given back, and so is the
        hold of a failed exchange (``_end`` logs the end before the release, and
        the tail may keep one without the other); an exchange whose leg payment
        ended while we were down ends now."""
        for hold in self.books.open_holds():
            if hold.kind in ("take", "offer-fill"):
                carved = hold.kind == "offer-fill"
                exchange = self.state.exchanges.get(_take_id(hold.transfer.payment_id))
                if exchange is None:
                    self._give_back(hold, carved, "not-started", now_ms)
                elif exchange.state == "failed":
                    self._give_back(hold, carved, exchange.reason or "failed", now_ms)
        for exchange in self.state.open_exchanges():
            payment = self.payments.state.payments.payments.get(exchange.terms.payment_id)
            if payment is not None and payment.status is not PaymentStatus.PENDING:
                succeeded = payment.status is PaymentStatus.SUCCEEDED
                self._leg_ended(exchange, succeeded, payment.reason, now_ms)

    def _end(self, exchange: Exchange, settled: bool, reason: str | None, now_ms: int) -> None:
        take = exchange.terms
        state = "settled" if settled else "failed"
        self.log(
            {
                "k": "end",
                "take_id": take.take_id,
                "state": state,
                "reason": None if settled else (reason or "failed")[:200],
            }
        )
        if settled:
            return
        owner = take.taker if exchange.side == "taker" else take.maker
        hold = self.books.hold(owner, take.payment_id)
        if hold is None or hold.status != "open":
            return
        self._give_back(hold, exchange.side == "maker", reason or "failed", now_ms)

    def _give_back(self, hold: Any, carved: bool, reason: str, now_ms: int) -> None:
        """End an exchange's open hold with nothing paid: the money goes back to
        the payer's balance. A failed fill does not go back to its offer: every
        acceptance M signs counts towards the offer's amount for good, so
        acceptances adding up to more than it are a proof of fraud (docs/OFFERS.md)."""
        self.customers.end_hold(hold, None, reason, now_ms)
        if carved and hold.transfer.offer_id is not None:
            self.offers.announce_status(hold.transfer.offer_id, now_ms)

    # --- views ---------------------------------------------------------------------------------

    def status(self, address: str, take_id: bytes) -> dict[str, Any]:
        exchange = self.state.exchanges.get(take_id)
        if exchange is None or exchange.terms.taker != address:
            raise ApiError("not-found", f"no take {take_id.hex()[:16]} of {address}")
        take = exchange.terms
        credited = self.books.credited(exchange.maker_validator, take.payment_id)
        if exchange.state == "failed":
            state = "failed"
        elif credited:
            state = "settled"
        elif exchange.acceptance is not None:
            state = "accepted: paying both legs"
        else:
            state = f"sent to {exchange.maker_validator}: waiting for the acceptance"
        return {
            "take_id": take.take_id.hex(),
            "offer_id": take.offer_id.hex(),
            "state": state,
            "reason": exchange.reason or exchange.error,
            "maker": take.maker,
            "amount": take.amount,
            "pay": take.pay,
            "acceptance": None if exchange.acceptance is None else exchange.acceptance.hex(),
            "held": None if exchange.held is None else exchange.held.hex(),
            "take": pack(exchange.take.to_wire()).hex(),
            "offer": None if exchange.offer is None else pack(exchange.offer.to_wire()).hex(),
            "balances": self.books.balances(address),
        }

    def _by_payment(self, payment_id: str, side: str) -> Exchange | None:
        exchange = self.state.exchanges.get(_take_id(payment_id))
        return exchange if exchange is not None and exchange.side == side else None

    def _sign(self, instruction: Any) -> SignedInstruction:
        request = instruction.signing_request()
        signature = self.key.sign(request.kind, request.payload)
        return SignedInstruction(instruction, self.key.public_key, signature)


# Leg B failures that prove no part was accepted anywhere: a hop refused it up
# front. Any other (a timeout, an expiry) may hide an accept that came too late.
_DEFINITE_FAILURES = frozenset(
    {
        Failure.NO_ROUTE,
        Failure.INSUFFICIENT_CREDIT,
        Failure.FEE_TOO_LOW,
        Failure.FEE_TOO_HIGH,
        Failure.TOO_MANY_PENDING,
        Failure.UNKNOWN_INVOICE,
        Failure.UNKNOWN_PAYEE,
        Failure.WRONG_UNIT,
        Failure.AMOUNT_MISMATCH,
        Failure.EXPIRY_TOO_FAR,
        Failure.NOT_PROPOSED,
    }
)


def _definite(reason: str | None) -> bool:
    code = (reason or "").partition("@")[0]
    return code in _DEFINITE_FAILURES


def _take_id(payment_id: str) -> bytes:
    try:
        take_id = bytes.fromhex(payment_id)
    except ValueError:
        return b""
    return take_id if len(take_id) == HASH_BYTES else b""


def decode_acceptance(encoded: bytes) -> SignedAcceptance:
    """An acceptance as this desk logs it (packed, checked when it arrived)."""
    return signed_acceptance_from_wire(unpack(encoded, API_FRAME_BYTES_MAX))


def _receipt_of(exchange: Exchange) -> SignedLegAHeld | None:
    """M's receipt of leg A as the desk logs it (checked when made or when it arrived)."""
    if exchange.held is None:
        return None
    return signed_leg_a_held_from_wire(unpack(exchange.held, API_FRAME_BYTES_MAX))


def _acceptance_of(exchange: Exchange) -> SignedAcceptance:
    assert exchange.acceptance is not None
    return decode_acceptance(exchange.acceptance)
