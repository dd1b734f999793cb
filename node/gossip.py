"""Gossip: signed items spread to every node reachable through the trust graph.

Rules:
- An item is named by (origin key, kind, item id) and carries a sequence
  number, an expiry and an opaque signed body. A newer seq replaces an older
  one; an equal or older seq is a duplicate and is dropped silently.
- Verify before store and forward: the ``verify`` callback (the kind's own
  signature and content checks) must pass before an item is stored, and only
  stored items are forwarded, to every trusted peer but the sender.
- Limits: GOSSIP_ITEMS_PER_ORIGIN_MAX items per origin, GOSSIP_ITEMS_MAX in
  all (a full cache refuses new names; replacing an item is always allowed),
  and a token bucket per origin (GOSSIP_ORIGIN_BURST_ITEMS, one more token every
  GOSSIP_ORIGIN_REFILL_MS) charged after verification, so a peer cannot spend
  an honest origin's budget with forgeries.
- Expiry: an item whose expiry has passed, or lies more than
  GOSSIP_ITEM_LIFETIME_MS_MAX ahead, is refused; TimerTick prunes what expired.
- Anti-entropy, bounded per round: items are ordered by name; a digest lists
  the (name, seq) of our items in a range (after ``low``, up to ``high``), at
  most GOSSIP_DIGEST_ENTRIES_MAX. Whoever receives it sends back, at most
  GOSSIP_ROUND_ITEMS_MAX, the items of that range it holds and the digest
  lacks or lists older. Each side walks its own ranges with each peer (one
  range when the link comes back, then one every GOSSIP_ROUND_INTERVAL_MS), so
  both directions catch up and a lost message is only ever late.
- Pure: time is ``now_ms``; no I/O, no randomness. Nothing is persisted: after
  a restart the node catches up by anti-entropy.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from node.codec import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    require_bytes,
    require_int,
    require_str,
)
from node.limits import (
    GOSSIP_DIGEST_ENTRIES_MAX,
    GOSSIP_ITEM_BYTES_MAX,
    GOSSIP_ITEM_ID_BYTES_MAX,
    GOSSIP_ITEM_LIFETIME_MS_MAX,
    GOSSIP_ITEMS_MAX,
    GOSSIP_ITEMS_PER_MESSAGE_MAX,
    GOSSIP_ITEMS_PER_ORIGIN_MAX,
    GOSSIP_KIND_LENGTH_MAX,
    GOSSIP_ORIGIN_BURST_ITEMS,
    GOSSIP_ORIGIN_REFILL_MS,
    GOSSIP_ORIGINS_TRACKED_MAX,
    GOSSIP_ROUND_INTERVAL_MS,
    GOSSIP_ROUND_ITEMS_MAX,
    PUBLIC_KEY_BYTES,
)

ItemName = tuple[bytes, str, bytes]
"""(origin key, kind, item id): what a newer seq replaces."""


class GossipRefusal(enum.StrEnum):
    UNTRUSTED_PEER = "untrusted-peer"
    EXPIRED = "expired"
    EXPIRY_TOO_FAR = "expiry-too-far"
    INVALID = "invalid"  # the verify callback refused it; its reason is the detail
    RATE_LIMITED = "rate-limited"
    ORIGIN_FULL = "origin-full"
    CACHE_FULL = "cache-full"
    NOT_OURS = "not-ours"  # ActionPublish of an item another key originates


# --- wire ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GossipItem:
    origin: bytes
    kind: str
    item_id: bytes
    seq: int
    expires_ms: int
    body: bytes

    @property
    def name(self) -> ItemName:
        return (self.origin, self.kind, self.item_id)

    def to_wire(self) -> list[Any]:
        return [self.origin, self.kind, self.item_id, self.seq, self.expires_ms, self.body]


def _item_name_from_wire(value: object) -> ItemName:
    if type(value) is not list or len(value) != 3:
        raise DecodeError("bad-field", "an item name is [origin, kind, id]")
    origin = require_bytes(value[0], "origin", PUBLIC_KEY_BYTES)
    kind = require_str(value[1], "kind", GOSSIP_KIND_LENGTH_MAX)
    item_id = value[2]
    if type(item_id) is not bytes or not 0 < len(item_id) <= GOSSIP_ITEM_ID_BYTES_MAX:
        raise DecodeError("bad-field", f"an item id is 1..{GOSSIP_ITEM_ID_BYTES_MAX} bytes")
    return (origin, kind, item_id)


def gossip_item_from_wire(value: object) -> GossipItem:
    if type(value) is not list or len(value) != 6:
        raise DecodeError("bad-field", "an item is [origin, kind, id, seq, expires, body]")
    origin, kind, item_id = _item_name_from_wire(value[:3])
    body = value[5]
    if type(body) is not bytes or len(body) > GOSSIP_ITEM_BYTES_MAX:
        raise DecodeError("bad-field", f"an item body is bytes, at most {GOSSIP_ITEM_BYTES_MAX}")
    seq = require_int(value[3], "seq", 0, MSG_ID_MAX)
    expires_ms = require_int(value[4], "expires", 0, TIME_MS_MAX)
    return GossipItem(origin, kind, item_id, seq, expires_ms, body)


@dataclass(frozen=True, slots=True)
class GossipItems:
    """Peer message GOSSIP: items to store and forward."""

    items: tuple[GossipItem, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"msgType": "GOSSIP", "items": [item.to_wire() for item in self.items]}


@dataclass(frozen=True, slots=True)
class GossipDigest:
    """Peer message DIGEST: the sender's items named after ``low`` and up to
    ``high`` (None: no bound), with their seqs."""

    low: ItemName | None
    high: ItemName | None
    entries: tuple[tuple[ItemName, int], ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "msgType": "DIGEST",
            "low": None if self.low is None else list(self.low),
            "high": None if self.high is None else list(self.high),
            "entries": [[list(name), seq] for name, seq in self.entries],
        }


GossipMessage = GossipItems | GossipDigest


def gossip_from_wire(fields: dict[str, Any]) -> GossipMessage:
    """Decode a GOSSIP or DIGEST map (``msgType`` already seen). Raises DecodeError."""
    if fields.get("msgType") == "GOSSIP":
        check_fields(fields, frozenset({"msgType", "items"}), frozenset())
        items = fields["items"]
        if type(items) is not list or not 0 < len(items) <= GOSSIP_ITEMS_PER_MESSAGE_MAX:
            raise DecodeError("bad-field", f"items: 1..{GOSSIP_ITEMS_PER_MESSAGE_MAX}")
        return GossipItems(tuple(gossip_item_from_wire(item) for item in items))
    check_fields(fields, frozenset({"msgType", "low", "high", "entries"}), frozenset())
    entries = fields["entries"]
    if type(entries) is not list or len(entries) > GOSSIP_DIGEST_ENTRIES_MAX:
        raise DecodeError("bad-field", f"entries: at most {GOSSIP_DIGEST_ENTRIES_MAX}")
    decoded: list[tuple[ItemName, int]] = []
    for entry in entries:
        if type(entry) is not list or len(entry) != 2:
            raise DecodeError("bad-field", "a digest entry is [name, seq]")
        decoded.append(
            (_item_name_from_wire(entry[0]), require_int(entry[1], "seq", 0, MSG_ID_MAX))
        )
    low = None if fields["low"] is None else _item_name_from_wire(fields["low"])
    high = None if fields["high"] is None else _item_name_from_wire(fields["high"])
    return GossipDigest(low, high, tuple(decoded))


# --- inputs and effects ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiveItems:
    peer: bytes
    items: tuple[GossipItem, ...]


@dataclass(frozen=True, slots=True)
class ReceiveDigest:
    peer: bytes
    digest: GossipDigest


@dataclass(frozen=True, slots=True)
class ActionPublish:
    """Store and spread an item of ours (the shell signed its body)."""

    item: GossipItem


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """The link to ``peer`` is (re)established: start an anti-entropy walk with it."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class TimerTick:
    """Time passed: prune expired items, run the anti-entropy rounds that are due."""


