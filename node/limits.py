"""Every limit of the node, in one place.

Units are last in the names. Relations between limits are asserted at the end
of the module, so a change that breaks one fails at import, not in production.
"""

from __future__ import annotations

# --- amounts -----------------------------------------------------------------
AMOUNT_MAX = 2**63 - 1  # amounts are positive integers of the smallest unit
UNIT_LENGTH_MAX = 32  # "1E-2 USD"
REASON_LENGTH_MAX = 200  # free text on a REJECT
NAME_LENGTH_MAX = 253  # a domain name
HASH_BYTES = 32  # SHA-256 conditions and preimages
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

# --- wire --------------------------------------------------------------------
FRAME_BYTES_MAX = 64 * 1024  # one signed frame (many messages, one signature)
MESSAGES_PER_FRAME_MAX = 512
API_FRAME_BYTES_MAX = 256 * 1024  # an operator request or response
MSGPACK_DEPTH_MAX = 8  # nesting of decoded containers

# --- SNAP --------------------------------------------------------------------
PENDING_PROPOSALS_PER_PEER_MAX = 10_000  # pending in either direction, per peer
OUTBOX_MESSAGES_PER_PEER_MAX = 20_000  # unacknowledged messages we must repeat
RETRANSMIT_INTERVAL_MS = 1_000  # repeat an unacknowledged message this often
ACK_DELAY_MS = 200  # an ACK-only message waits this long for a frame to ride on
RETRANSMIT_BATCH_MAX = 2_000  # messages repeated per peer per tick
EXPIRY_IN_FUTURE_MS_MAX = 7 * 24 * 3600 * 1000  # a condition may not expire later
CLOCK_SKEW_MS_MAX = 5_000  # an ACCEPT later than this past expiresAt is disputed
EVIDENCE_PER_PEER_MAX = 1_000  # kept contradictory messages per peer
FINAL_PROPOSALS_KEPT_PER_DIRECTION_MAX = 4_096  # settled proposals kept for repeats

# --- federation ----------------------------------------------------------------
FEDERATION_BYTES_MAX = 1_024  # a signed federation record on the wire
RESOLVE_HOPS_MAX = 4  # trusted validators a resolution may cross
RESOLVE_TIMEOUT_MS = 5_000  # no answer by then: unknown domain or unreachable
RESOLVE_CACHE_TTL_MS = 300_000  # a verified answer is reused this long
RESOLVE_CACHE_ENTRIES_MAX = 10_000
RESOLVE_RELAYED_MAX = 10_000  # requests remembered for routing answers back and dedup
RESOLVE_PENDING_MAX = 1_000  # our own unanswered requests

# --- transport ---------------------------------------------------------------
QUIC_IDLE_TIMEOUT_S = 30.0
QUIC_KEEPALIVE_INTERVAL_S = QUIC_IDLE_TIMEOUT_S / 3
QUIC_MAX_DATAGRAM_BYTES = 1452
QUIC_HANDSHAKE_TIMEOUT_S = 5.0
QUIC_CONCURRENT_HANDSHAKES_MAX = 16
PEER_SEND_QUEUE_BYTES_MAX = 8 * 1024 * 1024  # bytes queued towards one peer
INCOMING_QUEUE_ITEMS_MAX = 4_096  # frames waiting for the runtime
INCOMING_QUEUE_ITEMS_PER_SENDER_MIN = 16  # a sender with fewer waiting is read even then
RECONNECT_BACKOFF_INITIAL_S = 0.1
RECONNECT_BACKOFF_MAX_S = 5.0
CONNECTIONS_MAX = 256  # peers plus operator clients
PEER_FRAMES_PER_SECOND_MAX = 20_000  # a peer above this is throttled
QUIC_CLOSE_LINGER_S = 3.0  # a closing connection answers stray packets this long at most
QUIC_SHUTDOWN_TIMEOUT_S = 1.0  # time to send CONNECTION_CLOSE to every peer on exit
QUIC_PENDING_DATAGRAMS_MAX = 16  # held per connection while it waits for a handshake slot
UDP_SEND_TIMEOUT_S = 1.0  # one pass of sendto calls; later datagrams are dropped
DATAGRAMS_PER_WAKE_MAX = 64  # queued datagrams read at once after each wait
UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # SO_RCVBUF / SO_SNDBUF asked of the kernel

