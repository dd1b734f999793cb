"""Speed-ups of gossip and of the simulator's trace must not change a single effect or byte.

The engine keeps its names sorted instead of sorting them for every round and every
answer; the old way, kept here as ``SortingEngine``, must send exactly the same
messages for any sequence of inputs. The decoder's fast path must decode what the
strict path decodes and refuse what it refuses, with the same reason. The trace
hashes its lines in batches: the digest is SHA-256 of all lines, as before.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.codec import MSG_ID_MAX, require_bytes, require_int, require_str
from node.gossip import (
    GossipDigest,
    GossipEngine,
    GossipItem,
    Input,
    PeerConnected,
    ReceiveDigest,
    ReceiveItems,
    SendToPeer,
    TimerTick,
    _in_range,
    _item_name_from_wire,
    _Pass,
    _start_index,
    gossip_from_wire,
    item_hash,
)
from node.limits import (
    GOSSIP_DIGEST_ENTRIES_MAX,
    GOSSIP_FINGERPRINT_BYTES,
    GOSSIP_ITEM_ID_BYTES_MAX,
    GOSSIP_KIND_LENGTH_MAX,
    GOSSIP_ROUND_INTERVAL_MS,
    GOSSIP_ROUND_ITEMS_MAX,
    PUBLIC_KEY_BYTES,
)
from node.wire import DecodeError
from simulations.trace import TRACE_LINES_PER_UPDATE, Trace

NOW_MS = 1_800_000_000_000
PEERS = (bytes([2]) * 32, bytes([3]) * 32)
ORIGINS = [bytes([n]) * 32 for n in (7, 8, 9)]


class SortingEngine(GossipEngine):
    """The engine as it was: every round and every answer sorts all names."""

    def _round(self, run: _Pass, peer: bytes, now_ms: int) -> None:
        walk = self.walks[peer]
        names = sorted(name for name in self.items if walk.after is None or name > walk.after)
        chosen = names[:GOSSIP_DIGEST_ENTRIES_MAX]
        last_range = len(names) <= GOSSIP_DIGEST_ENTRIES_MAX
        high = None if last_range else chosen[-1]
        if walk.summaries:
            fingerprint = 0
            for name in chosen:
                fingerprint ^= item_hash(name, self.items[name].seq)
            summary = (len(chosen), fingerprint.to_bytes(GOSSIP_FINGERPRINT_BYTES, "big"))
            run.effects.append(SendToPeer(peer, GossipDigest(walk.after, high, (), summary)))
        else:
            entries = tuple((name, self.items[name].seq) for name in chosen)
            run.effects.append(SendToPeer(peer, GossipDigest(walk.after, high, entries)))
        walk.summaries = walk.summaries or high is None
        walk.after = high
        walk.next_round_ms = now_ms + GOSSIP_ROUND_INTERVAL_MS

    def _answer_digest(self, run: _Pass, peer: bytes, digest: GossipDigest) -> None:
        theirs = dict(digest.entries)
        names = [name for name in sorted(self.items) if _in_range(name, digest)]
        walk = self.walks[peer]
        resume = walk.answered_after
        if resume is not None and _in_range(resume, digest):
            split = bisect.bisect_right(names, resume)
        else:
            walk.answers += 1
            split = _start_index(self.own_key, walk.answers, len(names))
        names = names[split:] + names[:split]
        sent = 0
        walk.answered_after = None
        for name in names:
            item = self.items[name]
            if theirs.get(name, -1) < item.seq:
                if sent >= GOSSIP_ROUND_ITEMS_MAX:
                    break
                run.forward([peer], item)
                walk.answered_after = name
                sent += 1
        else:
            walk.answered_after = None


def random_inputs(rng: random.Random, steps: int) -> list[tuple[Input, int]]:
    """Items stored, replaced and expiring, digests of all kinds of ranges, rounds."""
    inputs: list[tuple[Input, int]] = []
    now_ms = NOW_MS
    names = [(origin, "route", bytes([n])) for origin in ORIGINS for n in range(1, 200)]
    for _ in range(steps):
        now_ms += rng.randint(0, 3_000)
        choice = rng.random()
        peer = rng.choice(PEERS)
        if choice < 0.55:
            items = []
            for _ in range(rng.randint(1, 16)):
                origin, kind, item_id = rng.choice(names)
                expires_ms = now_ms + rng.randint(1_000, 300_000)
                items.append(GossipItem(origin, kind, item_id, rng.randint(1, 4), expires_ms, b""))
            inputs.append((ReceiveItems(peer, tuple(items)), now_ms))
        elif choice < 0.8:
            low, high = sorted(rng.sample(names, 2))
            entries = tuple(
                (name, rng.randint(0, 4)) for name in sorted(rng.sample(names, rng.randint(0, 40)))
            )
            digest = GossipDigest(rng.choice([None, low]), rng.choice([None, high, low]), entries)
            inputs.append((ReceiveDigest(peer, digest), now_ms))
        elif choice < 0.9:
            inputs.append((PeerConnected(peer), now_ms))
        else:
            inputs.append((TimerTick(), now_ms))
    return inputs


@pytest.mark.parametrize("seed", range(12))
def test_sorted_names_send_what_sorting_sent(seed: int) -> None:
    kept = GossipEngine(bytes([1]) * 32, PEERS, lambda item: None)
    sorting = SortingEngine(bytes([1]) * 32, PEERS, lambda item: None)
    for event, now_ms in random_inputs(random.Random(seed), 400):
        assert kept.handle(event, now_ms) == sorting.handle(event, now_ms)
        assert kept.sorted_names == sorted(kept.items)
    assert kept.items == sorting.items


def test_items_filled_directly_are_sorted_afresh() -> None:
    gossip = GossipEngine(bytes([1]) * 32, PEERS, lambda item: None)
    for n in (5, 3, 9):
        item = GossipItem(ORIGINS[0], "route", bytes([n]), 1, NOW_MS + 60_000, b"")
        gossip.items[item.name] = item
    effects = gossip.handle(ReceiveDigest(PEERS[0], GossipDigest(None, None, ())), NOW_MS)
    assert gossip.sorted_names == sorted(gossip.items)
    assert len(effects) == 1


# --- decoding ---------------------------------------------------------------------


def strict_name(value: object) -> tuple[bytes, str, bytes]:
    """The item-name decoder without its fast path."""
    if type(value) is not list or len(value) != 3:
        raise DecodeError("bad-field", "an item name is [origin, kind, id]")
    origin = require_bytes(value[0], "origin", PUBLIC_KEY_BYTES)
    kind = require_str(value[1], "kind", GOSSIP_KIND_LENGTH_MAX)
    item_id = value[2]
    if type(item_id) is not bytes or not 0 < len(item_id) <= GOSSIP_ITEM_ID_BYTES_MAX:
        raise DecodeError("bad-field", f"an item id is 1..{GOSSIP_ITEM_ID_BYTES_MAX} bytes")
    return (origin, kind, item_id)


def outcome(decode: Any, value: object) -> object:
    try:
        return decode(value)
    except DecodeError as error:
        return ("refused", str(error), error.args)


parts = st.one_of(
    st.binary(min_size=0, max_size=40),
    st.sampled_from([bytes([7]) * PUBLIC_KEY_BYTES, b"x" * GOSSIP_ITEM_ID_BYTES_MAX]),
    st.text(max_size=20),
    st.integers(min_value=-2, max_value=MSG_ID_MAX + 2),
    st.booleans(),
    st.none(),
)
names = st.one_of(st.lists(parts, min_size=0, max_size=4), parts)


@settings(max_examples=400, deadline=None)
@given(names)
def test_the_fast_name_decoder_agrees_with_the_strict_one(value: object) -> None:
    assert outcome(_item_name_from_wire, value) == outcome(strict_name, value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(names, parts).map(list), parts), min_size=1, max_size=4))
def test_digest_entries_decode_and_refuse_as_before(entries: list[Any]) -> None:
    def strict(value: list[Any]) -> object:
        decoded = []
        for entry in value:
            if type(entry) is not list or len(entry) != 2:
                raise DecodeError("bad-field", "an entry is [name, seq]")
            decoded.append((strict_name(entry[0]), require_int(entry[1], "seq", 0, MSG_ID_MAX)))
        return GossipDigest(None, None, tuple(decoded))

    fields = {"msgType": "DIGEST", "low": None, "high": None, "entries": entries}
    assert outcome(gossip_from_wire, fields) == outcome(strict, entries)


# --- the trace --------------------------------------------------------------------


def test_the_batched_digest_is_the_digest_of_every_line() -> None:
    trace = Trace(["node-00.sim", "node-01.sim"])
    expected = hashlib.sha256()
    for n in range(2 * TRACE_LINES_PER_UPDATE + 17):
        trace.add(n, "send", n % 2, 1 - n % 2, f"{n}:{n * 7:08x} [5]")
        expected.update(f"{n} send {n % 2} {1 - n % 2} {n}:{n * 7:08x} [5]\n".encode())
    assert trace.digest() == expected.hexdigest()
    assert trace.digest() == expected.hexdigest()  # asking twice changes nothing
    assert trace.events == 2 * TRACE_LINES_PER_UPDATE + 17
