"""Property: whatever users and the operator do, value is conserved, every chain
verifies offline, refusals change nothing, and the log rebuilds the Books.

A small independent model predicts each outcome (accepted, or the reason of
the refusal), so the Books are checked against a second implementation of
the rules as well as against the invariants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from node.ledger import (
    ActionDeposit,
    ActionFreeze,
    ActionRegisterUser,
    Books,
    Effect,
    Input,
    NotifyAppended,
    NotifyRefused,
    NotifyRegistered,
    ReceiveTransfer,
    SignedInstruction,
    verify_chain,
)
from node.limits import AMOUNT_MAX
from tests.unit.test_ledger_support import (
    DAY_MS,
    GOLD,
    NOW_MS,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    sign_instruction,
    signed_identity,
    through_msgpack,
    user_key,
)

EUR = "bank-a.test/EUR"  # never defined
USERS = [f"{name}@bank-a.test" for name in ("alice", "bob", "carol", "dave")]
FIRST_USERS = USERS[:3]  # registered at the start; dave only if a rule registers him
GOLD_SUPPLY_MAX = 1_300
USD_DAILY_LIMIT = 400
KYC_OF = {USD: 0, GOLD: 2}

users = st.sampled_from(USERS)
uais = st.sampled_from([USD, USD, GOLD, EUR])
amounts = st.integers(1, 600)
bad_amounts = st.sampled_from([0, -3, AMOUNT_MAX + 1])


@dataclass
class Model:
    """The rules again, as simply as possible."""

    kyc: dict[str, int] = field(default_factory=dict)
    frozen: dict[str, bool] = field(default_factory=dict)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    outstanding: dict[str, int] = field(default_factory=lambda: {USD: 0, GOLD: 0})
    spent: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def balance(self, address: str, uai: str) -> int:
        return self.balances.get((address, uai), 0)

    def move(self, address: str, uai: str, delta: int) -> None:
        self.balances[(address, uai)] = self.balance(address, uai) + delta

    def common(self, address: str, amount: int, uai: str) -> str | None:
        if not 0 < amount <= AMOUNT_MAX:
            return "bad-amount"
        if address not in self.kyc:
            return "unknown-user"
        return None

    def transfer(self, payer: str, payee: str, uai: str, amount: int, now_ms: int) -> str | None:
        day = now_ms // DAY_MS
        spent_day, spent = self.spent.get((payer, uai), (day, 0))
        spent = spent if spent_day == day else 0
        reason = self.common(payer, amount, uai)
        if reason is None:
            if payer == payee:
                reason = "self-transfer"
            elif payee not in self.kyc:
                reason = "unknown-payee"
            elif uai not in KYC_OF:
                reason = "unknown-asset"
            elif self.frozen[payer] or self.frozen[payee]:
                reason = "frozen"
            elif self.kyc[payee] < KYC_OF[uai]:
                reason = "kyc"
            elif self.balance(payer, uai) < amount:
                reason = "insufficient-funds"
            elif uai == USD and spent + amount > USD_DAILY_LIMIT:
                reason = "daily-limit"
        if reason is None:
            self.move(payer, uai, -amount)
            self.move(payee, uai, amount)
            self.spent[(payer, uai)] = (day, spent + amount)
        return reason

    def deposit(self, address: str, uai: str, amount: int) -> str | None:
        reason = self.common(address, amount, uai)
        if reason is None:
            if uai not in KYC_OF:
                reason = "unknown-asset"
            elif self.frozen[address]:
                reason = "frozen"
            elif self.kyc[address] < KYC_OF[uai]:
                reason = "kyc"
            elif uai == GOLD and self.outstanding[GOLD] + amount > GOLD_SUPPLY_MAX:
                reason = "max-supply"
        if reason is None:
            self.move(address, uai, amount)
            self.outstanding[uai] += amount
        return reason

    def withdraw(self, address: str, uai: str, amount: int) -> str | None:
        reason = self.common(address, amount, uai)
        if reason is None:
            if uai not in KYC_OF:
                reason = "unknown-asset"
            elif self.frozen[address]:
                reason = "frozen"
            elif self.balance(address, uai) < amount:
                reason = "insufficient-funds"
        if reason is None:
            self.move(address, uai, -amount)
            self.outstanding[uai] -= amount
        return reason


def outcome(effects: list[Effect]) -> str | None:
    """None when entries were appended, else the refusal's reason."""
    if any(isinstance(effect, NotifyAppended) for effect in effects):
        return None
    (refusal,) = effects
    assert isinstance(refusal, NotifyRefused)
    return refusal.reason