Input = ReceiveItems | ReceiveDigest | ActionPublish | PeerConnected | TimerTick


@dataclass(frozen=True, slots=True)
class SendToPeer:
    peer: bytes
    message: GossipMessage


@dataclass(frozen=True, slots=True)
class NotifyStored:
    """``item`` is stored, replacing any older item of the same name."""

    item: GossipItem


@dataclass(frozen=True, slots=True)
class NotifyRemoved:
    """``item`` expired and is gone."""

    item: GossipItem


@dataclass(frozen=True, slots=True)
class NotifyRefused:
    reason: GossipRefusal
    detail: str


Effect = SendToPeer | NotifyStored | NotifyRemoved | NotifyRefused

Verify = Callable[[GossipItem], str | None]
"""item -> why it is not acceptable, or None. Checks the signed body against the
name, seq and expiry. Must be pure."""


# --- the engine ----------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: int
    refilled_ms: int


@dataclass(slots=True)
class _Walk:
    """Where our anti-entropy walk with one peer stands."""

    after: ItemName | None = None
    next_round_ms: int = 0


class _Pass:
    """The effects of one call: notifications in order, then one batch of items per peer."""

    def __init__(self) -> None:
        self.effects: list[Effect] = []
        self.outgoing: dict[bytes, list[GossipItem]] = {}

    def forward(self, peers: Iterable[bytes], item: GossipItem) -> None:
        for peer in peers:
            self.outgoing.setdefault(peer, []).append(item)

    def finish(self) -> list[Effect]:
        for peer, items in self.outgoing.items():
            for start in range(0, len(items), GOSSIP_ITEMS_PER_MESSAGE_MAX):
                chunk = tuple(items[start : start + GOSSIP_ITEMS_PER_MESSAGE_MAX])
                self.effects.append(SendToPeer(peer, GossipItems(chunk)))
        return self.effects


