"""Every constant of the simulator and the chaos run, in one place.

Units are last in the names. Relations between them are asserted at the end,
so a change that breaks one fails at import.
"""

from __future__ import annotations

from node.limits import (
    ENDORSEMENT_DEPTH_MAX,
    EXCHANGE_LEG_A_FINAL_DELTA_MS,
    EXCHANGE_TAKE_TIMEOUT_MS,
    FRAME_BYTES_MAX,
    GOSSIP_ROUND_INTERVAL_MS,
    PAYMENT_DEADLINE_MS_DEFAULT,
    PAYMENT_HOPS_MAX,
    RETRANSMIT_INTERVAL_MS,
    ROUTING_EXPIRY_DELTA_MS_DEFAULT,
    TICK_INTERVAL_MS,
)

# --- the simulated world -------------------------------------------------------
EPOCH_MS = 1_800_000_000_000  # simulated time 0, as the nodes' wall clock (2027-01-15)
SYNC_LATENCY_MS = 1  # an fsync takes this long; a crash inside it may tear the write
SNAPSHOT_LATENCY_MS = 5  # writing a snapshot takes this long
SNAPSHOT_EVERY_RECORDS_RANGE = (300, 3_000)  # a node snapshots this often (seeded per life)
# Small segments: snapshots then remove old ones, so simulated disks stay small in memory,
# and segment rollover and removal run (and crash) all the time.
SIMULATED_SEGMENT_BYTES_MAX = 128 * 1024
OPERATOR_LATENCY_MS = 1  # the operator's requests and answers, one way
CHECK_INTERVAL_MS = 1_000  # agreement of quiet links is checked this often
CONVERGENCE_POLL_MS = 100  # how finely convergence after a heal is measured
DRAIN_POLL_MS = 500  # after faults stop, how often the run looks whether all is quiet
SIMULATED_TICK_INTERVAL_MS = TICK_INTERVAL_MS  # a node's clock tick, as the runtime does
UNITS = ("1E-2 USD", "1E-2 EUR")
CREDIT_LIMIT_RANGE = (200_000, 5_000_000)  # credit a node extends to a peer, per unit (seeded)
DURATION_MS_MAX = 7 * 24 * 3_600_000
# Every node lives in this process, so a frame's receiver may check the very signature its
# sender's real sign made here: node.signatures remembers this many of them (and this many
# payload bytes), enough for frames in flight and for retransmissions of the same bytes.
OWN_SIGNATURES_REMEMBERED = 16_384
OWN_SIGNATURES_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024

# --- faults ----------------------------------------------------------------------
PARTITION_MS_MIN = 1_000
PARTITION_MS_MAX = 300_000
PARTITION_SHARE_OF_RUN = 0.2  # a partition lasts at most this share of the run
CRASH_DOWN_MS_MIN = 100
CRASH_DOWN_MS_MAX = 60_000
CRASH_ARMED_MS_MAX = 10_000  # a crash aimed at the next sync waits at most this long
DELAY_MS_MAX = 60_000

# --- the workload ------------------------------------------------------------------
EXPIRY_MS_RANGE = (5_000, 30_000)  # hashlocked transfers expire this far ahead (seeded)
WORKLOAD_RATE_MAX = 100_000.0  # transfers per simulated second over the mesh

# --- the offers workload (``--workload offers:...``) -----------------------------------
OFFER_CODES = ("USD", "EUR")  # every node issues both, 2 decimals, mapped to UNITS
OFFER_DEPOSIT = 1_000_000  # each customer starts with this much of each (10,000.00)
OFFER_SELL_RANGE = (100, 20_000)  # an offer sells this much of its maker's EUR (cents)
OFFER_PRICE_PPM_RANGE = (900_000, 1_300_000)  # USD asked per EUR sold, in millionths
OFFER_LIFETIME_MS_RANGE = (180_000, 900_000)  # an offer expires this far ahead (seeded)
OFFER_SAME_BANK_SHARE = 0.25  # offers buying their maker's own bank's USD
OFFER_BUY_BANK_HOPS_MAX = 3  # other offers buy the USD of a bank this near the maker's
OFFER_TAKE_ALL_SHARE = 0.4  # takes of all that is left (the rest take a random part)
OFFER_TAKE_RECENT = 64  # takers pick among the offers made most recently
OFFER_SETUP_RETRY_MS = 1_000  # unanswered setup requests are sent again this often
# Offers spread to every node whose trust closure reaches the maker's validator:
TRUST_HOPS_MAX = ENDORSEMENT_DEPTH_MAX
# After the drain, a live offer must be in every such book within this: anti-entropy rounds
# every GOSSIP_ROUND_INTERVAL_MS, each answer at most GOSSIP_ROUND_ITEMS_MAX items, many of
# them refused by the asker (offers of validators beyond its trust), and restarted nodes
# relearn a whole store (measured: 40 nodes, 3,000 items, up to 221 s; docs/SIMULATION.md).
OFFER_SPREAD_BOUND_MS = 60 * GOSSIP_ROUND_INTERVAL_MS
OFFER_SPREAD_MARGIN_MS = 30_000  # offers expiring this soon are left out of a spread check
OFFER_SPREAD_POLL_MS = 5_000  # how often the books are compared (it walks every book)
# With exchanges, the drain may wait for a leg to expire: the take's timeout, the payment's
# deadline, leg A's final delta and one expiry delta per hop.
OFFERS_RESOLVE_BOUND_MS = (
    EXCHANGE_TAKE_TIMEOUT_MS
    + PAYMENT_DEADLINE_MS_DEFAULT
    + EXCHANGE_LEG_A_FINAL_DELTA_MS
    + PAYMENT_HOPS_MAX * ROUTING_EXPIRY_DELTA_MS_DEFAULT
)
OFFER_CHECK_INTERVAL_MS = 10_000  # per-node Books conservation is checked this often