# --- storage -----------------------------------------------------------------
LOG_RECORD_BYTES_MAX = 1024 * 1024
LOG_SEGMENT_BYTES_MAX = 64 * 1024 * 1024
SNAPSHOT_EVERY_RECORDS = 50_000  # at least; more as the snapshot grows:
SNAPSHOT_BYTES_PER_RECORD = 1_000  # ... each record pays for at most this much of one
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)
SNAPSHOT_BYTES_MAX = 512 * 1024 * 1024
LOG_UNSYNCED_BYTES_MAX = 256 * 1024 * 1024  # appended but not yet synced; sync more often

# --- customer ledgers (node/ledger) --------------------------------------------
USER_NAME_LENGTH_MAX = 64  # the part of an address before the @
ADDRESS_LENGTH_MAX = USER_NAME_LENGTH_MAX + 1 + NAME_LENGTH_MAX  # name@domain
ASSET_CODE_LENGTH_MAX = 12  # the part of a UAI after the /
UAI_LENGTH_MAX = NAME_LENGTH_MAX + 1 + ASSET_CODE_LENGTH_MAX  # issuer-domain/CODE
KYC_LEVEL_MAX = 9  # KYC levels are 0..9
ASSET_DECIMALS_MAX = 18
ATTRIBUTES_PER_USER_MAX = 16  # operator-given str -> str attributes of a user
ATTRIBUTE_NAME_LENGTH_MAX = 32
ATTRIBUTE_VALUE_LENGTH_MAX = 256
USERS_PER_VALIDATOR_MAX = 1_000_000
ASSETS_PER_VALIDATOR_MAX = 1_000
NONCE_MAX = 2**63 - 1  # instruction nonces are 1..NONCE_MAX, strictly increasing per signer
INSTRUCTION_BYTES_MAX = 1024  # a signed user or issuer instruction
ASSETS_PER_ENTRY_MAX = 4  # balance changes one chain entry may carry
CHAIN_ENTRY_BYTES_MAX = 4 * 1024
ENTRIES_PER_RECORD_MAX = 2  # an instruction touches one chain (a hold) or two (a transfer)
BATCH_PATH_STEPS_MAX = 16  # steps from a record to the signed root of its batch (2^16 records)
CHAIN_ENTRIES_PER_PULL_MAX = 50  # entries one chain pull returns: one API frame
CHAIN_FILE_ENTRIES_MAX = 1_000_000
CHAIN_FILE_BYTES_MAX = 1024 * 1024 * 1024
EVIDENCE_FILE_BYTES_MAX = 4 * CHAIN_ENTRY_BYTES_MAX
DAY_MS = 24 * 3600 * 1000  # daily limits count per UTC day

# --- runtime -----------------------------------------------------------------
INPUTS_PER_PASS_MAX = 4_096  # inputs decided together, then one fsync
PEER_INPUTS_PER_PASS_MAX = 256  # ... of which from peers: a pass stays short under gossip load
TICK_INTERVAL_MS = 100
SYNC_DEFER_MS_MAX = 50  # a pass that lets nothing out may leave its records unsynced this long
API_REQUEST_TIMEOUT_S = 10.0
API_WAIT_MARGIN_S = 5.0  # a `wait` request may take the CLI's --wait, and then this
PAY_BATCH_TRANSFERS_MAX = 1_000  # transfers in one pay_batch operator request
LEDGER_TRANSFERS_PER_REQUEST_MAX = 200  # a customer's signed transfers in one request
TRANSFER_BATCH_LINES_MAX = 100_000  # payments in one transfer-batch file
VERIFY_POOL_THREADS_MAX = 3  # worker threads checking a batch's signatures beside the caller
VERIFY_POOL_BATCH_MIN = 16  # fewer signatures are checked inline
VERIFIED_SIGNATURES_REMEMBERED = 8_192  # valid signatures remembered by their bytes
VERIFIED_PAYLOAD_BYTES_MAX = 2_048  # ... of payloads this small (gossip items, instructions)

