"""The order book: exact price order, partial fills, caps, expiry, watch events."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from node.limits import OFFER_BOOK_RESULTS_MAX, OFFERS_LIVE_PER_MAKER_MAX
from node.offers.book import BookEntry, BookRefusal, OrderBook

NOW_MS = 1_700_000_000_000
EUR, USD, GBP = "bank-a.test/EUR", "bank-b.test/USD", "bank-c.test/GBP"


def entry(
    number: int,
    sell_amount: int = 100,
    buy_amount: int = 110,
    *,
    pair: tuple[str, str] = (EUR, USD),
    left: int | None = None,
    expires_ms: int = NOW_MS + 60_000,
    seq: int = 1,
    maker: str | None = None,
    validator: str = "bank-a.test",
) -> BookEntry:
    return BookEntry(
        offer_id=number.to_bytes(32, "big"),
        maker=maker or f"user{number}@{validator}",
        validator=validator,
        sell_uai=pair[0],
        buy_uai=pair[1],
        sell_amount=sell_amount,
        buy_amount=buy_amount,
        left=sell_amount if left is None else left,
        min_fill=1,
        expires_ms=expires_ms,
        seq=seq,
    )


def ids(entries: list[BookEntry]) -> list[int]:
    return [int.from_bytes(e.offer_id, "big") for e in entries]


def test_best_price_first_with_exact_comparison_and_ties():
    book = OrderBook()
    # 1/3 < 333333333333333334/10**18 although floats may not tell them apart.
    book.put(entry(1, 10**18, 333_333_333_333_333_334), NOW_MS)
    book.put(entry(2, 3, 1), NOW_MS)
    book.put(entry(3, 100, 200), NOW_MS)
    book.put(entry(4, 6, 2, expires_ms=NOW_MS + 1_000), NOW_MS)  # same price as 2, sooner
    book.put(entry(5, 6, 2, expires_ms=NOW_MS + 1_000), NOW_MS)  # same as 4: by offer id
    assert ids(book.search(EUR, USD, now_ms=NOW_MS)) == [4, 5, 2, 1, 3]
    # Prices whose floats are equal (1.0) still order exactly, whatever the arrival order.
    book.put(entry(7, 10**18, 10**18 + 2), NOW_MS)
    book.put(entry(6, 10**18, 10**18 + 1), NOW_MS)
    assert ids(book.search(EUR, USD, now_ms=NOW_MS))[-3:] == [6, 7, 3]
    assert book.search(EUR, USD, now_ms=NOW_MS, limit=2)[0].price == (1, 3)


def test_price_text_rounds_half_up():
    assert entry(1, 3, 2).price_text(4) == "0.6667"
    assert entry(1, 8, 1).price_text(2) == "0.13"
    assert entry(1, 1, 5).price_text(0) == "5"


def test_search_by_side_and_asset():
    book = OrderBook()
    book.put(entry(1, pair=(EUR, USD)), NOW_MS)
    book.put(entry(2, pair=(USD, EUR)), NOW_MS)
    book.put(entry(3, pair=(GBP, USD)), NOW_MS)
    book.put(entry(4, pair=(EUR, GBP)), NOW_MS)
    assert ids(book.search(sell_uai=EUR, now_ms=NOW_MS)) == [1, 4]
    assert ids(book.search(buy_uai=USD, now_ms=NOW_MS)) == [1, 3]
    assert ids(book.search(asset=USD, now_ms=NOW_MS)) == [1, 2, 3]  # by (sell, buy) names
    assert ids(book.search(sell_uai=EUR, asset=GBP, now_ms=NOW_MS)) == [4]
    assert ids(book.search(EUR, USD, asset=GBP, now_ms=NOW_MS)) == []
    assert ids(book.search(now_ms=NOW_MS)) == [1, 4, 2, 3]


def test_partial_fills_update_left_and_only_newer_seqs_count():
    book = OrderBook()
    book.put(entry(1, 100, 110), NOW_MS)
    changes, refusal = book.put(entry(1, 100, 110, left=40, seq=2), NOW_MS)
    assert refusal is None and [c.kind for c in changes] == ["changed"]
    assert book.search(EUR, USD, now_ms=NOW_MS)[0].left == 40
    stale, _ = book.put(entry(1, 100, 110, left=90, seq=2), NOW_MS)
    held = book.get((1).to_bytes(32, "big"))
    assert stale == [] and held is not None and held.left == 40


def test_expired_entries_are_skipped_then_pruned():
    book = OrderBook()
    book.put(entry(1, expires_ms=NOW_MS + 10), NOW_MS)
    book.put(entry(2, expires_ms=NOW_MS + 20), NOW_MS)
    assert ids(book.search(EUR, USD, now_ms=NOW_MS + 10)) == [2]
    removed = book.prune(NOW_MS + 10)
    assert [(c.kind, ids([c.entry])) for c in removed] == [("removed", [1])]
    assert len(book) == 1
    changes, refusal = book.put(entry(3, expires_ms=NOW_MS), NOW_MS)
    assert (changes, refusal) == ([], BookRefusal.EXPIRED)


def test_caps_refuse_new_offers_but_not_replacements():
    book = OrderBook()
    for number in range(OFFERS_LIVE_PER_MAKER_MAX):
        book.put(entry(number, maker="alice@bank-a.test"), NOW_MS)
    changes, refusal = book.put(entry(10_000, maker="alice@bank-a.test"), NOW_MS)
    assert (changes, refusal) == ([], BookRefusal.MAKER_FULL)
    _, refusal = book.put(entry(0, maker="alice@bank-a.test", left=5, seq=2), NOW_MS)
    assert refusal is None
    book.remove((0).to_bytes(32, "big"))
    _, refusal = book.put(entry(10_000, maker="alice@bank-a.test"), NOW_MS)
    assert refusal is None


def test_validator_cap(monkeypatch):
    monkeypatch.setattr("node.offers.book.OFFERS_LIVE_PER_VALIDATOR_MAX", 3)
    book = OrderBook()
    for number in range(3):
        book.put(entry(number), NOW_MS)
    assert book.put(entry(9), NOW_MS)[1] == BookRefusal.VALIDATOR_FULL
    assert book.put(entry(9, validator="bank-z.test"), NOW_MS)[1] is None


def test_watch_events_tell_new_changed_removed():
    book = OrderBook()
    events = []
    events += book.put(entry(1, pair=(EUR, USD)), NOW_MS)[0]
    events += book.put(entry(1, pair=(EUR, USD), left=50, seq=2), NOW_MS)[0]
    events += book.remove((1).to_bytes(32, "big"))
    events += book.remove((1).to_bytes(32, "big"))  # twice: nothing more
    assert [(c.kind, c.entry.left) for c in events] == [
        ("new", 100),
        ("changed", 50),
        ("removed", 50),
    ]
    assert all(c.entry.mentions(USD) and not c.entry.mentions(GBP) for c in events)


def test_search_limit_is_bounded():
    book = OrderBook()
    for number in range(OFFER_BOOK_RESULTS_MAX + 5):
        book.put(entry(number, maker=f"u{number}@bank-a.test", validator=f"v{number}.test"), 0)
    assert len(book.search(EUR, USD, now_ms=0, limit=10**9)) == OFFER_BOOK_RESULTS_MAX
    assert book.search(EUR, USD, now_ms=0, limit=-1) == []


# --- property: the book agrees with a plain model -----------------------------------------

UAIS = [EUR, USD, GBP]
operation = st.one_of(
    st.tuples(
        st.just("put"),
        st.integers(0, 30),  # offer number
        st.sampled_from([(a, b) for a in UAIS for b in UAIS if a != b]),
        st.integers(1, 50) | st.integers(10**18 - 3, 10**18 + 3),  # sell
        st.integers(1, 50) | st.integers(10**18 - 3, 10**18 + 3),  # buy
        st.integers(1, 20),  # expiry step
    ),
    st.tuples(st.just("fill"), st.integers(0, 30), st.integers(1, 50)),
    st.tuples(st.just("remove"), st.integers(0, 30)),
    st.tuples(st.just("tick"), st.integers(0, 5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=80), st.sampled_from([None, *UAIS]), st.sampled_from(UAIS))
def test_search_returns_exactly_the_live_offers_in_exact_price_order(operations, sell, buy):
    book, model = OrderBook(), {}
    now_ms = 0
    for op in operations:
        if op[0] == "put":
            _, number, pair, sell_amount, buy_amount, step = op
            if number in model:
                continue  # one offer id, one offer
            new = entry(number, sell_amount, buy_amount, pair=pair, expires_ms=now_ms + step)
            book.put(new, now_ms)
            model[number] = new
        elif op[0] == "fill" and op[1] in model:
            old = model[op[1]]
            left = max(1, old.left - op[2])
            changed = entry(
                op[1],
                old.sell_amount,
                old.buy_amount,
                pair=(old.sell_uai, old.buy_uai),
                left=left,
                expires_ms=old.expires_ms,
                seq=old.seq + 1,
            )
            if book.put(changed, now_ms)[0]:
                model[op[1]] = changed
        elif op[0] == "remove":
            book.remove(op[1].to_bytes(32, "big"))
            model.pop(op[1], None)
        elif op[0] == "tick":
            now_ms += op[1]
            if op[1] % 2:
                book.prune(now_ms)
                model = {n: e for n, e in model.items() if e.expires_ms > now_ms}
    expected = sorted(
        (
            e
            for e in model.values()
            if e.expires_ms > now_ms and (sell is None or e.sell_uai == sell) and e.buy_uai == buy
        ),
        key=lambda e: (e.sell_uai, Fraction(e.buy_amount, e.sell_amount), e.expires_ms, e.offer_id),
    )
    assert book.search(sell, buy, now_ms=now_ms, limit=100) == expected


def test_offers_of_validators_no_longer_trusted_leave_the_book():
    book = OrderBook()
    book.put(entry(1, validator="bank-a.test"), NOW_MS)
    book.put(entry(2, validator="bank-b.test"), NOW_MS)
    assert book.retain_validators({"bank-a.test", "bank-b.test"}) == []
    removed = book.retain_validators(frozenset({"bank-a.test"}))
    assert [(c.kind, ids([c.entry])) for c in removed] == [("removed", [2])]
    assert ids(book.search(now_ms=NOW_MS)) == [1]
