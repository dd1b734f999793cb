"""Gossip: signed items spread to every node reachable through the trust graph.

Rules:
- An item is named by (origin key, kind, item id) and carries a sequence
  number, an expiry and an opaque signed body. A newer seq replaces an older
  one; an equal or older seq is a duplicate and is dropped silently.
- Verify before store and forward: the ``verify`` callback (the kind's own
  signature and content checks) must pass before an item is stored, and only
  stored items are forwarded, to every trusted peer but the sender and the
  peers that announced it to us.
- Eager push, lazy pull: a newly stored item goes in full to at most
  ``eager_fanout`` (GOSSIP_EAGER_FANOUT) of those peers and as a HAVE of its
  (name, seq) to the others. The eager peers are the ones ranked first by a
  hash of (our key, item name, seq, peer key): deterministic, so simulations
  replay, yet a different spanning set for every node, item and seq. The
  origin, and a node that got the item straight from its origin, push it in
  full to every peer: the first two hops go as fast as flooding, for a few
  copies per item. A node that hears a HAVE for an item it lacks or holds
  older sends a WANT to that announcer at once; it remembers a few more
  announcers and asks the next one if no answer came within
  GOSSIP_WANT_TIMEOUT_MS. A WANT for an item we do not hold is ignored.
  Wanted names are bounded per peer and in all; what cannot be asked for is
  left to anti-entropy. ``eager_fanout=None`` floods every item to every peer
  (no HAVE, no WANT).
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
  lacks or lists older, wrapping around from a start: the item after the
  last one the previous capped answer sent that peer, if it lies in the
  range, else a position drawn from a hash of our key and the answer's
  number. So items the peer keeps refusing (offers of a validator it does
  not trust yet) cannot starve the rest of a range, and the peers of a
  restarted node send it different items. Each
  side walks its own ranges with each peer (one range when the link comes
  back, then one every GOSSIP_ROUND_INTERVAL_MS), so both directions catch up
  and a lost message is only ever late.
- Summaries once a walk has gone round: after its first full walk over our
  names with a peer (begun when the link came up), a round sends only the
  range's count and fingerprint (XOR of an 8-byte hash of each (name, seq)),
  not its entries. A receiver whose count and fingerprint of the same range
  agree sends nothing; otherwise it answers with a full digest of its own
  entries in that range, and the summary's sender answers that digest with
  what the receiver lacks. What the summary's sender lacks reaches it through
  the receiver's own rounds the same way. A quiet mesh's anti-entropy then
  costs a few dozen bytes a round instead of GOSSIP_DIGEST_ENTRIES_MAX
  entries; a receiver hashes at most that many names per summary.
- Declined items: a node's trust decides what it takes (an endorsement
  beyond its endorsement horizon, an offer of a validator it does not
  accept), so neighbours hold different sets for good. The ``verify``
  callback marks such a verdict ``Declined``: it is given only after the
  origin's signature verified, and it depends only on the item and on this
  node's trust. The node remembers the (name, seq) of a declined item and
  the peers that sent or announced that seq (they hold it), at most
  GOSSIP_DECLINED_MAX items, oldest forgotten first, each until its expiry.
  It does not take that seq again from anyone. Its digests and fingerprints
  for a peer list what it holds plus what it declined from that peer: so the
  peer neither sends it again every round nor sees our summaries disagree
  forever, and a peer that never had the item is not told of one we cannot
  send (it would disagree forever the other way). ``PolicyChanged`` (the
  shell's trust changed) forgets them all: peers send them again and they
  are judged afresh.
- Every peer message (items, digests, HAVE, WANT) from an untrusted peer is
  refused with UNTRUSTED_PEER and changes nothing.
- Pure: time is ``now_ms``; no I/O, no randomness; output order never depends
  on set iteration. Nothing is persisted: after a restart the node catches up
  by anti-entropy.
"""

from __future__ import annotations