# --- gossip (node/gossip.py) ---------------------------------------------------
GOSSIP_KIND_LENGTH_MAX = 16  # "route", "offer"
GOSSIP_ITEM_ID_BYTES_MAX = 32
GOSSIP_ITEM_BYTES_MAX = 2_048  # the opaque signed body of one item
GOSSIP_ITEM_LIFETIME_MS_MAX = 7 * 24 * 3600 * 1000  # an item may not expire later
GOSSIP_ITEMS_PER_ORIGIN_MAX = 4_096  # offers (live, tombstones), routes, endorsements
GOSSIP_ITEMS_MAX = 250_000  # every origin together
GOSSIP_ITEMS_PER_MESSAGE_MAX = 16
GOSSIP_DIGEST_ENTRIES_MAX = 256  # entries of one anti-entropy digest (one round)
GOSSIP_FINGERPRINT_BYTES = 8  # a summary round's fingerprint of those entries
GOSSIP_ROUND_ITEMS_MAX = 64  # items sent in answer to one digest
GOSSIP_ROUND_INTERVAL_MS = 10_000  # anti-entropy round with each peer this often
GOSSIP_ORIGIN_BURST_ITEMS = 256  # token bucket per origin: capacity
GOSSIP_ORIGIN_REFILL_MS = 20  # ... and one more token this often (50 items/s sustained)
GOSSIP_ORIGINS_TRACKED_MAX = 10_000  # token buckets kept
GOSSIP_EAGER_FANOUT = 3  # peers a new item goes to in full; the others get a HAVE of its name
GOSSIP_HAVE_ENTRIES_MAX = 128  # (name, seq) entries of one HAVE
GOSSIP_WANT_NAMES_MAX = GOSSIP_ITEMS_PER_MESSAGE_MAX  # names of one WANT: one GOSSIP answers it
GOSSIP_WANTS_PER_PEER_MAX = 256  # unanswered WANT names towards one peer
GOSSIP_WANTED_MAX = 10_000  # names we are waiting for, every peer together
GOSSIP_WANT_TIMEOUT_MS = 1_000  # a WANT unanswered by then goes to the next announcer
GOSSIP_ANNOUNCERS_KEPT_MAX = 4  # further peers remembered per wanted name
GOSSIP_DECLINED_MAX = 10_000  # (name, seq) of genuine items our trust declined, remembered

