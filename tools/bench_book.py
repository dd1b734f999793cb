"""Order book benchmark: search latency and insert rate with 100,000 live offers.

Builds one ``OrderBook`` of ``--offers`` live offers spread over ``--pairs``
pairs of ``--assets`` assets (makers and validators spread so no cap is hit),
then measures, in one process:

- insert rate: ``put`` of every offer into an empty book, and the rate of
  replacements (a partial fill: a newer seq with less left);
- search latency, p50 and p99 over ``--searches`` searches of the best
  ``--top`` offers, by pair and by asset (every offer that mentions it);
- the same searches done the naive way on the same data (scan every offer,
  filter, sort by exact price), over ``--baseline-searches`` searches;
- the cost of verifying one offer gossip item (``offer_item_problem``: strict
  decoding and two ed25519 signatures), over ``--verify-items`` items.

    python -m tools.bench_book [--offers 100000] [--pairs 50] [--searches 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from fractions import Fraction
from typing import Any

from node.ledger.signed import Offer, SignedInstruction
from node.offers.book import BookEntry, OrderBook
from node.offers.endorsements import Trust
from node.offers.items import OfferStatus, offer_item, offer_item_problem
from node.signatures import NodeKey, sha256

NOW_MS = 1_700_000_000_000
HOUR_MS = 3_600_000
MAKERS_PER_VALIDATOR = 10  # at most OFFERS_LIVE_PER_MAKER_MAX offers each
OFFERS_PER_VALIDATOR = 500  # at most OFFERS_LIVE_PER_VALIDATOR_MAX


def make_entries(offers: int, pairs: int, assets: int, seed: int) -> list[BookEntry]:
    rng = random.Random(seed)
    names = [f"bank-{n}.test/C{n}" for n in range(assets)]
    all_pairs = [(a, b) for a in names for b in names if a != b]
    chosen = rng.sample(all_pairs, pairs)
    entries = []
    for number in range(offers):
        validator = number // OFFERS_PER_VALIDATOR
        maker = f"u{number % MAKERS_PER_VALIDATOR}@v{validator}.test"
        sell, buy = chosen[number % pairs]
        sell_amount = rng.randint(1, 10**9)
        buy_amount = rng.randint(1, 10**9)
        entries.append(
            BookEntry(
                offer_id=sha256(number.to_bytes(8, "big")),
                maker=maker,
                validator=f"v{validator}.test",
                sell_uai=sell,
                buy_uai=buy,
                sell_amount=sell_amount,
                buy_amount=buy_amount,
                left=sell_amount,
                min_fill=1,
                expires_ms=NOW_MS + rng.randint(1, 24) * HOUR_MS,
                seq=1,
            )
        )
    return entries


def percentiles_us(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6, 1),
        "n": len(ordered),
    }


def naive_search(
    entries: list[BookEntry], sell: str | None, buy: str | None, asset: str | None, top: int
) -> list[BookEntry]:
    """Scan everything, filter, sort by the book's exact order."""
    matching = [
        e
        for e in entries
        if e.expires_ms > NOW_MS
        and (sell is None or e.sell_uai == sell)
        and (buy is None or e.buy_uai == buy)
        and (asset is None or e.mentions(asset))
    ]
    matching.sort(
        key=lambda e: (
            e.sell_uai,
            e.buy_uai,
            Fraction(e.buy_amount, e.sell_amount),
            e.expires_ms,
            e.offer_id,
        )
    )
    return matching[:top]