import bisect
import enum
import functools
import hashlib
import heapq
import itertools
import operator
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
    GOSSIP_ANNOUNCERS_KEPT_MAX,
    GOSSIP_DECLINED_MAX,
    GOSSIP_DIGEST_ENTRIES_MAX,
    GOSSIP_EAGER_FANOUT,
    GOSSIP_FINGERPRINT_BYTES,
    GOSSIP_HAVE_ENTRIES_MAX,
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
    GOSSIP_WANT_NAMES_MAX,
    GOSSIP_WANT_TIMEOUT_MS,
    GOSSIP_WANTED_MAX,
    GOSSIP_WANTS_PER_PEER_MAX,
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
    if type(value) is list and len(value) == 3:
        origin, kind, item_id = value
        if (  # the usual, valid name at once; anything else is checked below, with its reason
            type(origin) is bytes
            and len(origin) == PUBLIC_KEY_BYTES
            and type(kind) is str
            and len(kind) <= GOSSIP_KIND_LENGTH_MAX
            and type(item_id) is bytes
            and 0 < len(item_id) <= GOSSIP_ITEM_ID_BYTES_MAX
        ):
            return (origin, kind, item_id)
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
    ``high`` (None: no bound), with their seqs; or, as a summary, no entries and
    ``summary`` = (how many items, their fingerprint)."""

    low: ItemName | None
    high: ItemName | None
    entries: tuple[tuple[ItemName, int], ...]
    summary: tuple[int, bytes] | None = None

    def to_wire(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "msgType": "DIGEST",
            "low": None if self.low is None else list(self.low),
            "high": None if self.high is None else list(self.high),
            "entries": [[list(name), seq] for name, seq in self.entries],
        }
        if self.summary is not None:
            fields["summary"] = list(self.summary)
        return fields


@dataclass(frozen=True, slots=True)
class GossipHave:
    """Peer message HAVE: the sender stored these items (name, seq) just now and
    did not push them to us in full; WANT what we lack."""

    entries: tuple[tuple[ItemName, int], ...]

    def to_wire(self) -> dict[str, Any]:
        return {"msgType": "HAVE", "entries": [[list(name), seq] for name, seq in self.entries]}


@dataclass(frozen=True, slots=True)
class GossipWant:
    """Peer message WANT: send these items in full (answered by one GOSSIP)."""

    names: tuple[ItemName, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"msgType": "WANT", "names": [list(name) for name in self.names]}


GossipMessage = GossipItems | GossipDigest | GossipHave | GossipWant
GOSSIP_MESSAGE_TYPES = (GossipItems, GossipDigest, GossipHave, GossipWant)
GOSSIP_MSG_TYPES = ("GOSSIP", "DIGEST", "HAVE", "WANT")  # their wire ``msgType``s


def gossip_from_wire(fields: dict[str, Any]) -> GossipMessage:
    """Decode a GOSSIP, DIGEST, HAVE or WANT map (``msgType`` already seen).
    Raises DecodeError."""
    msg_type = fields.get("msgType")
    if msg_type == "GOSSIP":
        check_fields(fields, frozenset({"msgType", "items"}), frozenset())
        items = _bounded_list(fields["items"], "items", 1, GOSSIP_ITEMS_PER_MESSAGE_MAX)
        return GossipItems(tuple(gossip_item_from_wire(item) for item in items))
    if msg_type == "HAVE":
        check_fields(fields, frozenset({"msgType", "entries"}), frozenset())
        entries = _bounded_list(fields["entries"], "entries", 1, GOSSIP_HAVE_ENTRIES_MAX)
        return GossipHave(_entries_from_wire(entries))
    if msg_type == "WANT":
        check_fields(fields, frozenset({"msgType", "names"}), frozenset())
        names = _bounded_list(fields["names"], "names", 1, GOSSIP_WANT_NAMES_MAX)
        return GossipWant(tuple(_item_name_from_wire(name) for name in names))
    check_fields(fields, frozenset({"msgType", "low", "high", "entries"}), frozenset({"summary"}))
    entries = _bounded_list(fields["entries"], "entries", 0, GOSSIP_DIGEST_ENTRIES_MAX)
    low = None if fields["low"] is None else _item_name_from_wire(fields["low"])
    high = None if fields["high"] is None else _item_name_from_wire(fields["high"])
    summary = None if "summary" not in fields else _summary_from_wire(fields["summary"], entries)
    return GossipDigest(low, high, _entries_from_wire(entries), summary)


def _summary_from_wire(value: object, entries: list[Any]) -> tuple[int, bytes]:
    if type(value) is not list or len(value) != 2:
        raise DecodeError("bad-field", "a summary is [count, fingerprint]")
    if entries:
        raise DecodeError("bad-field", "a summary's digest lists no entries")
    count = require_int(value[0], "count", 0, GOSSIP_DIGEST_ENTRIES_MAX)
    fingerprint = require_bytes(value[1], "fingerprint", GOSSIP_FINGERPRINT_BYTES)
    return count, fingerprint


def _bounded_list(value: object, field: str, least: int, most: int) -> list[Any]:
    if type(value) is not list or not least <= len(value) <= most:
        raise DecodeError("bad-field", f"{field}: {least}..{most}")
    return value


def _entries_from_wire(entries: list[Any]) -> tuple[tuple[ItemName, int], ...]:
    decoded: list[tuple[ItemName, int]] = []
    for entry in entries:
        if type(entry) is not list or len(entry) != 2:
            raise DecodeError("bad-field", "an entry is [name, seq]")
        name, seq = _item_name_from_wire(entry[0]), entry[1]
        if type(seq) is not int or not 0 <= seq <= MSG_ID_MAX:
            require_int(seq, "seq", 0, MSG_ID_MAX)  # raises, with the reason
        decoded.append((name, seq))
    return tuple(decoded)


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
class ReceiveHave:
    peer: bytes
    have: GossipHave


@dataclass(frozen=True, slots=True)
class ReceiveWant:
    peer: bytes
    want: GossipWant


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


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    """What ``verify`` declines may have changed (the node's trust did): forget every
    declined item, so peers send them again and they are judged afresh."""


Input = (
    ReceiveItems
    | ReceiveDigest
    | ReceiveHave
    | ReceiveWant
    | ActionPublish
    | PeerConnected
    | TimerTick
    | PolicyChanged
)


def receive(peer: bytes, message: GossipMessage) -> Input:
    """The input for a gossip message from ``peer``: one line for the shell."""
    if isinstance(message, GossipItems):
        return ReceiveItems(peer, message.items)
    if isinstance(message, GossipDigest):
        return ReceiveDigest(peer, message)
    if isinstance(message, GossipHave):
        return ReceiveHave(peer, message)
    return ReceiveWant(peer, message)


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


class Declined(str):
    """A ``verify`` verdict: the item is genuine (its origin's signature verifies) but
    this node's trust does not take it. It depends only on the item and that trust, so
    the node remembers it until ``PolicyChanged`` (see the module's rules)."""

    __slots__ = ()


Verify = Callable[[GossipItem], str | None]
"""item -> why it is not acceptable (a ``Declined`` when the module's rules allow), or
None. Checks the signed body against the name, seq and expiry. Must be pure."""


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
    summaries: bool = False  # the first walk went round: send summaries from now on
    answered_after: ItemName | None = None  # where our next answer to its digest resumes
    answers: int = 0  # answers that started afresh (numbered for their start)


@dataclass(slots=True)
class _Declined:
    """An item ``verify`` declined: its seq, expiry, and the peers that sent or
    announced that seq (they hold it)."""

    seq: int
    expires_ms: int
    senders: set[bytes]


@dataclass(slots=True)
class _Want:
    """A name we sent a WANT for: the seq announced, whom we asked, when, and
    who else announced it (asked next if the answer does not come)."""

    seq: int
    asked: bytes
    asked_ms: int
    others: list[bytes]


def _chunks(values: list[Any], size: int) -> Iterable[tuple[Any, ...]]:
    for start in range(0, len(values), size):
        yield tuple(values[start : start + size])


class _Pass:
    """The effects of one call: notifications in order, then per peer one batch of
    items, one of HAVE entries and one of WANT names (each split at its limit)."""

    def __init__(self) -> None:
        self.effects: list[Effect] = []
        self.outgoing: dict[bytes, list[GossipItem]] = {}
        self.haves: dict[bytes, list[tuple[ItemName, int]]] = {}
        self.wants: dict[bytes, list[ItemName]] = {}

    def forward(self, peers: Iterable[bytes], item: GossipItem) -> None:
        for peer in peers:
            self.outgoing.setdefault(peer, []).append(item)

    def forward_each(self, peer: bytes, items: list[GossipItem]) -> None:
        if items:
            self.outgoing.setdefault(peer, []).extend(items)

    def announce(self, peers: Iterable[bytes], item: GossipItem) -> None:
        for peer in peers:
            self.haves.setdefault(peer, []).append((item.name, item.seq))

    def want(self, peer: bytes, name: ItemName) -> None:
        self.wants.setdefault(peer, []).append(name)

    def finish(self) -> list[Effect]:
        for peer, items in self.outgoing.items():
            for chunk in _chunks(items, GOSSIP_ITEMS_PER_MESSAGE_MAX):
                self.effects.append(SendToPeer(peer, GossipItems(chunk)))
        for peer, entries in self.haves.items():
            for chunk in _chunks(entries, GOSSIP_HAVE_ENTRIES_MAX):
                self.effects.append(SendToPeer(peer, GossipHave(chunk)))
        for peer, names in self.wants.items():
            for chunk in _chunks(names, GOSSIP_WANT_NAMES_MAX):
                self.effects.append(SendToPeer(peer, GossipWant(chunk)))
        return self.effects


def eager_rank(own_key: bytes, item: GossipItem, peer: bytes) -> bytes:
    """Where ``peer`` stands among ours for a full copy of ``item``: lowest first.
    Our key is hashed in so that neighbours of one peer rank it independently."""
    origin, kind, item_id = item.name
    text = b"%b%b%b\x00%b%d" % (own_key, origin, kind.encode(), item_id, item.seq)
    return hashlib.blake2b(text + peer, digest_size=8).digest()


def item_hash(name: ItemName, seq: int) -> int:
    """The 8-byte hash of one (name, seq) that a range's fingerprint XORs together."""
    origin, kind, item_id = name
    kind_bytes = kind.encode()
    text = b"%b%c%b%b%b" % (origin, len(kind_bytes), kind_bytes, item_id, seq.to_bytes(8, "big"))
    return int.from_bytes(hashlib.blake2b(text, digest_size=GOSSIP_FINGERPRINT_BYTES).digest())


def _in_range(name: ItemName, digest: GossipDigest) -> bool:
    return (digest.low is None or name > digest.low) and (
        digest.high is None or name <= digest.high
    )


def _start_index(own_key: bytes, answer: int, count: int) -> int:
    """Where a fresh answer starts among ``count`` names: drawn from a hash of our key and
    the answer's number, so peers answering one node differ and each answer another slice."""
    digest = hashlib.blake2b(own_key + answer.to_bytes(8, "big"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count if count else 0


class GossipEngine:
    """One node's gossip state. See the module's rules.

    ``eager_fanout``: peers a new item goes to in full (the rest get a HAVE);
    None floods every item to every peer."""

    def __init__(
        self,
        own_key: bytes,
        peers: Iterable[bytes],
        verify: Verify,
        eager_fanout: int | None = GOSSIP_EAGER_FANOUT,
    ) -> None:
        assert eager_fanout is None or eager_fanout > 0
        self.own_key = own_key
        # A sorted tuple, not a set: the order messages go out must not depend on
        # the process's hash seed (simulations replay byte for byte).
        self.peers = tuple(sorted(set(peers)))
        self.trusted = frozenset(self.peers)  # membership only, never iterated
        self.verify = verify
        self.eager_fanout = eager_fanout
        self.items: dict[ItemName, GossipItem] = {}
        # The names of ``items``, kept sorted by ``_store`` and ``_prune``: a round or an
        # answer slices its range instead of sorting every name. Read through ``_names``.
        self.sorted_names: list[ItemName] = []
        self.hashes: dict[ItemName, int] = {}  # name -> item_hash of the item held
        self.per_origin: dict[bytes, int] = {}
        self.buckets: dict[bytes, _Bucket] = {}
        self.walks: dict[bytes, _Walk] = {peer: _Walk() for peer in self.peers}
        self.expiries: list[tuple[int, ItemName]] = []  # heap; may hold replaced items
        self.buckets_swept_ms = 0
        self.wanted: dict[ItemName, _Want] = {}  # oldest WANT first
        self.wants_per_peer: dict[bytes, int] = {}
        # Genuine items ``verify`` declined, oldest first, with a heap of their expiries
        # (may hold forgotten ones) and, per peer, the sorted names of those it sent us
        # (None: to be sorted again).
        self.declined: dict[ItemName, _Declined] = {}
        self.declined_expiries: list[tuple[int, ItemName, int]] = []
        self.declined_from: dict[bytes, list[ItemName]] | None = {}

    def handle(self, event: Input, now_ms: int) -> list[Effect]:
        run = _Pass()
        if isinstance(event, ActionPublish):
            self._publish(run, event.item, now_ms)
        elif isinstance(event, PeerConnected):
            if event.peer in self.trusted:
                self.walks[event.peer] = _Walk()
                self._round(run, event.peer, now_ms)
        elif isinstance(event, PolicyChanged):
            self._forget_declined()
        elif isinstance(event, TimerTick):
            self._prune(run, now_ms)
            self._retry_wants(run, now_ms)
            for peer, walk in self.walks.items():
                if walk.next_round_ms <= now_ms:
                    self._round(run, peer, now_ms)
        elif event.peer not in self.trusted:
            run.effects.append(NotifyRefused(GossipRefusal.UNTRUSTED_PEER, event.peer.hex()))
        elif isinstance(event, ReceiveItems):
            self._receive(run, event.peer, event.items, now_ms)
        elif isinstance(event, ReceiveDigest):
            if event.digest.summary is None:
                self._answer_digest(run, event.peer, event.digest)
            else:
                self._answer_summary(run, event.peer, event.digest)
        elif isinstance(event, ReceiveHave):
            self._receive_have(run, event.peer, event.have, now_ms)
        else:
            self._answer_want(run, event.peer, event.want)
        return run.finish()

    def held(self) -> dict[ItemName, int]:
        """name -> seq of every item held."""
        return {name: item.seq for name, item in self.items.items()}

    # --- storing -----------------------------------------------------------------------

    def _receive(self, run: _Pass, peer: bytes, items: tuple[GossipItem, ...], now_ms: int) -> None:
        for item in items:
            held = self.items.get(item.name)
            if held is not None and held.seq >= item.seq:
                continue
            if self._judged(peer, item.name, item.seq):
                continue
            refusal = self._refusal(item, now_ms)
            if refusal is not None:
                if isinstance(refusal[1], Declined):
                    self._decline(peer, item)
                run.effects.append(NotifyRefused(*refusal))
                continue
            self._store(run, item)
            first_hop = peer == item.origin
            self._spread(run, item, [peer, *self._settle_want(item)], push_all=first_hop)

    def _spread(self, run: _Pass, item: GossipItem, holders: list[bytes], push_all: bool) -> None:
        """Push ``item`` in full to the eager peers, announce it to the others."""
        targets = [peer for peer in self.peers if peer not in holders]
        if push_all or self.eager_fanout is None or len(targets) <= self.eager_fanout:
            run.forward(targets, item)
            return
        ranked = sorted(targets, key=lambda peer: eager_rank(self.own_key, item, peer))
        eager = ranked[: self.eager_fanout]
        run.forward(eager, item)
        run.announce((peer for peer in targets if peer not in eager), item)

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
        self._spread(run, item, [], push_all=True)

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
            bisect.insort(self._names(), item.name)  # before ``items`` grows
        self.items[item.name] = item
        self.hashes[item.name] = item_hash(item.name, item.seq)
        declined = self.declined.get(item.name)
        if declined is not None and declined.seq <= item.seq:
            del self.declined[item.name]  # its heap entry is skipped when it comes due
            self.declined_from = None
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
            names = self._names()  # before ``items`` shrinks
            del self.items[name]
            position = bisect.bisect_left(names, name)
            assert names[position] == name
            del names[position]
            self.hashes.pop(name, None)
            self.per_origin[item.origin] -= 1
            if self.per_origin[item.origin] == 0:
                del self.per_origin[item.origin]
            run.effects.append(NotifyRemoved(item))
        while self.declined_expiries and self.declined_expiries[0][0] <= now_ms:
            expires_ms, name, seq = heapq.heappop(self.declined_expiries)
            declined = self.declined.get(name)
            if declined is not None and (declined.seq, declined.expires_ms) == (seq, expires_ms):
                del self.declined[name]
                self.declined_from = None
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
        names = self._view(peer, walk.after, None, GOSSIP_DIGEST_ENTRIES_MAX + 1)
        chosen = names[:GOSSIP_DIGEST_ENTRIES_MAX]
        last_range = len(names) <= GOSSIP_DIGEST_ENTRIES_MAX
        high = None if last_range else chosen[-1]
        if walk.summaries:
            summary = (len(chosen), self._fingerprint(peer, chosen))
            run.effects.append(SendToPeer(peer, GossipDigest(walk.after, high, (), summary)))
        else:
            entries = self._entries(peer, chosen)
            run.effects.append(SendToPeer(peer, GossipDigest(walk.after, high, entries)))
        walk.summaries = walk.summaries or high is None
        walk.after = high
        walk.next_round_ms = now_ms + GOSSIP_ROUND_INTERVAL_MS

    def _fingerprint(self, peer: bytes, names: list[ItemName]) -> bytes:
        """XOR of the item hashes of ``names`` as listed for ``peer``: equal sets of
        (name, seq), equal prints."""
        hashes = self.hashes
        if len(hashes) != len(self.items):  # a caller filled ``items`` directly (a test)
            hashes.update((name, item_hash(name, i.seq)) for name, i in self.items.items())
        if self.declined:
            values = [item_hash(name, seq) for name, seq in self._entries(peer, names)]
        else:
            values = list(map(hashes.__getitem__, names))
        fingerprint = functools.reduce(operator.xor, values, 0)
        return fingerprint.to_bytes(GOSSIP_FINGERPRINT_BYTES, "big")

    def _entries(self, peer: bytes, names: list[ItemName]) -> tuple[tuple[ItemName, int], ...]:
        """(name, seq) of ``names`` as our digests for ``peer`` list them."""
        items = self.items
        if not self.declined:
            return tuple([(name, items[name].seq) for name in names])
        entries = []
        for name in names:
            item, declined = items.get(name), self.declined.get(name)
            if declined is None or peer not in declined.senders:
                assert item is not None
                entries.append((name, item.seq))
            else:
                entries.append(
                    (name, declined.seq if item is None else max(item.seq, declined.seq))
                )
        return tuple(entries)

    def _view(
        self, peer: bytes, low: ItemName | None, high: ItemName | None, limit: int | None = None
    ) -> list[ItemName]:
        """The names our digests for ``peer`` cover after ``low``, up to ``high``, sorted,
        at most ``limit``: those held, and those declined that ``peer`` sent us."""
        names = self._names()
        first = 0 if low is None else bisect.bisect_right(names, low)
        end = len(names) if high is None else bisect.bisect_right(names, high)
        if limit is not None:
            end = min(end, first + limit)
        declined = self._declined_from().get(peer)
        if not declined:
            return names[first:end]
        d_first = 0 if low is None else bisect.bisect_right(declined, low)
        d_end = len(declined) if high is None else bisect.bisect_right(declined, high)
        if limit is not None:
            d_end = min(d_end, d_first + limit)
        merged = sorted(set(names[first:end]).union(declined[d_first:d_end]))
        return merged if limit is None else merged[:limit]

    # --- declined items (see the module's rules) ----------------------------------------

    def _judged(self, peer: bytes, name: ItemName, seq: int) -> bool:
        """Whether we declined ``seq`` of ``name`` or a newer one already (``peer``, which
        sent or announced it, is noted as holding it when it is the very seq)."""
        declined = self.declined.get(name)
        if declined is None or declined.seq < seq:
            return False
        if declined.seq == seq and peer not in declined.senders:
            declined.senders.add(peer)
            self.declined_from = None
        return True

    def _decline(self, peer: bytes, item: GossipItem) -> None:
        """Remember ``item`` (newer than any seq of its name held or declined), sent by
        ``peer``, as judged."""
        name = item.name
        self.declined.pop(name, None)  # re-inserted below: the newest is forgotten last
        self.declined[name] = _Declined(item.seq, item.expires_ms, {peer})
        heapq.heappush(self.declined_expiries, (item.expires_ms, name, item.seq))
        while len(self.declined) > GOSSIP_DECLINED_MAX:
            del self.declined[next(iter(self.declined))]
        if len(self.declined_expiries) > 2 * GOSSIP_DECLINED_MAX:  # forgotten ones pile up
            self.declined_expiries = [(d.expires_ms, n, d.seq) for n, d in self.declined.items()]
            heapq.heapify(self.declined_expiries)
        self.declined_from = None

    def _forget_declined(self) -> None:
        self.declined.clear()
        self.declined_expiries.clear()
        self.declined_from = {}

    def _declined_from(self) -> dict[bytes, list[ItemName]]:
        """peer -> the sorted names of the declined items it sent us."""
        if self.declined_from is None:
            by_peer: dict[bytes, list[ItemName]] = {}
            for name, declined in self.declined.items():
                for peer in declined.senders:
                    by_peer.setdefault(peer, []).append(name)
            for names in by_peer.values():
                names.sort()
            self.declined_from = by_peer
        return self.declined_from

    def _answer_summary(self, run: _Pass, peer: bytes, digest: GossipDigest) -> None:
        """Nothing if our count and fingerprint of the range agree; else our own digest
        of it, so the peer sends what we lack (it learns what it lacks from its walk)."""
        assert digest.summary is not None
        count, fingerprint = digest.summary
        names = self._view(peer, digest.low, digest.high)
        if len(names) == count and self._fingerprint(peer, names) == fingerprint:
            return
        chosen = names[:GOSSIP_DIGEST_ENTRIES_MAX]
        high = digest.high if len(names) <= GOSSIP_DIGEST_ENTRIES_MAX else chosen[-1]
        entries = self._entries(peer, chosen)
        run.effects.append(SendToPeer(peer, GossipDigest(digest.low, high, entries)))

    def _answer_digest(self, run: _Pass, peer: bytes, digest: GossipDigest) -> None:
        """Send what the digest's range lacks, at most GOSSIP_ROUND_ITEMS_MAX items, wrapping
        around from a start (see the module's rules): items the peer keeps refusing must not
        hold back the rest of the range (the endorsements that would make them trusted)."""
        theirs = dict(digest.entries)
        names = self._names_in_range(digest)
        walk = self.walks[peer]
        resume = walk.answered_after
        if resume is not None and _in_range(resume, digest):
            split = bisect.bisect_right(names, resume)
        else:
            walk.answers += 1
            split = _start_index(self.own_key, walk.answers, len(names))
        items, known = self.items, theirs.get
        lacking = [
            (name, item)
            for name in itertools.chain(names[split:], names[:split])
            if known(name, -1) < (item := items[name]).seq
        ]
        sent = lacking[:GOSSIP_ROUND_ITEMS_MAX]
        run.forward_each(peer, [item for _, item in sent])
        # More next round, from the item after the last one sent; None: it has them all.
        walk.answered_after = sent[-1][0] if len(lacking) > len(sent) else None

    def _names(self) -> list[ItemName]:
        """Every name held, sorted. Only ``_store`` and ``_prune`` change ``items``; a
        caller that filled it directly (a test) is caught by the count and sorted afresh."""
        if len(self.sorted_names) != len(self.items):
            self.sorted_names = sorted(self.items)
        return self.sorted_names

    def _names_in_range(self, digest: GossipDigest) -> list[ItemName]:
        """Our names after the digest's ``low``, up to its ``high``, in order."""
        names = self._names()
        first = 0 if digest.low is None else bisect.bisect_right(names, digest.low)
        end = len(names) if digest.high is None else bisect.bisect_right(names, digest.high)
        return names[first:end]

    # --- lazy pull -----------------------------------------------------------------------

    def _receive_have(self, run: _Pass, peer: bytes, have: GossipHave, now_ms: int) -> None:
        for name, seq in have.entries:
            held = self.items.get(name)
            if held is not None and held.seq >= seq:
                continue
            if self._judged(peer, name, seq):
                continue
            want = self.wanted.get(name)
            if want is None:
                self._ask(run, peer, name, seq, [], now_ms)
                continue
            want.seq = max(want.seq, seq)
            known = peer == want.asked or peer in want.others
            if not known and len(want.others) < GOSSIP_ANNOUNCERS_KEPT_MAX:
                want.others.append(peer)

    def _ask(
        self, run: _Pass, peer: bytes, name: ItemName, seq: int, others: list[bytes], now_ms: int
    ) -> None:
        """WANT ``name`` from ``peer``, unless a bound says no: anti-entropy then brings it."""
        asked = self.wants_per_peer.get(peer, 0)
        if asked >= GOSSIP_WANTS_PER_PEER_MAX or len(self.wanted) >= GOSSIP_WANTED_MAX:
            return
        self.wants_per_peer[peer] = asked + 1
        self.wanted[name] = _Want(seq, peer, now_ms, others)
        run.want(peer, name)

    def _settle_want(self, item: GossipItem) -> list[bytes]:
        """``item`` was stored: forget the WANT it answers. Returns the peers that
        announced it (they need no copy)."""
        want = self.wanted.get(item.name)
        if want is None:
            return []
        if item.seq >= want.seq:
            self._forget_want(item.name, want)
        return [want.asked, *want.others]

    def _forget_want(self, name: ItemName, want: _Want) -> None:
        del self.wanted[name]
        left = self.wants_per_peer[want.asked] - 1
        if left == 0:
            del self.wants_per_peer[want.asked]
        else:
            self.wants_per_peer[want.asked] = left

    def _retry_wants(self, run: _Pass, now_ms: int) -> None:
        """Ask the next announcer of each WANT left unanswered too long. ``wanted``
        is ordered by ask time (a retry re-inserts), so the walk stops early."""
        due = []
        for name, want in self.wanted.items():
            if want.asked_ms + GOSSIP_WANT_TIMEOUT_MS > now_ms:
                break
            due.append((name, want))
        for name, want in due:
            self._forget_want(name, want)
            if want.others:
                self._ask(run, want.others[0], name, want.seq, want.others[1:], now_ms)

    def _answer_want(self, run: _Pass, peer: bytes, want: GossipWant) -> None:
        for name in want.names:
            item = self.items.get(name)
            if item is not None:  # gone or never held: ignored, the asker moves on
                run.forward([peer], item)
