"""The offers desk: how the engine makes, spreads, finds and takes exchange offers.

Rules:
- Offers travel as gossip items of kind ``offer`` in the engine the payments
  desk owns (route announcements share it, and its anti-entropy); endorsements
  of validators as kind ``validator``. This desk verifies them (the gossip
  verify callback: both signatures, an endorsed validator), keeps the order
  book from what gossip stored, and journals the book's changes for
  ``offers watch``.
- Making an offer: the maker's signed ``Offer`` goes to the Books, which
  reserve ``sell + max_fee`` (the same money never backs two offers nor is
  spent while reserved). The desk then signs the offer's status (seq, what is
  left, live) and publishes it. Every later change (a fill, a cancellation,
  the offer filled) is a newer status of the same item: gossip replaces the
  old one everywhere, and a closed offer stays as a tombstone until it
  expires, so it is never resurrected.
- A cancellation is the maker's signed ``OfferCancel``: logged (so the
  tombstone can be signed again after a restart), then the reservation is
  closed and what was left comes back.
- A take at this validator (maker and taker both ours) is one Books step: both
  chains change together. A take of another validator's offer goes to the
  exchange desk (``node.exchange_desk``).
- Our open offers are published again after a restart (gossip is not
  persisted); expired reservations are closed by the tick.
- Bad input is a typed ``ApiError``; nothing changes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.api.protocol import ApiError
from node.config import NodeConfig
from node.crypto import NodeKey
from node.customer_payments import instruction_arg
from node.gossip import GossipItem
from node.ledger.books import Books
from node.ledger.codec import issuer_of
from node.ledger.events import ActionOfferClose, OfferView, ReceiveOffer, ReceiveTake
from node.ledger.events import Effect as BooksEffect
from node.ledger.events import Input as BooksInput
from node.ledger.signed import (
    Offer,
    OfferCancel,
    OfferClose,
    SignedInstruction,
    Take,
)
from node.limits import (
    ENDORSE_INTERVAL_MS,
    ENDORSEMENT_LIFETIME_MS,
    GOSSIP_ITEMS_PER_ORIGIN_MAX,
    HASH_BYTES,
    OFFER_CHANGES_PER_ANSWER_MAX,
    OFFER_GOSSIP_HEADROOM,
    OFFER_JOURNAL_MAX,
    OFFER_RESYNC_INTERVAL_MS,
    OFFER_SEARCH_RESULTS_MAX,
)
from node.offers.book import BookChange, BookEntry, OrderBook
from node.offers.endorsements import (
    ENDORSEMENT_KIND,
    SignedEndorsement,
    Trust,
    ValidatorEndorsement,
    endorsement_item,
    signed_endorsement_from_body,
)
from node.offers.items import (
    OFFER_KIND,
    OfferStatus,
    apply_to_book,
    decode_offer_body,
    offer_item,
    offer_item_problem,
)
from node.signatures import KIND_OFFER_STATUS, KIND_VALIDATOR_ENDORSEMENT
from node.units import unit_code, unit_exponent

RunBooks = Callable[[BooksInput, int], list[BooksEffect]]
Publish = Callable[[GossipItem, int], None]
Append = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Change:
    cursor: int
    change: str  # "new" | "changed" | "removed"
    entry: BookEntry
    at_ms: int  # the pass that journaled it (when gossip stored it here)


class OffersDesk:
    KINDS = (OFFER_KIND, ENDORSEMENT_KIND)

    def __init__(
        self,
        config: NodeConfig,
        key: NodeKey,
        books: Books,
        run_books: RunBooks,
        cancels: dict[bytes, SignedInstruction],
        log: Callable[[dict[str, Any]], None],
    ) -> None:
        """``cancels``: the makers' signed cancellations the log holds, by offer id
        (the state's); ``log`` appends an exchange record and applies it."""
        self.config = config
        self.key = key
        self.books = books
        self.run_books = run_books
        self.cancels = cancels
        self.log = log
        peers = {peer.public_key: peer.name for peer in config.peers}
        self.trust = Trust(key.public_key, config.name, peers)
        self.book = OrderBook()
        self.journal: deque[Change] = deque(maxlen=OFFER_JOURNAL_MAX)
        self.cursor = 0
        self.seqs: dict[bytes, int] = {}
        self.endorsed_ms: int | None = None
        self.republished = False
        self.publish: Publish = lambda item, now_ms: None  # the engine sets it per pass
        self.exchanges: Any = None  # the exchange desk, for takes across validators
        self.refuse: Callable[[str, str], None] = lambda reason, detail: None
        self.now_ms = 0  # the engine sets it per pass (gossip's notifications carry no time)
        self.gossip_items_of_ours: Callable[[], int] = lambda: 0  # the engine's count
        self.resync: Callable[[int], None] = lambda now_ms: None  # anti-entropy with every peer
        self.trust_grew = False
        self.resynced_ms = 0

    # --- gossip (the payments desk's engine calls these) -------------------------------------

    def item_problem(self, item: GossipItem) -> str | None:
        if item.kind == OFFER_KIND:
            return offer_item_problem(item, self.trust)
        return self.trust.endorsement_problem(item)

    def policy_changes(self) -> int:
        """Grows whenever what ``item_problem`` declines may have changed (our trust)."""
        return self.trust.changes

    def on_stored(self, item: GossipItem) -> None:
        if item.kind == ENDORSEMENT_KIND:
            known = len(self.trust.accepted())
            self.trust.add(signed_endorsement_from_body(item.body))
            self.trust_grew = self.trust_grew or len(self.trust.accepted()) > known
            return
        changes, refusal = apply_to_book(self.book, decode_offer_body(item.body), self.now_ms)
        if refusal is not None:
            self.refuse(f"book-{refusal}", item.item_id.hex())
        self._journal(changes)

    def on_removed(self, item: GossipItem) -> None:
        if item.kind == ENDORSEMENT_KIND:
            self.trust.remove(signed_endorsement_from_body(item.body))
            # Offers of a validator no longer endorsed leave the book with it.
            self._journal(self.book.retain_validators(self.trust.domains()))
            return
        self._journal(self.book.remove(item.item_id))

    def _journal(self, changes: list[BookChange]) -> None:
        for change in changes:
            self.cursor += 1
            self.journal.append(Change(self.cursor, change.kind, change.entry, self.now_ms))

    # --- the clock -------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        if self.endorsed_ms is None or now_ms - self.endorsed_ms >= ENDORSE_INTERVAL_MS:
            self._endorse(now_ms)
        if not self.republished:
            self.republished = True
            for offer_id in self.books.offer_ids():
                self.announce_status(offer_id, now_ms)
        for view in self.books.open_offers():
            if view.offer.expires_ms <= now_ms:
                self._close(view, "expired", now_ms)
        self._journal(self.book.prune(now_ms))
        if self.trust_grew and now_ms >= self.resynced_ms + OFFER_RESYNC_INTERVAL_MS:
            # Items of a validator we did not accept yet were refused (they may arrive
            # before the endorsement that names it): ask every peer again, now.
            self.trust_grew, self.resynced_ms = False, now_ms
            self.resync(now_ms)

    def _endorse(self, now_ms: int) -> None:
        self.endorsed_ms = now_ms
        for peer in self.config.peers:
            address = f"{peer.address[0]}:{peer.address[1]}" if peer.address else None
            endorsement = ValidatorEndorsement(
                self.config.name,
                self.key.public_key,
                peer.name,
                peer.public_key,
                address,
                now_ms,
                now_ms + ENDORSEMENT_LIFETIME_MS,
            )
            signature = self.key.sign(KIND_VALIDATOR_ENDORSEMENT, endorsement.to_sign())
            self.publish(endorsement_item(SignedEndorsement(endorsement, signature)), now_ms)

    # --- our offers' statuses ----------------------------------------------------------------

    def announce_status(self, offer_id: bytes, now_ms: int) -> None:
        view = self.books.offer(offer_id)
        if view is None or view.offer.expires_ms <= now_ms:
            return
        if view.status == "open" and view.left > 0:
            state = "live"
        elif view.status == "open":
            state = "filled"  # all of it taken or carved; an unfill makes it live again
        else:
            state = "cancelled" if view.reason == "cancelled" else "filled"
            if state == "cancelled" and offer_id not in self.cancels:
                state = "filled"  # closed without the maker's signature: shown as done
        seq = max(now_ms, self.seqs.get(offer_id, 0) + 1)
        self.seqs[offer_id] = seq
        cancel = self.cancels.get(offer_id) if state == "cancelled" else None
        status = OfferStatus(
            offer_id,
            self.config.name,
            self.key.public_key,
            seq,
            view.left,
            state,
            cancel,
            now_ms,
        )
        signature = self.key.sign(KIND_OFFER_STATUS, status.to_sign())
        self.publish(offer_item(view.signed, status, signature), now_ms)

    def _close(self, view: OfferView, reason: str, now_ms: int) -> None:
        offer = view.offer
        close = OfferClose(
            offer.maker,
            view.offer_id,
            offer.sell_uai,
            view.left + view.fee_left,
            reason,
            self.books.last_nonce(self.config.name) + 1,
        )
        request = close.signing_request()
        signed = SignedInstruction(
            close, self.key.public_key, self.key.sign(request.kind, request.payload)
        )
        self.run_books(ActionOfferClose(signed), now_ms)
        self.announce_status(view.offer_id, now_ms)

    # --- the API -----------------------------------------------------------------------------

    def decimals_of(self, uai: str) -> int | None:
        """The decimals of ``uai``: ours, or those of the unit of its code we pay in."""
        if issuer_of(uai) == self.config.name:
            asset = self.books.asset(uai)
            return None if asset is None else int(asset.decimals)
        code = uai.partition("/")[2]
        for unit in self.config.units:
            if unit_code(unit) == code:
                return -unit_exponent(unit)
        return None

    def asset_info(self, uai: str) -> dict[str, Any]:
        decimals = self.decimals_of(uai)
        if decimals is None:
            raise ApiError(
                "unknown-asset",
                f"{self.config.name} neither issues {uai} nor pays its code across validators",
            )
        return {"uai": uai, "decimals": decimals}

    def create(
        self, client_key: bytes, address: str, args: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        signed = _instruction(args["instruction"], client_key, Offer)
        offer = signed.instruction
        assert isinstance(offer, Offer)
        if offer.maker != address:
            raise ApiError("not-yours", f"an offer of {address}, signed by {address}")
        if self.decimals_of(offer.buy_uai) is None:
            raise ApiError(
                "no-unit", f"{offer.buy_uai} cannot be paid to {self.config.name} ([units])"
            )
        held = self.gossip_items_of_ours()
        if held >= GOSSIP_ITEMS_PER_ORIGIN_MAX - OFFER_GOSSIP_HEADROOM:
            raise ApiError(
                "validator-offer-limit", f"{held} gossip items of {self.config.name} live"
            )
        self.run_books(ReceiveOffer(signed), now_ms)
        self.announce_status(offer.offer_id, now_ms)
        return self.offer_view(offer.offer_id.hex(), now_ms)

    def cancel(
        self, client_key: bytes, address: str, args: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        signed = _instruction(args["instruction"], client_key, OfferCancel)
        cancel = signed.instruction
        assert isinstance(cancel, OfferCancel)
        view = self.books.offer(cancel.offer_id)
        if view is None or view.offer.maker != address:
            raise ApiError("unknown-offer", f"{address} has no offer {cancel.offer_id.hex()}")
        if view.status != "open":
            raise ApiError("offer-closed", f"offer {cancel.offer_id.hex()[:16]} is {view.reason}")
        if not signed.verifies():
            raise ApiError("bad-signature", "the cancellation's signature does not verify")
        if cancel.offer_id not in self.cancels:
            self.log({"k": "cancel", "offer": cancel.offer_id, "i": signed.to_wire()})
        self._close(view, "cancelled", now_ms)
        return self.offer_view(cancel.offer_id.hex(), now_ms)

    def take(
        self, client_key: bytes, address: str, args: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        signed = _instruction(args["instruction"], client_key, Take)
        take = signed.instruction
        assert isinstance(take, Take)
        if take.taker != address:
            raise ApiError("not-yours", f"a take by {address}, signed by {address}")
        if take.maker.partition("@")[2] == self.config.name:
            return self.take_here(signed, now_ms)
        if self.exchanges is None:
            raise ApiError("unsupported", "takes across validators are not enabled here")
        started: dict[str, Any] = self.exchanges.start(signed, now_ms)
        return started

    def take_status(self, address: str, take_id: str) -> dict[str, Any]:
        if self.exchanges is None:
            raise ApiError("not-found", f"no take {take_id}")
        status: dict[str, Any] = self.exchanges.status(address, bytes.fromhex(take_id))
        return status

    def take_here(self, signed: SignedInstruction, now_ms: int) -> dict[str, Any]:
        """A take of one of our own customers' offers: one Books step."""
        take = signed.instruction
        assert isinstance(take, Take)
        self.run_books(ReceiveTake(signed), now_ms)
        view = self.books.offer(take.offer_id)
        if view is not None and view.status == "open" and view.left == 0:
            self._close(view, "filled", now_ms)
        else:
            self.announce_status(take.offer_id, now_ms)
        return {
            "take_id": take.take_id.hex(),
            "offer_id": take.offer_id.hex(),
            "state": "settled",
            "reason": None,
            "amount": take.amount,
            "pay": take.pay,
            "maker": take.maker,
            "balances": self.books.balances(take.taker),
        }

    def offer_view(self, prefix: str, now_ms: int) -> dict[str, Any]:
        """One offer by id or unique prefix: ours from the Books, others from the book.
        A whole id is looked up; a prefix (what people type) is searched for."""
        if len(prefix) == 2 * HASH_BYTES:
            ids = {bytes.fromhex(prefix)}
        else:
            ids = {oid for oid in self.books.offer_ids() if oid.hex().startswith(prefix)}
            ids |= {e.offer_id for e in self.book.entries() if e.offer_id.hex().startswith(prefix)}
        if len(ids) > 1:
            raise ApiError("ambiguous", f"more than one offer starts with {prefix}")
        offer_id = next(iter(ids), b"")
        if self.books.offer(offer_id) is not None:
            return self._own_view(offer_id)
        entry = self.book.get(offer_id)
        if entry is None:
            raise ApiError("unknown-offer", f"no live offer {prefix} known here")
        return self.entry_view(entry)

    def _own_view(self, offer_id: bytes) -> dict[str, Any]:
        view = self.books.offer(offer_id)
        assert view is not None
        offer = view.offer
        return {
            "offer_id": offer_id.hex(),
            "maker": offer.maker,
            "validator": self.config.name,
            "sell_uai": offer.sell_uai,
            "sell_amount": offer.sell_amount,
            "buy_uai": offer.buy_uai,
            "buy_amount": offer.buy_amount,
            "min_fill": offer.min_fill,
            "left": view.left if view.status == "open" else 0,
            "expires_ms": offer.expires_ms,
            "state": "live" if view.status == "open" else view.reason,
            "sell_decimals": self.decimals_of(offer.sell_uai),
            "buy_decimals": self.decimals_of(offer.buy_uai),
        }

    def entry_view(self, entry: BookEntry) -> dict[str, Any]:
        return {
            "offer_id": entry.offer_id.hex(),
            "maker": entry.maker,
            "validator": entry.validator,
            "sell_uai": entry.sell_uai,
            "sell_amount": entry.sell_amount,
            "buy_uai": entry.buy_uai,
            "buy_amount": entry.buy_amount,
            "min_fill": entry.min_fill,
            "left": entry.left,
            "expires_ms": entry.expires_ms,
            "state": "live",
            "sell_decimals": self.decimals_of(entry.sell_uai),
            "buy_decimals": self.decimals_of(entry.buy_uai),
        }

    def search(self, args: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        limit = min(int(args["limit"]), OFFER_SEARCH_RESULTS_MAX)
        found = self.book.search(
            args.get("sell"), args.get("buy"), args.get("asset"), now_ms=now_ms, limit=limit
        )
        return [self.entry_view(entry) for entry in found]

    def changes(self, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        asset, after = args["asset"], args.get("after")
        if after is None:
            current = self.book.search(
                None, None, asset, now_ms=now_ms, limit=OFFER_SEARCH_RESULTS_MAX
            )
            return {
                "cursor": self.cursor,
                "current": [self.entry_view(entry) for entry in current],
                "changes": [],
                "gap": False,
            }
        oldest = self.journal[0].cursor if self.journal else self.cursor + 1
        changes = []
        for change in self.journal:
            if change.cursor <= after:
                continue
            if asset in (change.entry.sell_uai, change.entry.buy_uai):
                view = self.entry_view(change.entry)
                changes.append({"change": change.change, "offer": view, "at_ms": change.at_ms})
            if len(changes) >= OFFER_CHANGES_PER_ANSWER_MAX:
                return {"cursor": change.cursor, "current": [], "changes": changes, "gap": False}
        return {
            "cursor": self.cursor,
            "current": [],
            "changes": changes,
            "gap": after + 1 < oldest,
        }


def _instruction(value: object, client_key: bytes, kind: type) -> SignedInstruction:
    signed = instruction_arg(value)
    if signed.signer_key != client_key:
        raise ApiError("not-yours", "submit only instructions signed with your own key")
    if not isinstance(signed.instruction, kind):
        raise ApiError("bad-instruction", f"expected {kind.__name__}")
    return signed
