"""The shell's side of customer accounts and federation, for the engine.

Rules:
- Requests from the operator (register, freeze, define an asset, deposit,
  withdraw) and from customers (transfer, pull their chain) become inputs of
  the Books core. The core decides; when it asks for signatures
  (``SignRecord``) this desk signs with the node key, hands them back, and
  appends the complete record to the log. The answer goes out after the
  engine's fsync, like everything else.
- Deposits and withdrawals are instructions the validator signs as issuer,
  with the next nonce of its own account.
- A customer may only submit instructions it signed itself, and only pull its
  own chain: its connection's key names it.
- Federation requests from peers and clients go to the Resolver core; an
  answer that needs the mesh is sent back when it arrives (or times out).
- Bad input is a typed ``ApiError``; nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from node.api.protocol import ApiError, decode_request
from node.check_ahead import CheckAhead
from node.crypto import NodeKey
from node.federation import (
    ActionResolve,
    NotifyResolved,
    ReceiveResolve,
    ReceiveResolved,
    Resolution,
    Resolver,
    SendToPeer,
    encode_record,
)
from node.federation import Effect as FederationEffect
from node.federation import NotifyRefused as FederationRefused
from node.federation import TimerTick as FederationTick
from node.ledger.chain import ChainEntry
from node.ledger.events import (
    ActionDefineAsset,
    ActionDeposit,
    ActionFreeze,
    ActionRegisterUser,
    ActionWithdraw,
    NotifyAppended,
    NotifyAssetDefined,
    NotifyFrozen,
    NotifyRefused,
    NotifyRegistered,
    PersistRecord,
    ReceiveTransfer,
    SignRecord,
)
from node.ledger.events import Effect as BooksEffect
from node.ledger.events import Input as BooksInput
from node.ledger.signed import (
    AssetDefinition,
    Deposit,
    SignedAssetDefinition,
    SignedInstruction,
    Withdraw,
    signed_identity_from_wire,
    signed_instruction_from_parts,
)
from node.limits import API_FRAME_BYTES_MAX, CHAIN_ENTRIES_PER_PULL_MAX
from node.signatures import remember_valid
from node.state import NodeState, ledger_log_record
from node.verify_pool import verify_all
from node.wire import DecodeError, Resolve, Resolved, pack, unpack

Outbox = Callable[[bytes, Resolve | Resolved], None]
Reply = Callable[[bytes, int, Any, ApiError | None], None]


@dataclass(frozen=True)
class _Waiting:
    client_key: bytes
    request_id: int


class AccountsDesk:
    def __init__(
        self,
        state: NodeState,
        key: NodeKey,
        append: Callable[[bytes], None],
        refuse: Callable[[str, str], None],
        peers: dict[str, bytes],
    ) -> None:
        """``append``: add a record to the log (not yet durable). ``refuse``: count."""
        self.state = state
        self.key = key
        self.append = append
        self.refuse = refuse
        self.books = state.books
        self.resolver = Resolver(state.identity.name, peers, self._federation_record)
        self.customers: dict[bytes, str] = {}
        for address in self.books.addresses():
            user = self.books.user(address)
            assert user is not None
            self.customers[user.user_key] = address
        self.waiting: dict[int, _Waiting] = {}
        self.next_token = 0
        # The process checking batched transfers' signatures ahead (the runtime's).
        self.checker: CheckAhead | None = None

    def _federation_record(self, address: str) -> Any:
        user = self.books.user(address)
        return None if user is None else user.federation

    # --- the Books core ---------------------------------------------------------------

    def run_books(self, event: BooksInput, now_ms: int) -> list[BooksEffect]:
        """Decide, sign what the core asks, log the record; return the notifications."""
        effects = self.books.handle(event, now_ms)
        done: list[BooksEffect] = []
        for effect in effects:
            if isinstance(effect, SignRecord):
                signatures = tuple(self.key.sign(t.kind, t.payload) for t in effect.to_sign)
                done += self.books.apply_signed(effect.record, signatures)
            else:
                done.append(effect)
        for effect in done:
            if isinstance(effect, PersistRecord):
                self.append(ledger_log_record(effect.record))
            elif isinstance(effect, NotifyRefused):
                self.refuse(effect.reason, effect.detail)
                raise ApiError(effect.reason, effect.detail)
            elif isinstance(effect, NotifyRegistered):
                record = effect.federation.record
                self.customers[record.user_key] = record.address
        return done

    def _sign_instruction(self, instruction: Deposit | Withdraw) -> SignedInstruction:
        request = instruction.signing_request()
        signature = self.key.sign(request.kind, request.payload)
        return SignedInstruction(instruction, self.key.public_key, signature)

    # --- operator requests --------------------------------------------------------

    def register(self, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        identity = signed_identity_from_wire(_unpack(args["identity"], "identity"))
        attributes = args.get("attributes") or {}
        effects = self.run_books(
            ActionRegisterUser(identity, args["kyc_level"], attributes), now_ms
        )
        [registered] = [e for e in effects if isinstance(e, NotifyRegistered)]
        record = registered.federation
        return {
            "address": record.record.address,
            "user_key": record.record.user_key,
            "kyc_level": record.record.kyc_level,
            "federation": encode_record(record),
        }

    def freeze(self, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        effects = self.run_books(ActionFreeze(args["address"], args["frozen"]), now_ms)
        [frozen] = [e for e in effects if isinstance(e, NotifyFrozen)]
        return {"address": frozen.address, "frozen": frozen.frozen}

    def define_asset(self, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        definition = AssetDefinition(
            f"{self.state.identity.name}/{args['code']}",
            args["decimals"],
            args.get("kyc_level") or 0,
            args.get("max_supply"),
        )
        request = definition.signing_request()
        signed = SignedAssetDefinition(definition, self.key.sign(request.kind, request.payload))
        effects = self.run_books(ActionDefineAsset(signed), now_ms)
        [defined] = [e for e in effects if isinstance(e, NotifyAssetDefined)]
        return _asset_row(defined.definition.definition)

    def issue(self, args: dict[str, Any], now_ms: int, *, deposit: bool) -> dict[str, Any]:
        nonce = self.books.last_nonce(self.state.identity.name) + 1
        kind = Deposit if deposit else Withdraw
        instruction = self._sign_instruction(
            kind(args["address"], args["uai"], args["amount"], nonce)
        )
        event = ActionDeposit(instruction) if deposit else ActionWithdraw(instruction)
        return self._appended(self.run_books(event, now_ms), args["address"])

    def _appended(self, effects: list[BooksEffect], address: str) -> dict[str, Any]:
        [appended] = [e for e in effects if isinstance(e, NotifyAppended)]
        return {
            "entries": [_entry_row(entry) for entry in appended.entries],
            "balances": self.books.balances(address),
        }

    def users(self) -> list[dict[str, Any]]:
        rows = []
        for address in self.books.addresses():
            user = self.books.user(address)
            assert user is not None
            rows.append(
                {
                    "address": address,
                    "user_key": user.user_key,
                    "kyc_level": user.kyc_level,
                    "frozen": user.frozen,
                    "entries": self.books.chain_length(address),
                }
            )
        return rows

    def assets(self) -> list[dict[str, Any]]:
        rows = []
        totals = self.books.totals()
        for uai in self.books.uais():
            definition = self.books.asset(uai)
            assert definition is not None
            asset_totals = totals.get(uai)
            row = _asset_row(definition)
            row["outstanding"] = 0 if asset_totals is None else asset_totals.outstanding
            rows.append(row)
        return rows

    def account(self, address: str) -> dict[str, Any]:
        user = self.books.user(address)
        if user is None:
            raise ApiError("unknown-user", f"{address} is not a user of this validator")
        return {
            "address": address,
            "kyc_level": user.kyc_level,
            "frozen": user.frozen,
            "balances": self.books.balances(address),
            "entries": self.books.chain_length(address),
            "last_nonce": self.books.last_nonce(address),
        }

    # --- customer requests --------------------------------------------------------

    def customer_address(self, client_key: bytes) -> str:
        address = self.customers.get(client_key)
        assert address is not None, "the engine routes only customers here"
        return address

    def transfer(self, client_key: bytes, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        signed = self._customer_instruction(client_key, args["instruction"])
        effects = self.run_books(ReceiveTransfer(signed), now_ms)
        return self._appended(effects, self.customer_address(client_key))

    @staticmethod
    def _customer_instruction(client_key: bytes, raw: bytes) -> SignedInstruction:
        parts = _unpack(raw, "instruction")
        if type(parts) is not list or len(parts) != 3:
            raise ApiError("bad-request", "an instruction is [body, signer key, signature]")
        try:
            signed = signed_instruction_from_parts(*parts)
        except DecodeError as error:
            raise ApiError("bad-instruction", str(error)) from None
        if signed.signer_key != client_key:
            raise ApiError("not-yours", "submit only instructions signed with your own key")
        return signed

    def send_ahead(self, payloads: Iterable[bytes]) -> None:
        """Hand the checker process the batched transfers of customers' requests of
        this pass but the first, which is checked here while the child starts on
        the others (node.check_ahead)."""
        assert self.checker is not None
        first = True
        for payload in payloads:
            batch = _batched_instructions(payload)
            if batch is None:
                continue
            if first:  # checked here, while the child starts on the others
                first = False
            elif not self.checker.send(batch):
                return

    def transfers(
        self, client_key: bytes, instructions: list[bytes], now_ms: int
    ) -> dict[str, Any]:
        """A customer's signed transfers in one request (a payroll, a bank's app
        relaying its users' payments): each decided on its own, in order, as if
        sent one by one. The answer lists, per instruction, the payer's new entry
        or the refusal; all of them are durable before it leaves."""
        decoded: list[SignedInstruction | ApiError] = []
        for raw in instructions:
            try:
                decoded.append(self._customer_instruction(client_key, raw))
            except ApiError as error:
                decoded.append(error)
        answers = None if self.checker is None else self.checker.answers_for(instructions)
        # The Books check each signature in turn: the checker process has checked
        # them already, or they are checked here first (on every core, without it).
        if answers is None:
            verify_all([item for item in decoded if isinstance(item, SignedInstruction)])
        else:
            for item, valid in zip(decoded, answers, strict=True):
                if valid and isinstance(item, SignedInstruction):
                    kind, payload = item.instruction.KIND, item.payload()
                    remember_valid(item.signer_key, kind, payload, item.signature)
        # Decided one after the other, each applied at once; signed together.
        results: list[dict[str, Any]] = []
        signed_later: list[int] = []  # where each record's entry row goes
        for item in decoded:
            if isinstance(item, SignedInstruction):
                effects = self.books.handle(ReceiveTransfer(item), now_ms)
                [effect] = effects
                if isinstance(effect, SignRecord):
                    self.books.apply_before_signing(effect.record)
                    signed_later.append(len(results))
                    results.append({})
                    continue
                assert isinstance(effect, NotifyRefused), effect
                self.refuse(effect.reason, effect.detail)
                item = ApiError(effect.reason, effect.detail)
            results.append({"refused": item.code, "detail": item.message})
        # One signature for the request's records: over the Merkle root of theirs.
        request = self.books.batch_request()
        signature = None if request is None else self.key.sign(request.kind, request.payload)
        rows = iter(signed_later)
        for done in self.books.sign_applied(signature):
            if isinstance(done, PersistRecord):
                self.append(ledger_log_record(done.record))
            elif isinstance(done, NotifyAppended):
                results[next(rows)]["entry"] = _entry_row(done.entries[0])
        return {
            "results": results,
            "balances": self.books.balances(self.customer_address(client_key)),
        }

    def chain_pull(self, address: str, from_seq: int) -> dict[str, Any]:
        entries = self.books.chain(address, from_seq, CHAIN_ENTRIES_PER_PULL_MAX)
        user = self.books.user(address)
        return {
            "address": address,
            "validator_key": self.key.public_key,
            "federation": None if user is None else encode_record(user.federation),
            "entries": [entry.encoded() for entry in entries],
            "length": self.books.chain_length(address),
        }

    # --- federation ---------------------------------------------------------------

    def resolve(
        self, client_key: bytes, request_id: int, address: str, req_id: int, now_ms: int
    ) -> tuple[list[FederationEffect], dict[str, Any] | None]:
        """Start a resolution; returns (effects, answer if known at once)."""
        self.next_token += 1
        token = self.next_token
        self.waiting[token] = _Waiting(client_key, request_id)
        effects = self.resolver.handle(ActionResolve(token, req_id, address), now_ms)
        return effects, None

    def on_peer_message(
        self, peer_key: bytes, message: Resolve | Resolved, now_ms: int
    ) -> list[FederationEffect]:
        if isinstance(message, Resolve):
            return self.resolver.handle(ReceiveResolve(peer_key, message), now_ms)
        return self.resolver.handle(ReceiveResolved(peer_key, message), now_ms)

    def tick(self, now_ms: int) -> list[FederationEffect]:
        return self.resolver.handle(FederationTick(), now_ms)

    def settle(self, effects: list[FederationEffect], send: Outbox, reply: Reply) -> None:
        """Carry out the resolver's effects: messages to peers, answers to clients."""
        for effect in effects:
            if isinstance(effect, SendToPeer):
                send(effect.peer_key, effect.message)
            elif isinstance(effect, FederationRefused):
                self.refuse(f"federation-{effect.reason}", effect.detail)
            elif isinstance(effect, NotifyResolved):
                waiting = self.waiting.pop(effect.token, None)
                if waiting is None:
                    continue
                if effect.resolution is None:
                    error = ApiError(effect.error or "unresolved", effect.detail)
                    reply(waiting.client_key, waiting.request_id, None, error)
                else:
                    answer = _resolution_row(effect.resolution, effect.detail)
                    reply(waiting.client_key, waiting.request_id, answer, None)


