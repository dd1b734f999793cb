"""Property: whatever mix of offers, takes (here and of other validators'
offers), carved fills, unfills, settles, releases, closes and transfers
happens, value is conserved (issued - redeemed - paid_out + paid_in =
balances + held + reserved), refusals change nothing, every chain verifies
offline, and the log and a snapshot rebuild the Books exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node.ledger import (
    Books,
    Effect,
    Input,
    NotifyAppended,
    NotifyRefused,
    Offer,
    ReceiveOffer,
    ReceiveTake,
    ReceiveTransfer,
    SignedInstruction,
)
from tests.unit.test_ledger_offers_support import (
    ALICE,
    BOB,
    CAROL,
    EUR,
    REMOTE,
    REMOTE_EUR,
    chains_verify,
    close_action,
    conserved,
    exchange_bank,
    fill_action,
    offer,
    offer_of,
    release_action,
    settle_action,
    take,
    unfill_action,
)
from tests.unit.test_ledger_support import NOW_MS, USD, VALIDATOR, VALIDATOR_KEY, through_msgpack

USERS = [ALICE, BOB, CAROL]
users = st.sampled_from(USERS)
ours = st.sampled_from([USD, EUR])
amounts = st.integers(1, 3_000)


class OffersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.shell = exchange_bank(*USERS, funds=5_000)
        self.offers: list[SignedInstruction] = []  # ours and remote ones
        self.holds: list[tuple[str, str, str, int]] = []  # (payer, uai, payment id, held)
        self.carved = 0
        self.now_ms = NOW_MS
        self.checkpoint: tuple[object, int] | None = None

    @initialize()
    def start(self) -> None:
        conserved(self.shell)

    def run(self, input: Input) -> list[Effect]:
        before, log_length = self.shell.books.to_snapshot(), len(self.shell.log)
        effects = self.shell.run(input, self.now_ms)
        refused = [e.reason for e in effects if isinstance(e, NotifyRefused)]
        if refused:
            assert self.shell.books.to_snapshot() == before
            assert len(self.shell.log) == log_length
        event(f"{type(input).__name__}: {refused[0] if refused else 'appended'}")
        return effects

    # --- what happens -------------------------------------------------------------------

    @rule(maker=users, sell_uai=ours, sell=amounts, buy=amounts, fee=st.integers(0, 50))
    def place(self, maker: str, sell_uai: str, sell: int, buy: int, fee: int) -> None:
        buy_uai = EUR if sell_uai == USD else USD
        signed = offer(
            self.shell,
            maker,
            sell,
            buy,
            sell_uai=sell_uai,
            buy_uai=buy_uai,
            min_fill=max(1, sell // 4),
            max_fee=fee,
            expires_ms=self.now_ms + 3_600_000,
        )
        if any(isinstance(e, NotifyAppended) for e in self.run(make_input(signed))):
            self.offers.append(signed)

    @rule(sell=amounts, buy=amounts)
    def remote_offer(self, sell: int, buy: int) -> None:
        self.offers.append(
            offer(self.shell, REMOTE, sell, buy, sell_uai=REMOTE_EUR, buy_uai=USD, min_fill=1)
        )

    @rule(data=st.data(), taker=users, fraction=st.floats(0.01, 1.2), fee=st.integers(0, 9))
    def take_one(self, data: st.DataObject, taker: str, fraction: float, fee: int) -> None:
        if not self.offers:
            return
        signed = data.draw(st.sampled_from(self.offers))
        made = offer_of(signed)
        amount = max(1, int(made.sell_amount * fraction))
        remote = made.maker == REMOTE
        signed_take = take(self.shell, signed, amount, taker, max_fee=fee if remote else 0)
        effects = self.run(make_input(signed_take))
        if remote and any(isinstance(e, NotifyAppended) for e in effects):
            held = signed_take.instruction.held  # type: ignore[union-attr]
            payment_id = signed_take.instruction.payment_id  # type: ignore[union-attr]
            self.holds.append((taker, USD, payment_id, held))

    @rule(data=st.data(), fraction=st.floats(0.01, 1.0), fee=st.integers(0, 10))
    def fill(self, data: st.DataObject, fraction: float, fee: int) -> None:
        ours_only = [s for s in self.offers if offer_of(s).maker != REMOTE]
        if not ours_only:
            return
        signed = data.draw(st.sampled_from(ours_only))
        made = offer_of(signed)
        self.carved += 1
        payment_id = f"fill-{self.carved}"
        view = self.shell.books.offer(made.offer_id)
        left = made.sell_amount if view is None else view.left
        amount = max(1, int(left * fraction))
        effects = self.run(fill_action(self.shell, signed, amount, fee, payment_id))
        if any(isinstance(e, NotifyAppended) for e in effects):
            self.holds.append((made.maker, made.sell_uai, payment_id, amount + fee))

    @rule(data=st.data(), how=st.sampled_from(["settle", "release", "unfill"]))
    def end_hold(self, data: st.DataObject, how: str) -> None:
        carved = [hold for hold in self.holds if hold[2].startswith("fill-")]
        choices = carved if how == "unfill" else self.holds
        if not choices:
            return
        payer, uai, payment_id, held = data.draw(st.sampled_from(choices))
        shell = self.shell
        if how == "settle":
            debit = data.draw(st.integers(1, held))
            action = settle_action(shell, payer, uai, payment_id, held, debit)
        elif how == "release":
            action = release_action(shell, payer, uai, payment_id, held)
        else:
            hold = shell.books.hold(payer, payment_id)
            assert hold is not None
            carved_from = [s for s in self.offers if offer_of(s).offer_id == hold.transfer.offer_id]
            if not carved_from:
                return
            action = unfill_action(shell, carved_from[0], payment_id, held)
        if any(isinstance(e, NotifyAppended) for e in self.run(action)):
            self.holds.remove((payer, uai, payment_id, held))

    @rule(data=st.data(), off_by=st.sampled_from([0, 0, 0, 1, -1]))
    def close(self, data: st.DataObject, off_by: int) -> None:
        ours_only = [s for s in self.offers if offer_of(s).maker != REMOTE]
        if not ours_only:
            return
        signed = data.draw(st.sampled_from(ours_only))
        view = self.shell.books.offer(offer_of(signed).offer_id)
        rest = 0 if view is None else view.left + view.fee_left
        effects = self.run(close_action(self.shell, signed, max(0, rest + off_by)))
        assert any(isinstance(e, NotifyAppended) for e in effects) == (
            view is not None and view.status == "open" and off_by == 0
        )

    @rule(payer=users, payee=users, uai=ours, amount=amounts)
    def transfer(self, payer: str, payee: str, uai: str, amount: int) -> None:
        self.run(ReceiveTransfer(self.shell.transfer_instruction(payer, payee, amount, uai)))

    @rule(step_ms=st.sampled_from([1_000, 60_000, 3_600_000]))
    def time_passes(self, step_ms: int) -> None:
        self.now_ms += step_ms

    @rule()
    def snapshot(self) -> None:
        self.checkpoint = (through_msgpack(self.shell.books.to_snapshot()), len(self.shell.log))

    # --- what must always hold ----------------------------------------------------------

    @invariant()
    def value_is_conserved(self) -> None:
        conserved(self.shell)
        for user in USERS:
            assert all(balance >= 0 for balance in self.shell.books.balances(user).values())
        open_views = self.shell.books.open_offers()
        for view in open_views:
            assert 0 <= view.left <= view.offer.sell_amount
            assert 0 <= view.fee_left <= view.offer.max_fee
        # The index of open offers is what their reservations say.
        every = [self.shell.books.offer(offer_id) for offer_id in self.shell.books.offer_ids()]
        open_ids = {view.offer_id for view in every if view and view.status == "open"}
        assert {view.offer_id for view in open_views} == open_ids

    @invariant()
    def every_chain_verifies(self) -> None:
        chains_verify(self.shell)

    @invariant()
    def the_log_and_snapshots_rebuild_the_books(self) -> None:
        self.shell.rebuilt()
        if self.checkpoint is not None:
            snapshot, log_length = self.checkpoint
            restored = Books.from_snapshot(snapshot, VALIDATOR, VALIDATOR_KEY.public_key, {})
            for record in self.shell.log[log_length:]:
                restored.apply(record)
            assert restored.to_snapshot() == self.shell.books.to_snapshot()
            assert restored.totals() == self.shell.books.totals()
            assert restored.open_offers() == self.shell.books.open_offers()
        now = Books.from_snapshot(
            through_msgpack(self.shell.books.to_snapshot()),
            VALIDATOR,
            VALIDATOR_KEY.public_key,
            {},
        )
        assert now.totals() == self.shell.books.totals()
        assert now.open_offers() == self.shell.books.open_offers()


def make_input(signed: SignedInstruction) -> Input:
    return ReceiveOffer(signed) if isinstance(signed.instruction, Offer) else ReceiveTake(signed)


OffersMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOffers = OffersMachine.TestCase