# --- payments (node/payments) ------------------------------------------------------
PAYMENT_ID_LENGTH_MAX = 64
PAYMENT_HOPS_MAX = 6  # SNAP transfers on one path, payer to payee
PAYMENT_PARTS_MAX = 4  # paths one payment may be split over
PAYMENT_PENDING_PER_PEER_MAX = 1_000  # open payment transfers towards one peer
PAYMENT_EXPIRY_DELTA_MS_MIN = 2 * CLOCK_SKEW_MS_MAX  # the least delta a hop may announce
PAYMENT_EXPIRY_DELTA_MS_MAX = 3_600_000
PAYMENT_FINAL_DELTA_MS = 30_000  # a payee asks this much time for the last transfer
PAYMENT_FINAL_EXPIRY_MS_MIN = PAYMENT_FINAL_DELTA_MS // 2  # it refuses less on arrival
PAYMENT_EXPIRY_MS_MAX = PAYMENT_FINAL_DELTA_MS + PAYMENT_HOPS_MAX * PAYMENT_EXPIRY_DELTA_MS_MAX
PAYMENT_INVOICE_LIFETIME_MS = 600_000  # parts of a payment are held this long at most
PAYMENT_INVOICE_RETRY_MS = 2_000  # an unanswered invoice request is repeated this often
PAYMENT_FEE_PPM_MAX = 100_000  # 10 %
MAX_FEE_PPM_DEFAULT = 10_000  # without --max-fee, a payment pays at most 1 % in fees
PAYMENT_FAILURE_HALF_LIFE_MS = 300_000  # what a failure taught about an edge fades so
PAYMENT_FAILURES_REMEMBERED_MAX = 10_000
ROUTE_ANNOUNCEMENT_LIFETIME_MS_MAX = 24 * 3600 * 1000
ROUTE_ANNOUNCEMENT_LIFETIME_MS = 3 * 3600 * 1000  # what a node gives its own announcements
ROUTE_ANNOUNCE_INTERVAL_MS = 3600 * 1000  # ... and it re-announces this often (new seq)
ROUTING_FEE_BASE_DEFAULT = 0  # a validator's fee policy unless node.toml's [routing] says
ROUTING_FEE_PPM_DEFAULT = 1_000  # 0.1 %
ROUTING_EXPIRY_DELTA_MS_DEFAULT = 20_000
PAYMENT_DEADLINE_MS_DEFAULT = 60_000  # a payment is retried this long unless told
PAYMENTS_LISTED_MAX = 1_000  # the newest payments `ledgermesh payments` shows
PAYMENT_WAITERS_MAX = 4_096  # `pay` requests answered when their payment ends (then: at once)
TRANSFER_WAITERS_MAX = 4_096  # customers' `transfer_status` waiting for their hold to end
TRANSFER_WAITERS_PER_PAYER_MAX = 64  # of those, one customer's (the rest are answered at once)
# Retention (docs/PAYMENTS.md, "Retention"): what has ended is kept in full up to a
# bound per kind (our payments, invoices, forwarded transfer pairs), newest kept;
# an ended payment of ours then leaves a compact outcome (id -> outcome, preimage
# as proof) for idempotency, up to the second bound. Open items are never dropped.
PAYMENTS_ENDED_KEPT_MAX = 10_000  # per kind: ended payments, invoices, forwarded pairs
PAYMENT_OUTCOMES_KEPT_MAX = 250_000  # ended payment ids remembered after their details
PAYMENT_OUTCOMES_PER_RECORD_MAX = 1_024  # outcomes in one snapshot record
PAYMENT_INVOICES_EXPIRED_PER_TICK_MAX = 1_024  # InvoiceExpired records one tick writes
# An outcome at its longest: id, reason, failed hop (source>target), preimage, hold id, fee.
PAYMENT_OUTCOME_BYTES_MAX = (
    2 * PAYMENT_ID_LENGTH_MAX + REASON_LENGTH_MAX + 2 * NAME_LENGTH_MAX + 1 + HASH_BYTES + 32
)
assert 0 < TRANSFER_WAITERS_PER_PAYER_MAX <= TRANSFER_WAITERS_MAX
assert PAYMENTS_LISTED_MAX <= PAYMENTS_ENDED_KEPT_MAX  # `payments` lists only full ones
assert PAYMENTS_ENDED_KEPT_MAX < PAYMENT_OUTCOMES_KEPT_MAX
assert PAYMENT_OUTCOMES_KEPT_MAX * PAYMENT_OUTCOME_BYTES_MAX <= SNAPSHOT_BYTES_MAX // 2
assert 0 < PAYMENT_OUTCOMES_PER_RECORD_MAX * PAYMENT_OUTCOME_BYTES_MAX < LOG_RECORD_BYTES_MAX