# --- the end of a run ------------------------------------------------------------------
# After faults stop, everything pending must resolve within this: the longest
# expiry, plus retransmissions over the slowest delay.
RESOLVE_BOUND_MS = EXPIRY_MS_RANGE[1] + 20 * RETRANSMIT_INTERVAL_MS

# --- swarms and reports ----------------------------------------------------------------
SWARM_SEEDS_MAX = 100_000
SWARM_LOSS_MAX = 0.3  # each seed of a swarm draws its own fault rates up to these
SWARM_DUPLICATE_MAX = 0.2
SWARM_DELAY_MS_MAX = 300
REPORT_POINTS_MAX = 720  # points per time series in a report
REPORT_SAMPLE_MS_MIN = 1_000
PROGRESS_UPDATE_S = 0.2  # a progress bar redraws at most this often

# --- the real chaos run ----------------------------------------------------------------
CHAOS_NODES_MAX = 32
CHAOS_RATE_DEFAULT = 20.0  # transfers per second offered over the mesh
CHAOS_IN_FLIGHT_MAX = 16  # operator requests in flight at once
CHAOS_DOWN_S_RANGE = (0.2, 2.0)  # a killed node stays down this long
CHAOS_CUT_S_RANGE = (1.0, 5.0)  # a cut link stays cut this long
CHAOS_CUT_EVERY_S = 3.0  # links are drawn for cutting this often
CHAOS_CONVERGE_TIMEOUT_S = 90.0  # after faults stop, everything must settle within this
CHAOS_READY_TIMEOUT_S = 60.0
CHAOS_EXPIRY_S = 20.0  # hashlocked transfers in the chaos workload expire this far ahead
RELAY_DATAGRAM_BYTES_MAX = 65_535
RELAY_FLOWS_MAX = 64  # client addresses one relay forwards for
RELAY_QUEUE_DATAGRAMS_MAX = 4_096  # delayed datagrams held by one relay

# --- relations ---------------------------------------------------------------------
assert SYNC_LATENCY_MS > 0  # a crash must be able to land inside a sync
assert SIMULATED_TICK_INTERVAL_MS <= RETRANSMIT_INTERVAL_MS
assert PARTITION_MS_MIN <= PARTITION_MS_MAX
assert CRASH_DOWN_MS_MIN <= CRASH_DOWN_MS_MAX
assert EXPIRY_MS_RANGE[0] < EXPIRY_MS_RANGE[1] < RESOLVE_BOUND_MS
assert SNAPSHOT_EVERY_RECORDS_RANGE[0] <= SNAPSHOT_EVERY_RECORDS_RANGE[1]
assert FRAME_BYTES_MAX < SIMULATED_SEGMENT_BYTES_MAX
assert FRAME_BYTES_MAX < OWN_SIGNATURES_PAYLOAD_BYTES_MAX  # the largest frame fits
assert OFFER_SELL_RANGE[0] > 0 and OFFER_PRICE_PPM_RANGE[0] > 0
assert OFFER_LIFETIME_MS_RANGE[0] > OFFER_SPREAD_MARGIN_MS  # offers outlive their checks
assert RESOLVE_BOUND_MS < OFFERS_RESOLVE_BOUND_MS
assert len(OFFER_CODES) == len(UNITS)
assert CHAOS_DOWN_S_RANGE[0] <= CHAOS_DOWN_S_RANGE[1]
assert CHAOS_CUT_S_RANGE[0] <= CHAOS_CUT_S_RANGE[1]