class GossipEngine:
    """One node's gossip state. See the module's rules."""

    def __init__(self, own_key: bytes, peers: Iterable[bytes], verify: Verify) -> None:
        self.own_key = own_key
        # A sorted tuple, not a set: the order messages go out must not depend on
        # the process's hash seed (simulations replay byte for byte).
        self.peers = tuple(sorted(set(peers)))
        self.verify = verify
        self.items: dict[ItemName, GossipItem] = {}
        self.per_origin: dict[bytes, int] = {}
        self.buckets: dict[bytes, _Bucket] = {}
        self.walks: dict[bytes, _Walk] = {peer: _Walk() for peer in self.peers}
        self.expiries: list[tuple[int, ItemName]] = []  # heap; may hold replaced items
        self.buckets_swept_ms = 0

    def handle(self, event: Input, now_ms: int) -> list[Effect]:
        run = _Pass()
        if isinstance(event, ReceiveItems):
            self._receive(run, event.peer, event.items, now_ms)
        elif isinstance(event, ReceiveDigest):
            self._answer_digest(run, event.peer, event.digest)
        elif isinstance(event, ActionPublish):
            self._publish(run, event.item, now_ms)
        elif isinstance(event, PeerConnected):
            if event.peer in self.peers:
                self.walks[event.peer] = _Walk()
                self._round(run, event.peer, now_ms)
        else:
            self._prune(run, now_ms)
            for peer, walk in self.walks.items():
                if walk.next_round_ms <= now_ms:
                    self._round(run, peer, now_ms)
        return run.finish()

    def held(self) -> dict[ItemName, int]:
        """name -> seq of every item held."""
        return {name: item.seq for name, item in self.items.items()}

    # --- storing -----------------------------------------------------------------------

    def _receive(self, run: _Pass, peer: bytes, items: tuple[GossipItem, ...], now_ms: int) -> None:
        if peer not in self.peers:
            run.effects.append(NotifyRefused(GossipRefusal.UNTRUSTED_PEER, peer.hex()))
            return
        for item in items:
            held = self.items.get(item.name)
            if held is not None and held.seq >= item.seq:
                continue
            refusal = self._refusal(item, now_ms)
            if refusal is not None:
                run.effects.append(NotifyRefused(*refusal))
                continue
            self._store(run, item)
            run.forward((other for other in self.peers if other != peer), item)

    def _publish(self, run: _Pass, item: GossipItem, now_ms: int) -> None:
        held = self.items.get(item.name)
        if item.origin != self.own_key:
            refusal: tuple[GossipRefusal, str] | None = (GossipRefusal.NOT_OURS, item.origin.hex())
        elif held is not None and held.seq >= item.seq:
            refusal = (GossipRefusal.INVALID, f"seq {item.seq} is not above {held.seq}")
        else:
            refusal = self._expiry_refusal(item, now_ms) or self._capacity_refusal(item)
        if refusal is not None:
            run.effects.append(NotifyRefused(*refusal))
            return
        self._store(run, item)
        run.forward(self.peers, item)

    def _refusal(self, item: GossipItem, now_ms: int) -> tuple[GossipRefusal, str] | None:
        problem = self._expiry_refusal(item, now_ms) or self._capacity_refusal(item)
        if problem is not None:
            return problem
        reason = self.verify(item)
        if reason is not None:
            return GossipRefusal.INVALID, reason
        if not self._take_token(item.origin, now_ms):
            return GossipRefusal.RATE_LIMITED, item.origin.hex()
        return None

    def _expiry_refusal(self, item: GossipItem, now_ms: int) -> tuple[GossipRefusal, str] | None:
        if item.expires_ms <= now_ms:
            return GossipRefusal.EXPIRED, f"expired at {item.expires_ms}"
        if item.expires_ms > now_ms + GOSSIP_ITEM_LIFETIME_MS_MAX:
            return GossipRefusal.EXPIRY_TOO_FAR, f"expires at {item.expires_ms}"
        return None

    def _capacity_refusal(self, item: GossipItem) -> tuple[GossipRefusal, str] | None:
        if item.name in self.items:
            return None  # a replacement takes no room
        if self.per_origin.get(item.origin, 0) >= GOSSIP_ITEMS_PER_ORIGIN_MAX:
            return GossipRefusal.ORIGIN_FULL, item.origin.hex()
        if len(self.items) >= GOSSIP_ITEMS_MAX:
            return GossipRefusal.CACHE_FULL, f"{GOSSIP_ITEMS_MAX} items held"
        return None

    def _take_token(self, origin: bytes, now_ms: int) -> bool:
        bucket = self.buckets.get(origin)
        if bucket is None:
            if len(self.buckets) >= GOSSIP_ORIGINS_TRACKED_MAX:
                return False
            bucket = self.buckets[origin] = _Bucket(GOSSIP_ORIGIN_BURST_ITEMS, now_ms)
        earned = (now_ms - bucket.refilled_ms) // GOSSIP_ORIGIN_REFILL_MS
        if earned > 0:
            bucket.tokens = min(GOSSIP_ORIGIN_BURST_ITEMS, bucket.tokens + earned)
            bucket.refilled_ms += earned * GOSSIP_ORIGIN_REFILL_MS
        if bucket.tokens == 0:
            return False
        bucket.tokens -= 1
        return True

    def _store(self, run: _Pass, item: GossipItem) -> None:
        if item.name not in self.items:
            self.per_origin[item.origin] = self.per_origin.get(item.origin, 0) + 1
        self.items[item.name] = item
        heapq.heappush(self.expiries, (item.expires_ms, item.name))
        if len(self.expiries) > 2 * GOSSIP_ITEMS_MAX:  # replaced items' entries pile up
            self.expiries = [(i.expires_ms, name) for name, i in self.items.items()]
            heapq.heapify(self.expiries)
        run.effects.append(NotifyStored(item))

    def _prune(self, run: _Pass, now_ms: int) -> None:
        """Drop what expired: from a heap of expiries, so a tick costs nothing when
        nothing expires (every node ticks ten times a second)."""
        while self.expiries and self.expiries[0][0] <= now_ms:
            expires_ms, name = heapq.heappop(self.expiries)
            item = self.items.get(name)
            if item is None or item.expires_ms != expires_ms:
                continue  # replaced by a newer item since, or already gone
            del self.items[name]
            self.per_origin[item.origin] -= 1
            if self.per_origin[item.origin] == 0:
                del self.per_origin[item.origin]
            run.effects.append(NotifyRemoved(item))
        if now_ms < self.buckets_swept_ms + GOSSIP_ORIGIN_REFILL_MS:
            return
        self.buckets_swept_ms = now_ms
        for origin, bucket in list(self.buckets.items()):
            if bucket.refilled_ms + GOSSIP_ORIGIN_BURST_ITEMS * GOSSIP_ORIGIN_REFILL_MS <= now_ms:
                del self.buckets[origin]  # it would be full again: forget it

    # --- anti-entropy --------------------------------------------------------------------

    def _round(self, run: _Pass, peer: bytes, now_ms: int) -> None:
        """Send ``peer`` the digest of our next range, then move the walk on."""
        walk = self.walks[peer]
        names = sorted(name for name in self.items if walk.after is None or name > walk.after)
        chosen = names[:GOSSIP_DIGEST_ENTRIES_MAX]
        last_range = len(names) <= GOSSIP_DIGEST_ENTRIES_MAX
        high = None if last_range else chosen[-1]
        entries = tuple((name, self.items[name].seq) for name in chosen)
        run.effects.append(SendToPeer(peer, GossipDigest(walk.after, high, entries)))
        walk.after = high
        walk.next_round_ms = now_ms + GOSSIP_ROUND_INTERVAL_MS

    def _answer_digest(self, run: _Pass, peer: bytes, digest: GossipDigest) -> None:
        if peer not in self.peers:
            run.effects.append(NotifyRefused(GossipRefusal.UNTRUSTED_PEER, peer.hex()))
            return
        theirs = dict(digest.entries)
        sent = 0
        for name in sorted(self.items):
            if sent >= GOSSIP_ROUND_ITEMS_MAX:
                break
            if digest.low is not None and name <= digest.low:
                continue
            if digest.high is not None and name > digest.high:
                break
            item = self.items[name]
            if theirs.get(name, -1) < item.seq:
                run.forward([peer], item)
                sent += 1
