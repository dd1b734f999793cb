"""Customers paying customers of other validators: the engine's cross-bank desk.

Rules:
- A customer submits a ``CrossTransfer`` it signed (payee address, asset,
  amount, payment id, max fee, nonce). The desk maps the asset to its SNAP
  unit (``[units]`` in node.toml; the asset's decimals must equal minus the
  unit's exponent, so amounts are the same integers on both sides), has the
  Books hold ``amount + max_fee`` on the payer's chain, then starts the
  payment (``ActionPay`` with ``hold_id`` = the payer's address). Records
  first: the hold record is in the log before the payment's.
- The hold ends exactly once: when the payment core reports the payment
  succeeded, it is settled for the amount and the fees paid; when it failed,
  it is released. Idempotent by key: the same payer and payment id answer
  with where that payment stands, never a second payment.
- Payee side: ``payee_known(address, unit)`` answers the invoice request (a
  registered, unfrozen customer whose KYC level the unit's asset allows);
  when the payment's last hop is accepted (``NotifyReceived``) the payee's
  chain is credited in our asset, once per (payer validator, payment id).
- Recovery (after the payment desk's): an open hold whose payment ended is
  settled or released (from the payment in full, or from its remembered
  outcome once retention forgot its details); one whose payment never started (the log was cut
  between the two records) is released, ``not-started``; a paid invoice not
  yet credited is credited.
- Bad input is a typed ``ApiError``; nothing changes.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from node.api.protocol import ApiError
from node.config import NodeConfig
from node.crypto import NodeKey
from node.ledger.books import Books
from node.ledger.codec import domain_of
from node.ledger.events import ActionCredit, ActionRelease, ActionSettle, ReceiveCrossTransfer
from node.ledger.events import Effect as BooksEffect
from node.ledger.events import Input as BooksInput
from node.ledger.signed import (
    AssetDefinition,
    Credit,
    CrossTransfer,
    Release,
    Settle,
    SignedInstruction,
    ValidatorInstruction,
    signed_instruction_from_parts,
)
from node.ledger.state import HoldState
from node.limits import (
    API_FRAME_BYTES_MAX,
    PAYMENT_DEADLINE_MS_DEFAULT,
    TRANSFER_WAITERS_MAX,
    TRANSFER_WAITERS_PER_PAYER_MAX,
)
from node.payments.events import (
    ActionPay,
    NotifyPayment,
    NotifyReceived,
    PaymentStatus,
)
from node.payments.events import Effect as PaymentEffect
from node.payments.events import Input as PaymentInput
from node.payments.state import PaymentState
from node.units import unit_exponent
from node.wire import DecodeError, unpack

RunBooks = Callable[[BooksInput, int], list[BooksEffect]]
"""The accounts desk's ``run_books``: decide, sign, log; ApiError on a refusal."""
Feed = Callable[[PaymentInput], list[PaymentEffect]]
"""Feed the payment core now, its effects carried out."""
View = Callable[[str], dict[str, Any]]
"""The payments desk's view of a payment, by id."""
Answer = Callable[[bytes, int, Any], None]
"""Answer a client's request (key, request id, result) with the pass's replies."""