# --- relations ---------------------------------------------------------------
assert QUIC_KEEPALIVE_INTERVAL_S < QUIC_IDLE_TIMEOUT_S / 2
assert RECONNECT_BACKOFF_INITIAL_S < RECONNECT_BACKOFF_MAX_S
assert QUIC_CLOSE_LINGER_S < QUIC_IDLE_TIMEOUT_S
assert FRAME_BYTES_MAX < PEER_SEND_QUEUE_BYTES_MAX
assert API_FRAME_BYTES_MAX < PEER_SEND_QUEUE_BYTES_MAX
assert 0 < PEER_INPUTS_PER_PASS_MAX <= INPUTS_PER_PASS_MAX
assert 0 < INCOMING_QUEUE_ITEMS_PER_SENDER_MIN < INCOMING_QUEUE_ITEMS_MAX
assert FRAME_BYTES_MAX < LOG_RECORD_BYTES_MAX
assert LOG_RECORD_BYTES_MAX < LOG_SEGMENT_BYTES_MAX
assert LOG_RECORD_BYTES_MAX < LOG_UNSYNCED_BYTES_MAX
assert RETRANSMIT_BATCH_MAX <= OUTBOX_MESSAGES_PER_PEER_MAX
# a held ACK, released at the first tick after its delay, still beats the repeat
assert ACK_DELAY_MS >= 0 and ACK_DELAY_MS + TICK_INTERVAL_MS < RETRANSMIT_INTERVAL_MS // 2
assert PENDING_PROPOSALS_PER_PEER_MAX <= OUTBOX_MESSAGES_PER_PEER_MAX
assert CLOCK_SKEW_MS_MAX < EXPIRY_IN_FUTURE_MS_MAX
assert FEDERATION_BYTES_MAX + ADDRESS_LENGTH_MAX < FRAME_BYTES_MAX
assert 0 < FINAL_PROPOSALS_KEPT_PER_DIRECTION_MAX <= OUTBOX_MESSAGES_PER_PEER_MAX
assert INSTRUCTION_BYTES_MAX < CHAIN_ENTRY_BYTES_MAX
assert 2 * CHAIN_ENTRY_BYTES_MAX < LOG_RECORD_BYTES_MAX  # a transfer's record holds two entries
assert CHAIN_ENTRIES_PER_PULL_MAX * CHAIN_ENTRY_BYTES_MAX < API_FRAME_BYTES_MAX
assert CHAIN_ENTRIES_PER_PULL_MAX <= CHAIN_FILE_ENTRIES_MAX
assert NONCE_MAX <= AMOUNT_MAX  # both fit msgpack's signed 64-bit integers
assert GOSSIP_ITEMS_PER_MESSAGE_MAX * (GOSSIP_ITEM_BYTES_MAX + 256) < FRAME_BYTES_MAX
assert GOSSIP_DIGEST_ENTRIES_MAX * 128 < FRAME_BYTES_MAX
assert GOSSIP_ITEMS_PER_ORIGIN_MAX <= GOSSIP_ITEMS_MAX
assert GOSSIP_ITEMS_PER_MESSAGE_MAX <= GOSSIP_ROUND_ITEMS_MAX
assert GOSSIP_HAVE_ENTRIES_MAX * 128 < FRAME_BYTES_MAX
assert GOSSIP_WANT_NAMES_MAX <= GOSSIP_ITEMS_PER_MESSAGE_MAX  # one answer per WANT
assert GOSSIP_WANTS_PER_PEER_MAX <= GOSSIP_WANTED_MAX
assert GOSSIP_EAGER_FANOUT > 0
assert GOSSIP_ROUND_INTERVAL_MS > GOSSIP_WANT_TIMEOUT_MS  # pulls are tried before the safety net
assert PAYMENT_EXPIRY_DELTA_MS_MIN > CLOCK_SKEW_MS_MAX  # a hop's margin beats clock skew
assert PAYMENT_EXPIRY_DELTA_MS_MIN <= PAYMENT_EXPIRY_DELTA_MS_MAX
assert CLOCK_SKEW_MS_MAX < PAYMENT_FINAL_EXPIRY_MS_MIN < PAYMENT_FINAL_DELTA_MS
assert PAYMENT_EXPIRY_MS_MAX <= EXPIRY_IN_FUTURE_MS_MAX
assert PAYMENT_PENDING_PER_PEER_MAX <= PENDING_PROPOSALS_PER_PEER_MAX
assert PAYMENT_FINAL_DELTA_MS < PAYMENT_INVOICE_LIFETIME_MS
assert ROUTE_ANNOUNCEMENT_LIFETIME_MS_MAX <= GOSSIP_ITEM_LIFETIME_MS_MAX
assert ROUTE_ANNOUNCE_INTERVAL_MS < ROUTE_ANNOUNCEMENT_LIFETIME_MS
assert ROUTE_ANNOUNCEMENT_LIFETIME_MS <= ROUTE_ANNOUNCEMENT_LIFETIME_MS_MAX
assert PAYMENT_EXPIRY_DELTA_MS_MIN <= ROUTING_EXPIRY_DELTA_MS_DEFAULT
assert ROUTING_EXPIRY_DELTA_MS_DEFAULT <= PAYMENT_EXPIRY_DELTA_MS_MAX
assert ROUTING_FEE_PPM_DEFAULT <= PAYMENT_FEE_PPM_MAX
assert MAX_FEE_PPM_DEFAULT <= PAYMENT_FEE_PPM_MAX