def bench_searches(
    book: OrderBook, entries: list[BookEntry], args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    pairs = sorted({(e.sell_uai, e.buy_uai) for e in entries})
    assets = sorted({e.sell_uai for e in entries} | {e.buy_uai for e in entries})
    out: dict[str, Any] = {}
    for name, queries in (
        ("by_pair", [(*rng.choice(pairs), None) for _ in range(args.searches)]),
        ("by_asset", [(None, None, rng.choice(assets)) for _ in range(args.searches)]),
    ):
        book_times = []
        for sell, buy, asset in queries:
            start = time.perf_counter()
            book.search(sell, buy, asset, now_ms=NOW_MS, limit=args.top)
            book_times.append(time.perf_counter() - start)
        naive_times = []
        for sell, buy, asset in queries[: args.baseline_searches]:
            start = time.perf_counter()
            expected = naive_search(entries, sell, buy, asset, args.top)
            naive_times.append(time.perf_counter() - start)
            assert book.search(sell, buy, asset, now_ms=NOW_MS, limit=args.top) == expected
        out[name] = {"book": percentiles_us(book_times), "naive": percentiles_us(naive_times)}
    return out


def bench_inserts(entries: list[BookEntry]) -> tuple[OrderBook, dict[str, float]]:
    book = OrderBook()
    start = time.perf_counter()
    for entry in entries:
        changes, refusal = book.put(entry, NOW_MS)
        assert refusal is None and changes
    insert_s = time.perf_counter() - start
    fills = [BookEntry(**{**_fields(e), "left": max(1, e.left // 2), "seq": 2}) for e in entries]
    start = time.perf_counter()
    for entry in fills:
        book.put(entry, NOW_MS)
    replace_s = time.perf_counter() - start
    return book, {
        "inserts_per_s": round(len(entries) / insert_s),
        "replaces_per_s": round(len(entries) / replace_s),
    }


def _fields(entry: BookEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in BookEntry.__dataclass_fields__}


def bench_verify(items: int) -> dict[str, float]:
    """Cost of the gossip verify callback of one offer item."""
    validator, maker = NodeKey(b"v" * 32), NodeKey(b"m" * 32)
    trust = Trust(NodeKey(b"o" * 32).public_key, "own.test", {validator.public_key: "bank-a.test"})
    built = []
    for number in range(items):
        offer = Offer(
            "alice@bank-a.test", "bank-a.test/EUR", 1_000 + number, "bank-b.test/USD", 1_100,
            1, 0, NOW_MS + HOUR_MS, number + 1, NOW_MS,
        )  # fmt: skip
        request = offer.signing_request()
        signed = SignedInstruction(
            offer, maker.public_key, maker.sign(request.kind, request.payload)
        )
        status = OfferStatus(
            offer.offer_id, "bank-a.test", validator.public_key, 1, offer.sell_amount, "live",
            None, NOW_MS,
        )  # fmt: skip
        status_request = status.signing_request()
        signature = validator.sign(status_request.kind, status_request.payload)
        built.append(offer_item(signed, status, signature))
    start = time.perf_counter()
    for item in built:
        assert offer_item_problem(item, trust) is None
    elapsed = time.perf_counter() - start
    return {"verify_us_per_item": round(elapsed / items * 1e6, 1), "items": items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--assets", type=int, default=12)
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--baseline-searches", type=int, default=100)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--verify-items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.pairs > args.assets * (args.assets - 1):
        parser.error("--pairs exceeds the pairs --assets can make")
    entries = make_entries(args.offers, args.pairs, args.assets, args.seed)
    book, inserts = bench_inserts(entries)
    out = {
        "offers": args.offers,
        "pairs": args.pairs,
        "top": args.top,
        **inserts,
        "search": bench_searches(book, [book.get(e.offer_id) or e for e in entries], args),
        **bench_verify(args.verify_items),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.offers} live offers over {args.pairs} pairs; top {args.top} per search")
    print(f"insert  {out['inserts_per_s']:>10,} offers/s   replace {out['replaces_per_s']:,}/s")
    for name, figures in out["search"].items():
        ours, naive = figures["book"], figures["naive"]
        print(
            f"search {name:<9} book p50 {ours['p50_us']:>8} us  p99 {ours['p99_us']:>8} us"
            f"   naive p50 {naive['p50_us']:>10} us  p99 {naive['p99_us']:>10} us"
        )
    print(f"verify one offer item: {out['verify_us_per_item']} us   max RSS {out['max_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
