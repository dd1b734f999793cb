"""The order book: the live offers a node knows, searchable by pair and by asset.

Rules:
- Entries are views of verified offer items (``node.offers.items``), keyed by
  offer id. A newer status seq replaces an entry (its ``left`` changes); an
  equal or older seq changes nothing; a status that is no longer live
  (cancelled, filled) removes the entry.
- Order, for a taker: lowest price first, price = buy_amount / sell_amount
  compared exactly (fractions of integers, never floats alone); ties by earlier
  expiry, then by offer id. Across pairs, by (sell UAI, buy UAI).
- Every search costs O(limit) plus the expired entries it skips: one sorted
  list per pair, per sold asset and per bought asset, all under one key, so a
  search reads a prefix (or merges two). ``prune`` removes expired entries;
  the shell calls it on its timer, so few are ever skipped.
- Limits: OFFERS_LIVE_PER_MAKER_MAX live offers per maker and
  OFFERS_LIVE_PER_VALIDATOR_MAX per validator: a new offer beyond them is
  refused (a replacement always passes); a search returns at most
  OFFER_BOOK_RESULTS_MAX entries.
- Every change is returned as a ``BookChange`` ("new", "changed", "removed"),
  so the shell can stream them to watchers (``offers watch --asset UAI``).
- Pure and deterministic: time is ``now_ms``; no I/O.
"""

from __future__ import annotations

import bisect
import enum
import heapq
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, TypeVar

from node.limits import (
    OFFER_BOOK_RESULTS_MAX,
    OFFERS_LIVE_PER_MAKER_MAX,
    OFFERS_LIVE_PER_VALIDATOR_MAX,
)

_Key = tuple[str, str, float, Fraction, int, bytes]
"""(sell UAI, buy UAI, price rounded, price, expires_ms, offer id): the one order of the
book. The correctly rounded float goes first only for speed (a Fraction comparison costs a
microsecond): rounding is monotonic, so floats that differ order as their prices do, and
equal floats fall through to the exact Fraction."""
_Name = TypeVar("_Name", str, tuple[str, str])  # an index's names: an asset or a pair


@dataclass(frozen=True, slots=True)
class BookEntry:
    """A live offer as the book shows it. Amounts are in smallest units."""

    offer_id: bytes
    maker: str  # address
    validator: str  # the maker's validator (domain)
    sell_uai: str  # what the taker gets
    buy_uai: str  # what the taker pays
    sell_amount: int
    buy_amount: int
    left: int  # of sell_amount, still to take
    min_fill: int
    expires_ms: int
    seq: int  # the status seq this view comes from

    @property
    def price(self) -> tuple[int, int]:
        """buy units per sell unit, as a reduced fraction (numerator, denominator)."""
        fraction = Fraction(self.buy_amount, self.sell_amount)
        return fraction.numerator, fraction.denominator

    def price_text(self, digits: int = 9) -> str:
        """The price as a decimal rounded half-up to ``digits`` places, for display."""
        scaled = (self.buy_amount * 10**digits * 2 + self.sell_amount) // (2 * self.sell_amount)
        whole, fraction = divmod(scaled, 10**digits)
        return f"{whole}.{fraction:0{digits}d}" if digits else str(whole)

    def mentions(self, asset: str) -> bool:
        return asset in (self.sell_uai, self.buy_uai)

    def key(self) -> _Key:
        return (
            self.sell_uai,
            self.buy_uai,
            self.buy_amount / self.sell_amount,  # int / int is correctly rounded
            Fraction(self.buy_amount, self.sell_amount),
            self.expires_ms,
            self.offer_id,
        )


@dataclass(frozen=True, slots=True)
class BookChange:
    """What a watcher sees: an entry appeared, changed (its ``left``) or left the book."""

    kind: Literal["new", "changed", "removed"]
    entry: BookEntry


class BookRefusal(enum.StrEnum):
    EXPIRED = "expired"
    MAKER_FULL = "maker-full"  # OFFERS_LIVE_PER_MAKER_MAX
    VALIDATOR_FULL = "validator-full"  # OFFERS_LIVE_PER_VALIDATOR_MAX