# --- exchange desk (node/offers_desk.py, node/exchange_desk.py) ---------------------------------
OFFER_ID_PREFIX_MIN = 8  # hex digits of an offer id a user may type instead of all 64
OFFER_SEARCH_RESULTS_MAX = 200  # offers one search answers
OFFER_JOURNAL_MAX = 4_096  # book changes kept for `offers watch` pollers
OFFER_CHANGES_PER_ANSWER_MAX = 256
ENDORSE_INTERVAL_MS = 3600 * 1000  # a validator re-endorses its trusted peers this often
ENDORSEMENT_LIFETIME_MS = 3 * 3600 * 1000  # ... for this long
EXCHANGE_TAKE_TIMEOUT_MS = 60_000  # a take not accepted by then is given up (hold released)
EXCHANGE_LEG_A_FINAL_DELTA_MS = 240_000  # the taker's leg outlives the maker's leg by this much
EXCHANGE_CLAIM_MARGIN_MS = 30_000  # the maker's validator claims leg A this long before it expires
EXCHANGE_LEG_B_TIME_MIN_MS = 120_000  # leg A held for less time than this + the margin is refused
EXCHANGE_TAKES_OPEN_MAX = 1_000  # takes in flight at one validator (as maker's or taker's)
OFFER_GOSSIP_HEADROOM = 256  # gossip items of ours kept free for routes and endorsements
OFFER_RESYNC_INTERVAL_MS = 1_000  # after the accepted validators grew, re-ask peers this often
assert OFFER_CHANGES_PER_ANSWER_MAX <= OFFER_JOURNAL_MAX
assert ENDORSE_INTERVAL_MS < ENDORSEMENT_LIFETIME_MS <= GOSSIP_ITEM_LIFETIME_MS_MAX
assert EXCHANGE_CLAIM_MARGIN_MS > CLOCK_SKEW_MS_MAX
# An honest leg A arrives with about EXCHANGE_LEG_A_FINAL_DELTA_MS left: a third to spare.
_LEG_B_NEEDS_MS = EXCHANGE_LEG_B_TIME_MIN_MS + EXCHANGE_CLAIM_MARGIN_MS
assert 3 * _LEG_B_NEEDS_MS < 2 * EXCHANGE_LEG_A_FINAL_DELTA_MS
assert EXCHANGE_LEG_B_TIME_MIN_MS > PAYMENT_FINAL_DELTA_MS
assert OFFER_GOSSIP_HEADROOM < GOSSIP_ITEMS_PER_ORIGIN_MAX