class CustomerPayments:
    def __init__(
        self,
        config: NodeConfig,
        key: NodeKey,
        books: Books,
        payments: PaymentState,
        run_books: RunBooks,
        view: View,
    ) -> None:
        self.config = config
        self.key = key
        self.books = books
        self.payments = payments
        self.run_books = run_books
        self.view = view
        # `transfer_status` requests with `wait`, answered when the hold ends: by
        # (payer, payment id), at most TRANSFER_WAITERS_MAX in all. Volatile.
        self.waiters: dict[tuple[str, str], list[tuple[bytes, int]]] = {}
        self.waiting = 0
        self.waiting_of: Counter[str] = Counter()  # by payer: none may take every slot
        self.answer: Answer | None = None  # the engine's, for the pass under way

    # --- units and assets ------------------------------------------------------------

    def asset_of_unit(self, unit: str) -> AssetDefinition | None:
        """Our asset for ``unit``, when mapped, defined and of the unit's decimals."""
        uai = self.config.units.get(unit)
        asset = None if uai is None else self.books.asset(uai)
        if asset is None or asset.decimals != -unit_exponent(unit):
            return None
        return asset

    def unit_of(self, uai: str) -> str:
        unit = self.config.unit_of_asset(uai)
        if unit is None:
            raise ApiError("no-unit", f"{uai} is not paid across validators ([units] in node.toml)")
        asset = self.books.asset(uai)
        if asset is None:
            raise ApiError("unknown-asset", f"no asset {uai} here")
        if asset.decimals != -unit_exponent(unit):
            raise ApiError(
                "unit-mismatch", f"{uai} has {asset.decimals} decimals, unit {unit} does not"
            )
        return unit

    def payee_known(self, payee: str, unit: str) -> bool:
        if "@" not in payee:
            return payee == self.config.name
        user = self.books.user(payee)
        asset = self.asset_of_unit(unit)
        if user is None or user.frozen or asset is None:
            return False
        return user.kyc_level >= asset.kyc_level

    # --- the payer ---------------------------------------------------------------------

    def submit(
        self, client_key: bytes, address: str, args: dict[str, Any], now_ms: int, feed: Feed
    ) -> dict[str, Any]:
        signed = instruction_arg(args["instruction"])
        if signed.signer_key != client_key:
            raise ApiError("not-yours", "submit only instructions signed with your own key")
        transfer = signed.instruction
        if not isinstance(transfer, CrossTransfer) or transfer.from_ubi != address:
            raise ApiError("bad-instruction", f"a cross-transfer from {address}")
        if self.books.hold(address, transfer.payment_id) is not None:
            return self.status(address, transfer.payment_id)  # never pays twice
        if self.payments.known(transfer.payment_id):
            raise ApiError("payment-id-taken", f"payment id {transfer.payment_id!r} is taken")
        if domain_of(transfer.to_address) == self.config.name:
            raise ApiError("unknown-payee", f"{transfer.to_address} banks here: use a transfer")
        unit = self.unit_of(transfer.uai)
        self.run_books(ReceiveCrossTransfer(signed), now_ms)
        action = ActionPay(
            transfer.payment_id,
            transfer.to_address,
            domain_of(transfer.to_address),
            transfer.amount,
            unit,
            transfer.max_fee,
            now_ms + PAYMENT_DEADLINE_MS_DEFAULT,
            address,
        )
        feed(action)
        hold = self.books.hold(address, transfer.payment_id)
        assert hold is not None
        if hold.status == "open" and not self.payments.known(transfer.payment_id):
            self._end(hold, None, "bad-payment", now_ms)  # the core refused to start it
        return self.status(address, transfer.payment_id)

    def status(self, address: str, payment_id: str) -> dict[str, Any]:
        """Where the customer's payment stands: its hold, and the payment's view."""
        hold = self.books.hold(address, payment_id)
        if hold is None:
            raise ApiError("not-found", f"no payment {payment_id!r} of {address}")
        transfer = hold.transfer
        view = None
        if self._hold_id_of(payment_id) == address:
            view = self.view(payment_id)  # in full, or what is remembered of it
        return {
            "payment_id": payment_id,
            "to": transfer.to_address,
            "uai": transfer.uai,
            "amount": transfer.amount,
            "max_fee": transfer.max_fee,
            "held": transfer.held,
            "hold": hold.status,
            "debit": hold.debit,
            "fee": hold.debit - transfer.amount if hold.status == "settled" else None,
            "reason": hold.reason or (None if view is None else view["reason"]),
            "payment": view,
            "balances": self.books.balances(address),
        }

    def wait_for_end(
        self, client_key: bytes, request_id: int, address: str, payment_id: str
    ) -> dict[str, Any] | None:
        """``status`` now if the hold has ended, or TRANSFER_WAITERS_MAX requests (or
        TRANSFER_WAITERS_PER_PAYER_MAX of this payer's) already wait; else None, and
        the answer goes to ``client_key`` when the hold ends, with the replies of
        that pass (so once it is durable)."""
        status = self.status(address, payment_id)
        if (
            status["hold"] != "open"
            or self.waiting >= TRANSFER_WAITERS_MAX
            or self.waiting_of[address] >= TRANSFER_WAITERS_PER_PAYER_MAX
        ):
            return status
        self.waiters.setdefault((address, payment_id), []).append((client_key, request_id))
        self.waiting += 1
        self.waiting_of[address] += 1
        return None

    def _answer_waiters(self, address: str, payment_id: str) -> None:
        waiters = self.waiters.pop((address, payment_id), [])
        if not waiters:
            return
        self.waiting -= len(waiters)
        self.waiting_of[address] -= len(waiters)
        if not self.waiting_of[address]:
            del self.waiting_of[address]
        assert self.answer is not None, "a hold ends inside a pass"
        status = self.status(address, payment_id)
        for client_key, request_id in waiters:
            self.answer(client_key, request_id, status)

    def on_payment(self, notice: NotifyPayment, now_ms: int) -> None:
        """The payment core's news: a payment of a customer ended, end its hold."""
        if notice.hold_id is None or notice.status is PaymentStatus.PENDING:
            return
        hold = self.books.hold(notice.hold_id, notice.payment_id)
        if hold is None or hold.status != "open":
            return
        if hold.kind == "offer-fill" and notice.status is not PaymentStatus.SUCCEEDED:
            return  # the exchange desk decides: the taker may yet reveal the secret
        succeeded = notice.status is PaymentStatus.SUCCEEDED
        self._end(hold, notice.fee if succeeded else None, notice.reason or "failed", now_ms)

    def end_hold(self, hold: HoldState, fee: int | None, reason: str, now_ms: int) -> None:
        """Settle (``fee`` given) or release an open hold: for the exchange desk."""
        self._end(hold, fee, reason, now_ms)

    def _end(self, hold: HoldState, fee: int | None, reason: str, now_ms: int) -> None:
        transfer = hold.transfer
        nonce = self.books.last_nonce(self.config.name) + 1
        if fee is not None:
            assert 0 <= fee <= transfer.max_fee, f"fee {fee} above the max fee"
            settle = Settle(
                transfer.from_ubi,
                transfer.uai,
                transfer.payment_id,
                transfer.held,
                transfer.amount + fee,
                nonce,
            )
            self._run(ActionSettle(self._sign(settle)), now_ms)
        else:
            release = Release(
                transfer.from_ubi,
                transfer.uai,
                transfer.payment_id,
                transfer.held,
                reason[:200],
                nonce,
            )
            self._run(ActionRelease(self._sign(release)), now_ms)
        self._answer_waiters(transfer.from_ubi, transfer.payment_id)

    # --- the payee -----------------------------------------------------------------------

    def on_received(self, notice: NotifyReceived, now_ms: int) -> None:
        """The last hop was accepted: credit our customer, once."""
        if "@" not in notice.payee or self.books.credited(notice.payer, notice.payment_id):
            return
        asset = self.asset_of_unit(notice.unit)
        if asset is None:
            return  # the config changed since the invoice; counted, kept in the SNAP position
        nonce = self.books.last_nonce(self.config.name) + 1
        credit = Credit(
            notice.payee, asset.uai, notice.amount, notice.payer, notice.payment_id, nonce
        )
        self._run(ActionCredit(self._sign(credit)), now_ms)

    # --- recovery -----------------------------------------------------------------------------

    def recover(self, now_ms: int) -> None:
        for hold in self.books.open_holds():
            transfer = hold.transfer
            exchange = hold.kind in ("take", "offer-fill")  # the exchange desk's to end
            if self._hold_id_of(transfer.payment_id) != transfer.from_ubi:
                if not exchange:
                    self._end(hold, None, "not-started", now_ms)
                continue
            status, reason, fee = self._outcome(transfer.payment_id)
            if hold.kind == "offer-fill" and status is PaymentStatus.FAILED:
                continue  # the exchange desk decides (see on_payment)
            elif status is PaymentStatus.SUCCEEDED:
                self._end(hold, fee, "", now_ms)
            elif status is PaymentStatus.FAILED:
                self._end(hold, None, reason or "failed", now_ms)
        for invoice in self.payments.invoices.values():
            created = invoice.created
            if invoice.paid:
                notice = NotifyReceived(
                    created.payer, created.payment_id, created.payee, created.amount, created.unit
                )
                self.on_received(notice, now_ms)

    def _hold_id_of(self, payment_id: str) -> str | None:
        """The hold of our payment ``payment_id``, known in full or by its outcome."""
        payment = self.payments.payments.get(payment_id)
        if payment is not None:
            return payment.started.hold_id
        outcome = self.payments.outcome(payment_id)
        return None if outcome is None else outcome.hold_id

    def _outcome(self, payment_id: str) -> tuple[PaymentStatus, str | None, int]:
        """(status, reason, fee paid) of a known payment of ours."""
        payment = self.payments.payments.get(payment_id)
        if payment is None:
            outcome = self.payments.outcome(payment_id)
            assert outcome is not None
            status = PaymentStatus.SUCCEEDED if outcome.succeeded else PaymentStatus.FAILED
            return status, outcome.reason, outcome.fee
        live = self.payments.live_parts(payment)
        fee = sum(part.amount - self.payments.delivered(part) for part in live)
        return payment.status, payment.reason, fee

    # --- helpers ---------------------------------------------------------------------------

    def _sign(self, instruction: ValidatorInstruction) -> SignedInstruction:
        request = instruction.signing_request()
        signature = self.key.sign(request.kind, request.payload)
        return SignedInstruction(instruction, self.key.public_key, signature)

    def _run(self, event: BooksInput, now_ms: int) -> None:
        # A refusal is counted by the accounts desk and leaves the books as they were.
        with contextlib.suppress(ApiError):
            self.run_books(event, now_ms)


def instruction_arg(value: object) -> SignedInstruction:
    """A customer's signed instruction as an API argument: ``[body, key, signature]``."""
    if type(value) is not bytes:
        raise ApiError("bad-request", "instruction must be bytes")
    try:
        parts = unpack(value, API_FRAME_BYTES_MAX)
    except DecodeError as error:
        raise ApiError("bad-request", f"instruction: {error}") from None
    if type(parts) is not list or len(parts) != 3:
        raise ApiError("bad-request", "an instruction is [body, signer key, signature]")
    try:
        return signed_instruction_from_parts(*parts)
    except DecodeError as error:
        raise ApiError("bad-instruction", str(error)) from None
