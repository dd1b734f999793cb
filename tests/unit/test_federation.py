"""Federation over a line of validators a - b - c: resolve, relay, verify, cache, time out."""

from __future__ import annotations

from node.crypto import NodeKey
from node.federation import (
    ActionResolve,
    Effect,
    NotifyRefused,
    NotifyResolved,
    ReceiveResolve,
    ReceiveResolved,
    Resolver,
    SendToPeer,
    TimerTick,
    encode_record,
)
from node.ledger.signed import FederationRecord, SignedFederationRecord
from node.limits import RESOLVE_CACHE_TTL_MS, RESOLVE_TIMEOUT_MS
from node.wire import Resolve, Resolved

KEYS = {name: NodeKey(bytes([index + 1]) * 32) for index, name in enumerate("abcm")}
DOMAINS = {name: f"bank-{name}.test" for name in "abc"}
NOW_MS = 1_800_000_000_000
BOB = NodeKey(bytes([42]) * 32)


def federation_record(validator: str, address: str, kyc_level: int = 2) -> SignedFederationRecord:
    record = FederationRecord(
        address, BOB.public_key, kyc_level, NOW_MS, KEYS[validator].public_key
    )
    request = record.signing_request()
    return SignedFederationRecord(record, KEYS[validator].sign(request.kind, request.payload))


def line() -> dict[bytes, Resolver]:
    """a - b - c; c has one user, bob@bank-c.test."""
    users = {"bob@bank-c.test": federation_record("c", "bob@bank-c.test")}
    neighbours = {"a": "b", "b": "ac", "c": "b"}
    resolvers = {}
    for name, peer_names in neighbours.items():
        peers = {DOMAINS[p]: KEYS[p].public_key for p in peer_names}
        resolvers[KEYS[name].public_key] = Resolver(DOMAINS[name], peers, users.get)
    return resolvers


def run(resolvers: dict[bytes, Resolver], origin: bytes, effects: list[Effect], now_ms: int):
    """Deliver every SendToPeer until quiet; return the origin's notifications."""
    queue = [(origin, effect) for effect in effects]
    notified = []
    while queue:
        sender, effect = queue.pop(0)
        if isinstance(effect, SendToPeer):
            receiver = resolvers[effect.peer_key]
            message = effect.message
            event = (
                ReceiveResolve(sender, message)
                if isinstance(message, Resolve)
                else ReceiveResolved(sender, message)
            )
            queue += [(effect.peer_key, e) for e in receiver.handle(event, now_ms)]
        else:
            notified.append((sender, effect))
    return notified


def resolve(resolvers, address: str, now_ms: int = NOW_MS, req_id: int = 7):
    origin = KEYS["a"].public_key
    effects = resolvers[origin].handle(ActionResolve(1, req_id, address), now_ms)
    return run(resolvers, origin, effects, now_ms)


def test_a_resolves_a_user_of_c_through_b():
    [(who, notified)] = resolve(line(), "bob@bank-c.test")
    assert who == KEYS["a"].public_key
    assert isinstance(notified, NotifyResolved) and notified.error is None
    assert notified.resolution is not None
    assert notified.resolution.user_key == BOB.public_key
    assert notified.resolution.kyc_level == 2
    assert notified.resolution.validator_key == KEYS["c"].public_key


def test_answers_are_cached_until_their_ttl():
    resolvers = line()
    resolve(resolvers, "bob@bank-c.test")
    [(_, cached)] = resolve(resolvers, "bob@bank-c.test", NOW_MS + 1000, req_id=8)
    assert isinstance(cached, NotifyResolved) and cached.detail == "cached"
    later = NOW_MS + RESOLVE_CACHE_TTL_MS + 1
    [(_, fresh)] = resolve(resolvers, "bob@bank-c.test", later, req_id=9)
    assert isinstance(fresh, NotifyResolved) and fresh.detail == "resolved"


def test_unknown_user_is_a_clear_error():
    [(_, notified)] = resolve(line(), "nobody@bank-c.test")
    assert isinstance(notified, NotifyResolved) and notified.error == "unknown-user"


def test_unknown_domain_times_out_as_unreachable():
    resolvers = line()
    assert resolve(resolvers, "x@bank-z.test") == []
    origin = resolvers[KEYS["a"].public_key]
    [notified] = origin.handle(TimerTick(), NOW_MS + RESOLVE_TIMEOUT_MS)
    assert isinstance(notified, NotifyResolved) and notified.error == "unreachable"
    assert "bank-z.test" in notified.detail


def test_a_forged_record_is_dropped_by_the_hop_that_knows_the_owner():
    resolvers = line()
    b = resolvers[KEYS["b"].public_key]
    b.handle(ReceiveResolve(KEYS["a"].public_key, Resolve(5, "bob@bank-c.test", 2)), NOW_MS)
    forged = encode_record(federation_record("m", "bob@bank-c.test"))  # mallory's key
    effects = b.handle(ReceiveResolved(KEYS["c"].public_key, Resolved(5, forged, None)), NOW_MS)
    assert [type(e) for e in effects] == [NotifyRefused]


def test_a_record_for_another_address_is_dropped():
    resolvers = line()
    a = resolvers[KEYS["a"].public_key]
    a.handle(ActionResolve(1, 5, "bob@bank-c.test"), NOW_MS)
    other = encode_record(federation_record("c", "eve@bank-c.test"))
    effects = a.handle(ReceiveResolved(KEYS["b"].public_key, Resolved(5, other, None)), NOW_MS)
    assert [type(e) for e in effects] == [NotifyRefused]


def test_loops_and_copies_are_dropped():
    resolvers = line()
    b = resolvers[KEYS["b"].public_key]
    request = Resolve(5, "x@bank-z.test", 3)
    first = b.handle(ReceiveResolve(KEYS["a"].public_key, request), NOW_MS)
    assert [e.peer_key for e in first if isinstance(e, SendToPeer)] == [KEYS["c"].public_key]
    assert b.handle(ReceiveResolve(KEYS["c"].public_key, request), NOW_MS) == []


def test_own_users_resolve_locally():
    resolvers = line()
    c = resolvers[KEYS["c"].public_key]
    [notified] = c.handle(ActionResolve(1, 1, "bob@bank-c.test"), NOW_MS)
    assert isinstance(notified, NotifyResolved) and notified.detail == "local"