# --- offers core (node/offers) OFFERS-GOSSIP ---------------------------------------------
ENDORSEMENT_DEPTH_MAX = 4  # endorsements between us and the farthest validator key we accept
ENDORSEMENT_LIFETIME_MS_MAX = 24 * 3600 * 1000  # an endorsement may not claim to last longer
ENDORSEMENT_BYTES_MAX = 1_024  # an endorsement's signed payload
ENDORSEMENTS_KEPT_MAX = 10_000  # endorsements one node's trust holds, every endorser together
OFFER_STATUS_BYTES_MAX = 1_024  # an offer status's signed payload, a cancel inside included
OFFERS_LIVE_PER_MAKER_MAX = 100  # live offers of one maker in a node's book
OFFERS_LIVE_PER_VALIDATOR_MAX = 1_000  # live offers of one validator's customers in a book
OFFER_BOOK_RESULTS_MAX = 1_000  # entries one book search returns
ACCEPTANCE_BYTES_MAX = 1_024  # a maker validator's signed acceptance payload
OFFER_EVIDENCE_ACCEPTANCES_MAX = 64  # acceptances one overfill evidence file may carry
OFFER_EVIDENCE_BYTES_MAX = 128 * 1024
assert ENDORSEMENT_DEPTH_MAX >= 1
assert ENDORSEMENT_LIFETIME_MS_MAX <= GOSSIP_ITEM_LIFETIME_MS_MAX
assert ENDORSEMENT_BYTES_MAX + SIGNATURE_BYTES + 16 <= GOSSIP_ITEM_BYTES_MAX
assert ENDORSEMENTS_KEPT_MAX <= GOSSIP_ITEMS_MAX
assert 0 < OFFERS_LIVE_PER_MAKER_MAX <= OFFERS_LIVE_PER_VALIDATOR_MAX
assert OFFERS_LIVE_PER_VALIDATOR_MAX <= GOSSIP_ITEMS_PER_ORIGIN_MAX  # each is one item of M
assert OFFER_EVIDENCE_ACCEPTANCES_MAX >= 2  # an overfill is provable with two acceptances
assert (
    OFFER_EVIDENCE_ACCEPTANCES_MAX * (ACCEPTANCE_BYTES_MAX + SIGNATURE_BYTES + 16)
    + INSTRUCTION_BYTES_MAX
    + 256
    <= OFFER_EVIDENCE_BYTES_MAX
)
# --- end OFFERS-GOSSIP

# --- offers in the Books (node/ledger/offers.py) OFFERS-BOOKS ------------------------------
OFFERS_OPEN_PER_USER_MAX = 100  # open offers (reservations) of one customer
assert 0 < OFFERS_OPEN_PER_USER_MAX <= CHAIN_FILE_ENTRIES_MAX  # each opens with an entry
# --- end OFFERS-BOOKS
assert LEDGER_TRANSFERS_PER_REQUEST_MAX * (INSTRUCTION_BYTES_MAX + 16) < API_FRAME_BYTES_MAX
assert LEDGER_TRANSFERS_PER_REQUEST_MAX <= 2**BATCH_PATH_STEPS_MAX  # a request's batch fits

# --- unsettled-exchange claims (node/offers/unsettled.py) OFFERS-UNSETTLED -----------------
EXCHANGE_UNSETTLED_BYTES_MAX = 8 * 1024  # a claim: offer, take, acceptance, receipt, preimage
assert (
    2 * (INSTRUCTION_BYTES_MAX + PUBLIC_KEY_BYTES + SIGNATURE_BYTES + 16)
    + 2 * (ACCEPTANCE_BYTES_MAX + SIGNATURE_BYTES + 16)
    + HASH_BYTES
    + 256
    <= EXCHANGE_UNSETTLED_BYTES_MAX
)
assert EXCHANGE_UNSETTLED_BYTES_MAX <= OFFER_EVIDENCE_BYTES_MAX  # one bound reads either's type
# --- end OFFERS-UNSETTLED

# --- signature checker child (node/check_ahead.py) CHECK-AHEAD ----------------------------
CHECK_AHEAD_BYTES_MAX = 512 * 1024  # batches sent to the checker and not yet answered
assert CHECK_AHEAD_BYTES_MAX >= API_FRAME_BYTES_MAX  # one whole request fits
CHECK_AHEAD_ANSWER_TIMEOUT_MS = 2_000  # an answer later than this: the child is given up
CHECK_AHEAD_START_TIMEOUT_MS = 30_000  # not started (no hello) by then: given up too
# --- end CHECK-AHEAD