class BooksMachine(RuleBasedStateMachine):
    accepted = Bundle("accepted")

    def __init__(self) -> None:
        super().__init__()
        self.shell = Shell(daily_limits={USD: USD_DAILY_LIMIT})
        self.model = Model()
        self.now_ms = NOW_MS
        self.checkpoint: tuple[object, int] | None = None
        self.verified: set[tuple[str, int]] = set()

    @initialize(kyc_levels=st.lists(st.integers(0, 3), min_size=3, max_size=3))
    def open_the_bank(self, kyc_levels: list[int]) -> None:
        self.shell.define(USD)
        self.shell.define(GOLD, kyc_level=2, max_supply=GOLD_SUPPLY_MAX)
        for address, kyc_level in zip(FIRST_USERS, kyc_levels, strict=True):
            self.register(address, kyc_level)
            self.deposit(address, USD, 1_000)
            self.deposit(address, GOLD, 400)

    def run(self, input: Input) -> list[Effect]:
        """Run an input; a refused one must leave the Books exactly as they were."""
        before = self.shell.books.to_snapshot()
        log_length = len(self.shell.log)
        effects = self.shell.run(input, self.now_ms)
        if any(isinstance(effect, NotifyRefused) for effect in effects):
            assert self.shell.books.to_snapshot() == before
            assert len(self.shell.log) == log_length
        return effects

    # --- what happens -------------------------------------------------------------------

    @rule(address=users, kyc_level=st.integers(0, 3))
    def register(self, address: str, kyc_level: int) -> None:
        effects = self.run(ActionRegisterUser(signed_identity(address), kyc_level, {}))
        known = self.model.kyc.get(address)
        if known is None:
            assert [type(effect) for effect in effects][-1] is NotifyRegistered
            self.model.kyc[address] = kyc_level
            self.model.frozen[address] = False
        elif known != kyc_level:
            assert outcome(effects) == "user-exists"

    @rule(target=accepted, address=users, uai=uais, amount=amounts)
    def deposit(self, address: str, uai: str, amount: int) -> object:
        effects = self.run(self.shell.deposit_action(address, amount, uai))
        assert outcome(effects) == self.model.deposit(address, uai, amount)
        event(f"deposit: {outcome(effects) or 'appended'}")
        return self.last_instruction(effects)

    @rule(address=users, uai=uais, amount=amounts)
    def withdraw(self, address: str, uai: str, amount: int) -> None:
        effects = self.run(self.shell.withdraw_action(address, amount, uai))
        assert outcome(effects) == self.model.withdraw(address, uai, amount)
        event(f"withdraw: {outcome(effects) or 'appended'}")

    @rule(target=accepted, payer=users, payee=users, uai=uais, amount=amounts)
    def transfer(self, payer: str, payee: str, uai: str, amount: int) -> object:
        instruction = self.shell.transfer_instruction(payer, payee, amount, uai)
        effects = self.run(ReceiveTransfer(instruction))
        assert outcome(effects) == self.model.transfer(payer, payee, uai, amount, self.now_ms)
        event(f"transfer: {outcome(effects) or 'appended'}")
        return self.last_instruction(effects)

    @rule(
        transfers=st.lists(
            st.tuples(
                st.sampled_from(FIRST_USERS),
                st.sampled_from(FIRST_USERS),
                st.sampled_from([USD, USD, GOLD]),
                st.integers(1, 300),
            ),
            min_size=1,
            max_size=8,
        )
    )
    def customers_pay_each_other(self, transfers: list[tuple[str, str, str, int]]) -> None:
        for payer, payee, uai, amount in transfers:
            self.transfer(payer, payee, uai, amount)

    @rule(address=st.sampled_from(FIRST_USERS), amounts=st.lists(amounts, min_size=1, max_size=4))
    def gold_is_issued(self, address: str, amounts: list[int]) -> None:
        for amount in amounts:
            self.deposit(address, GOLD, amount)

    @rule(payer=users, payee=users, uai=uais, amount=bad_amounts)
    def malformed_amounts(self, payer: str, payee: str, uai: str, amount: int) -> None:
        self.transfer(payer, payee, uai, amount)
        self.deposit(payee, uai, amount)
        self.withdraw(payee, uai, amount)

    @rule(payer=users, forger=users, payee=users, amount=st.integers(1, 100))
    def forged_transfer(self, payer: str, forger: str, payee: str, amount: int) -> None:
        genuine = self.shell.transfer_instruction(payer, payee, amount)
        key = user_key(forger + ".forger")
        forged = sign_instruction(key, genuine.instruction)
        for attempt in (
            forged,
            SignedInstruction(genuine.instruction, genuine.signer_key, forged.signature),
        ):
            effects = self.run(ReceiveTransfer(attempt))
            expected = "bad-signature" if payer in self.model.kyc else "unknown-user"
            assert outcome(effects) == expected

    @rule(signed=consumes(accepted))
    def replay(self, signed: SignedInstruction | None) -> None:
        if signed is None:
            return
        is_transfer = signed.signer_key != VALIDATOR_KEY.public_key
        effects = self.run(ReceiveTransfer(signed) if is_transfer else ActionDeposit(signed))
        assert outcome(effects) == "replay"

    @rule(address=users, frozen=st.booleans())
    def freeze(self, address: str, frozen: bool) -> None:
        effects = self.run(ActionFreeze(address, frozen))
        if address not in self.model.kyc:
            assert outcome(effects) == "unknown-user"
        else:
            self.model.frozen[address] = frozen

    @rule(step_ms=st.sampled_from([1, 60_000, 3_600_000, DAY_MS // 2, DAY_MS]))
    def time_passes(self, step_ms: int) -> None:
        self.now_ms += step_ms

    @rule()
    def snapshot(self) -> None:
        self.checkpoint = (through_msgpack(self.shell.books.to_snapshot()), len(self.shell.log))

    def last_instruction(self, effects: list[Effect]) -> SignedInstruction | None:
        for effect in effects:
            if isinstance(effect, NotifyAppended):
                return effect.entries[0].body.instruction
        return None

    # --- what must always hold ----------------------------------------------------------

    @invariant()
    def value_is_conserved(self) -> None:
        books = self.shell.books
        for uai, totals in books.totals().items():
            held = sum(books.balances(address).get(uai, 0) for address in books.addresses())
            assert totals.issued - totals.redeemed == held == totals.outstanding
            assert -books.balances(VALIDATOR).get(uai, 0) == held
            assert self.model.outstanding[uai] == held
        for address in books.addresses():
            for uai, balance in books.balances(address).items():
                assert balance == self.model.balance(address, uai) >= 0

    @invariant()
    def every_chain_verifies(self) -> None:
        books = self.shell.books
        for ubi in [VALIDATOR, *books.addresses()]:
            length = books.chain_length(ubi)
            if (ubi, length) in self.verified:
                continue  # the same entries as verified before: chains only grow
            user = books.user(ubi)
            owner_key = None if user is None else user.user_key
            chain = [e for seq in range(0, length, 50) for e in books.chain(ubi, seq)]
            report = verify_chain(chain, VALIDATOR_KEY.public_key, ubi=ubi, owner_key=owner_key)
            assert report.ok, report.problem
            assert report.balances == books.balances(ubi)
            self.verified.add((ubi, length))

    @invariant()
    def the_log_rebuilds_the_books(self) -> None:
        shell = self.shell
        shell.rebuilt()
        if self.checkpoint is not None:
            snapshot, log_length = self.checkpoint
            restored = Books.from_snapshot(
                snapshot, VALIDATOR, VALIDATOR_KEY.public_key, shell.daily_limits
            )
            for record in shell.log[log_length:]:
                restored.apply(record)
            assert restored.to_snapshot() == shell.books.to_snapshot()
            assert restored.totals() == shell.books.totals()


BooksMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBooks = BooksMachine.TestCase
