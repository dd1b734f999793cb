"""Helpers shared by the customer-ledger tests (no tests here).

``Shell`` plays the runtime's part of the signing handshake: it signs what a
``SignRecord`` lists with the validator's key, calls ``apply_signed``, and keeps
each complete record as the log would (through msgpack and the strict decoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ledger import (
    ActionDefineAsset,
    ActionDeposit,
    ActionFreeze,
    ActionRegisterUser,
    ActionWithdraw,
    AssetDefinition,
    Books,
    ChainEntry,
    Deposit,
    Effect,
    EntryBody,
    Identity,
    Input,
    Instruction,
    NotifyAppended,
    NotifyRefused,
    PersistRecord,
    ReceiveTransfer,
    Record,
    SignedAssetDefinition,
    SignedIdentity,
    SignedInstruction,
    SignRecord,
    Transfer,
    Withdraw,
    record_from_wire,
)
from node.signatures import NodeKey, sha256
from node.wire import pack, unpack

VALIDATOR = "bank-a.test"
VALIDATOR_KEY = NodeKey(sha256(b"validator bank-a.test"))
OTHER_VALIDATOR_KEY = NodeKey(sha256(b"validator bank-b.test"))
USD = "bank-a.test/USD"
GOLD = "bank-a.test/GOLD"  # needs KYC level 2
NOW_MS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
DAY_MS = 86_400_000
DAILY_LIMITS = {USD: 1_000_000}


def user_key(address: str) -> NodeKey:
    return NodeKey(sha256(b"user key " + address.encode()))


def through_msgpack(value: Any) -> Any:
    return unpack(pack(value), 1 << 30)


def sign_instruction(key: NodeKey, instruction: Instruction) -> SignedInstruction:
    request = instruction.signing_request()
    return SignedInstruction(instruction, key.public_key, key.sign(request.kind, request.payload))


def signed_identity(address: str, key: NodeKey | None = None) -> SignedIdentity:
    key = key or user_key(address)
    identity = Identity(address, key.public_key)
    request = identity.signing_request()
    return SignedIdentity(identity, key.sign(request.kind, request.payload))


def signed_asset(
    uai: str,
    *,
    kyc_level: int = 0,
    max_supply: int | None = None,
    decimals: int = 2,
    key: NodeKey = VALIDATOR_KEY,
) -> SignedAssetDefinition:
    definition = AssetDefinition(uai, decimals, kyc_level, max_supply)
    request = definition.signing_request()
    return SignedAssetDefinition(definition, key.sign(request.kind, request.payload))


def resign(body: EntryBody, key: NodeKey = VALIDATOR_KEY) -> ChainEntry:
    """An entry the validator (``key``) signed, whatever it says."""
    request = body.signing_request()
    return ChainEntry(body, key.sign(request.kind, request.payload))


class Shell:
    """The runtime's part, in miniature: sign, apply_signed, log."""

    def __init__(
        self,
        daily_limits: Mapping[str, int] = DAILY_LIMITS,
        key: NodeKey = VALIDATOR_KEY,
    ) -> None:
        self.key = key
        self.daily_limits = dict(daily_limits)
        self.books = Books(VALIDATOR, key.public_key, self.daily_limits)
        self.log: list[Record] = []
        self.nonces: dict[str, int] = {}

    def run(self, input: Input, now_ms: int = NOW_MS) -> list[Effect]:
        out: list[Effect] = []
        for effect in self.books.handle(input, now_ms):
            if not isinstance(effect, SignRecord):
                out.append(effect)
                continue
            signatures = tuple(self.key.sign(item.kind, item.payload) for item in effect.to_sign)
            applied = self.books.apply_signed(effect.record, signatures)
            persist = applied[0]
            assert isinstance(persist, PersistRecord)
            logged = record_from_wire(through_msgpack(persist.record.to_wire()))
            assert logged == persist.record
            self.log.append(logged)
            out += applied
        return out

    def next_nonce(self, account: str) -> int:
        """Nonces as a careful client picks them: one above the last it used."""
        self.nonces[account] = max(self.nonces.get(account, 0), self.books.last_nonce(account)) + 1
        return self.nonces[account]

    # --- inputs in one line ------------------------------------------------------------

    def register(
        self, address: str, kyc_level: int = 1, attributes: Mapping[str, str] | None = None
    ) -> list[Effect]:
        action = ActionRegisterUser(signed_identity(address), kyc_level, attributes or {})
        return self.run(action)

    def define(self, uai: str, **kwargs: Any) -> list[Effect]:
        return self.run(ActionDefineAsset(signed_asset(uai, **kwargs)))

    def deposit_action(self, address: str, amount: int, uai: str = USD) -> ActionDeposit:
        deposit = Deposit(address, uai, amount, self.next_nonce(VALIDATOR))
        return ActionDeposit(sign_instruction(self.key, deposit))

    def withdraw_action(self, address: str, amount: int, uai: str = USD) -> ActionWithdraw:
        withdraw = Withdraw(address, uai, amount, self.next_nonce(VALIDATOR))
        return ActionWithdraw(sign_instruction(self.key, withdraw))

    def deposit(
        self, address: str, amount: int, uai: str = USD, now_ms: int = NOW_MS
    ) -> list[Effect]:
        return self.run(self.deposit_action(address, amount, uai), now_ms)

    def withdraw(
        self, address: str, amount: int, uai: str = USD, now_ms: int = NOW_MS
    ) -> list[Effect]:
        return self.run(self.withdraw_action(address, amount, uai), now_ms)

    def transfer_instruction(
        self, payer: str, payee: str, amount: int, uai: str = USD, nonce: int | None = None
    ) -> SignedInstruction:
        nonce = self.next_nonce(payer) if nonce is None else nonce
        return sign_instruction(user_key(payer), Transfer(payer, payee, uai, amount, nonce, NOW_MS))

    def transfer(
        self, payer: str, payee: str, amount: int, uai: str = USD, now_ms: int = NOW_MS
    ) -> list[Effect]:
        return self.run(
            ReceiveTransfer(self.transfer_instruction(payer, payee, amount, uai)), now_ms
        )

    def freeze(self, address: str, frozen: bool = True) -> list[Effect]:
        return self.run(ActionFreeze(address, frozen))

    def rebuilt(self) -> Books:
        """Books rebuilt from the log alone; asserts the state is identical."""
        books = Books(VALIDATOR, self.key.public_key, self.daily_limits)
        for record in self.log:
            books.apply(record)
        assert books.to_snapshot() == self.books.to_snapshot()
        return books


def refusals(effects: list[Effect]) -> list[str]:
    return [effect.reason for effect in effects if isinstance(effect, NotifyRefused)]


def appended(effects: list[Effect]) -> tuple[ChainEntry, ...]:
    found = [effect.entries for effect in effects if isinstance(effect, NotifyAppended)]
    assert len(found) == 1, effects
    return found[0]


def bank_with_users(*addresses: str, funds: int = 0) -> Shell:
    """A validator with USD and GOLD defined, the users registered (KYC 1) and funded in USD."""
    shell = Shell()
    shell.define(USD)
    shell.define(GOLD, kyc_level=2)
    for address in addresses:
        shell.register(address)
        if funds:
            shell.deposit(address, funds)
    return shell