_BATCH_OP = pack("ledger_transfers")


def _batched_instructions(payload: bytes) -> list[bytes] | None:
    """The raw instructions of a ``ledger_transfers`` request, or None. Other
    requests are passed over without decoding them (one that spells its op in
    an unusual encoding is just checked in-process)."""
    if _BATCH_OP not in payload:
        return None
    try:
        request = decode_request(payload)
    except ApiError:
        return None
    if request.op != "ledger_transfers":
        return None
    instructions: list[bytes] = request.args["instructions"]
    return instructions


def _unpack(value: bytes, name: str) -> Any:
    try:
        return unpack(value, API_FRAME_BYTES_MAX)
    except DecodeError as error:
        raise ApiError("bad-request", f"{name}: {error}") from None


def _asset_row(definition: AssetDefinition) -> dict[str, Any]:
    return {
        "uai": definition.uai,
        "decimals": definition.decimals,
        "kyc_level": definition.kyc_level,
        "max_supply": definition.max_supply,
    }


def _entry_row(entry: ChainEntry) -> dict[str, Any]:
    return {"ubi": entry.body.ubi, "seq": entry.body.seq, "hash": entry.entry_hash()}


def _resolution_row(resolution: Resolution, how: str) -> dict[str, Any]:
    return {
        "address": resolution.address,
        "user_key": resolution.user_key,
        "kyc_level": resolution.kyc_level,
        "validator_key": resolution.validator_key,
        "record": encode_record(resolution.record),
        "how": how,
    }