class OrderBook:
    """See the module's rules."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[BookEntry, _Key]] = {}
        self._pairs: dict[tuple[str, str], list[_Key]] = {}
        self._by_sell: dict[str, list[_Key]] = {}
        self._by_buy: dict[str, list[_Key]] = {}
        self._per_maker: dict[str, int] = {}
        self._per_validator: dict[str, int] = {}
        self._expiries: list[tuple[int, bytes]] = []  # heap; may name removed entries

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> Iterator[BookEntry]:
        """Every entry held, in no particular order."""
        return (entry for entry, _ in self._entries.values())

    def get(self, offer_id: bytes) -> BookEntry | None:
        held = self._entries.get(offer_id)
        return None if held is None else held[0]

    # --- changes --------------------------------------------------------------------

    def put(self, entry: BookEntry, now_ms: int) -> tuple[list[BookChange], BookRefusal | None]:
        """Add a live offer or replace it by a newer seq. An expired one removes it."""
        assert 0 < entry.left <= entry.sell_amount, "only live offers with something left"
        if entry.expires_ms <= now_ms:
            return self.remove(entry.offer_id), BookRefusal.EXPIRED
        held = self._entries.get(entry.offer_id)
        if held is not None:
            if entry.seq <= held[0].seq:
                return [], None
            assert entry.key() == held[1], "one offer id, one offer"
            self._entries[entry.offer_id] = (entry, held[1])
            return [BookChange("changed", entry)], None
        if self._per_maker.get(entry.maker, 0) >= OFFERS_LIVE_PER_MAKER_MAX:
            return [], BookRefusal.MAKER_FULL
        if self._per_validator.get(entry.validator, 0) >= OFFERS_LIVE_PER_VALIDATOR_MAX:
            return [], BookRefusal.VALIDATOR_FULL
        self._insert(entry)
        return [BookChange("new", entry)], None

    def remove(self, offer_id: bytes) -> list[BookChange]:
        """Take an offer out of the book (cancelled, filled, its item gone)."""
        held = self._entries.pop(offer_id, None)
        if held is None:
            return []
        entry, key = held
        _discard(self._pairs, (entry.sell_uai, entry.buy_uai), key)
        _discard(self._by_sell, entry.sell_uai, key)
        _discard(self._by_buy, entry.buy_uai, key)
        _count(self._per_maker, entry.maker, -1)
        _count(self._per_validator, entry.validator, -1)
        return [BookChange("removed", entry)]

    def retain_validators(self, validators: Collection[str]) -> list[BookChange]:
        """Remove the offers of every validator not in ``validators`` (the domains the
        trust still accepts, after an endorsement went away). Scans the whole book."""
        if all(validator in validators for validator in self._per_validator):
            return []
        gone = [i for i, (entry, _) in self._entries.items() if entry.validator not in validators]
        return [change for offer_id in sorted(gone) for change in self.remove(offer_id)]

    def prune(self, now_ms: int) -> list[BookChange]:
        """Remove every entry expired at ``now_ms``."""
        changes: list[BookChange] = []
        while self._expiries and self._expiries[0][0] <= now_ms:
            _, offer_id = heapq.heappop(self._expiries)
            held = self._entries.get(offer_id)
            if held is not None and held[0].expires_ms <= now_ms:
                changes.extend(self.remove(offer_id))
        return changes

    def _insert(self, entry: BookEntry) -> None:
        key = entry.key()
        self._entries[entry.offer_id] = (entry, key)
        bisect.insort(self._pairs.setdefault((entry.sell_uai, entry.buy_uai), []), key)
        bisect.insort(self._by_sell.setdefault(entry.sell_uai, []), key)
        bisect.insort(self._by_buy.setdefault(entry.buy_uai, []), key)
        _count(self._per_maker, entry.maker, 1)
        _count(self._per_validator, entry.validator, 1)
        heapq.heappush(self._expiries, (entry.expires_ms, entry.offer_id))
        if len(self._expiries) > 2 * len(self._entries) + 1024:  # removed entries pile up
            self._expiries = [(e.expires_ms, i) for i, (e, _) in self._entries.items()]
            heapq.heapify(self._expiries)

    # --- search ---------------------------------------------------------------------

    def search(
        self,
        sell_uai: str | None = None,
        buy_uai: str | None = None,
        asset: str | None = None,
        *,
        now_ms: int,
        limit: int = 20,
    ) -> list[BookEntry]:
        """Live offers, best first for a taker: those selling ``sell_uai``, buying
        ``buy_uai`` and mentioning ``asset`` (each None: any). At most ``limit``
        (itself at most OFFER_BOOK_RESULTS_MAX)."""
        limit = max(0, min(limit, OFFER_BOOK_RESULTS_MAX))
        found: list[BookEntry] = []
        last: _Key | None = None
        for key in self._sources(sell_uai, buy_uai, asset):
            if len(found) >= limit:
                break
            if key == last:
                continue  # an offer selling and buying one asset is in both asset lists
            last = key
            if key[4] > now_ms:
                found.append(self._entries[key[5]][0])
        return found

    def _sources(self, sell: str | None, buy: str | None, asset: str | None) -> Iterator[_Key]:
        """The keys that match, in book order."""
        if asset is not None and sell is None and buy is None:
            return heapq.merge(self._by_sell.get(asset, ()), self._by_buy.get(asset, ()))
        if asset is not None:  # with a side: the asset is that side or the other one
            if sell is not None and buy is not None:
                if asset not in (sell, buy):
                    return iter(())
            elif sell is not None and asset != sell:
                buy = asset
            elif buy is not None and asset != buy:
                sell = asset
        if sell is not None and buy is not None:
            return iter(self._pairs.get((sell, buy), ()))
        if sell is not None:
            return iter(self._by_sell.get(sell, ()))
        if buy is not None:
            return iter(self._by_buy.get(buy, ()))
        return _chain(self._by_sell[name] for name in sorted(self._by_sell))


def _chain(lists: Iterable[list[_Key]]) -> Iterator[_Key]:
    for keys in lists:
        yield from keys


def _discard(index: dict[_Name, list[_Key]], name: _Name, key: _Key) -> None:
    keys = index[name]
    position = bisect.bisect_left(keys, key)
    assert keys[position] == key
    del keys[position]
    if not keys:
        del index[name]


def _count(counts: dict[str, int], name: str, step: int) -> None:
    count = counts.get(name, 0) + step
    if count:
        counts[name] = count
    else:
        del counts[name]
