"""Every proposal as each side made it durable: finality and cross-side agreement.

Rules:
- One ``ProposalBook`` per ordered pair (proposer, decider). It learns from
  durable log records only: the proposer's OutgoingProposed / OutgoingDecided
  and the decider's IncomingProposed / IncomingDecided, fed in by the
  simulator once a sync returned (or once recovery shows a torn-off record
  survived a crash).
- Checked on every record, at once: a proposal's content never changes and is
  the same on both sides; a final outcome never changes and is the same on
  both sides; an honest peer never contradicts itself (no "contradiction"
  evidence is ever kept). A failure raises ``InvariantViolation``.
- Compact: per msgId an 8-byte content digest and a 1-byte outcome per side,
  so an hour of a 50-node mesh fits in a few megabytes.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Any

from node.snap.records import (
    KIND_FIELD,
    EvidenceKept,
    IncomingDecided,
    IncomingProposed,
    OutgoingDecided,
    OutgoingProposed,
)
from node.state import decode_log_record
from node.wire import unpack
from simulations.violations import InvariantViolation, Violation

UNKNOWN, ACCEPTED, REJECTED = 0, 1, 2
OUTCOME_NAMES = {UNKNOWN: "unknown", ACCEPTED: "accepted", REJECTED: "rejected"}


def content_digest(record: dict[str, Any]) -> int:
    """A nonzero 63-bit digest of what a proposal record says."""
    condition = record["condition"].hex() if record["condition"] is not None else ""
    text = f"{record['amount']}|{record['unit']}|{condition}|{record['expires_at_ms']}"
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest()) >> 1
    return value or 1


def _grow(values: array[int] | bytearray, size: int) -> None:
    missing = size - len(values)
    if missing > 0:
        values.extend(bytes(missing) if isinstance(values, bytearray) else [0] * missing)


class ProposalBook:
    """The proposals of one proposer to one decider, per msgId, as each side recorded them."""

    def __init__(self, proposer: str, decider: str) -> None:
        self.proposer = proposer
        self.decider = decider
        self.content_at_proposer: array[int] = array("q")
        self.content_at_decider: array[int] = array("q")
        self.outcome_at_proposer = bytearray()
        self.outcome_at_decider = bytearray()
        self.settled = 0  # every msgId below is final on both sides
        self.accepted = 0  # decided by the decider
        self.rejected = 0

    def proposed(self, at_proposer: bool, msg_id: int, digest: int, time_ms: int) -> None:
        mine = self.content_at_proposer if at_proposer else self.content_at_decider
        theirs = self.content_at_decider if at_proposer else self.content_at_proposer
        _grow(mine, msg_id + 1)
        side = self.proposer if at_proposer else self.decider
        if mine[msg_id] not in (0, digest):
            self._fail("finality", f"proposal {msg_id} changed content at {side}", time_ms)
        mine[msg_id] = digest
        if len(theirs) > msg_id and theirs[msg_id] not in (0, digest):
            self._fail("agreement", f"the two sides hold different proposals {msg_id}", time_ms)

    def decided(self, at_proposer: bool, msg_id: int, accepted: bool, time_ms: int) -> None:
        mine = self.outcome_at_proposer if at_proposer else self.outcome_at_decider
        theirs = self.outcome_at_decider if at_proposer else self.outcome_at_proposer
        _grow(mine, msg_id + 1)
        outcome = ACCEPTED if accepted else REJECTED
        side = self.proposer if at_proposer else self.decider
        if mine[msg_id] not in (UNKNOWN, outcome):
            before = OUTCOME_NAMES[mine[msg_id]]
            self._fail(
                "finality",
                f"final proposal {msg_id} changed from {before} to {OUTCOME_NAMES[outcome]} "
                f"at {side}",
                time_ms,
            )
        if mine[msg_id] == UNKNOWN and not at_proposer:
            if accepted:
                self.accepted += 1
            else:
                self.rejected += 1
        mine[msg_id] = outcome
        if len(theirs) > msg_id and theirs[msg_id] not in (UNKNOWN, outcome):
            self._fail(
                "conservation",
                f"proposal {msg_id} is {OUTCOME_NAMES[theirs[msg_id]]} at one side and "
                f"{OUTCOME_NAMES[outcome]} at the other",
                time_ms,
            )
        self._advance()

    def _advance(self) -> None:
        proposer, decider = self.outcome_at_proposer, self.outcome_at_decider
        end = min(len(proposer), len(decider))
        settled = self.settled
        while settled < end and proposer[settled] and decider[settled]:
            settled += 1
        self.settled = settled

    def agrees_below(self, end: int) -> bool:
        """Both sides hold every proposal below ``end`` and the same outcome for each
        (pending at both counts: a hashlock may rightly wait for its expiry)."""
        decider_content = self.content_at_decider
        at_proposer, at_decider = self.outcome_at_proposer, self.outcome_at_decider
        if end > len(decider_content):
            return False
        for msg_id in range(self.settled, end):
            if not decider_content[msg_id]:
                return False
            proposer_outcome = at_proposer[msg_id] if msg_id < len(at_proposer) else UNKNOWN
            decider_outcome = at_decider[msg_id] if msg_id < len(at_decider) else UNKNOWN
            if proposer_outcome != decider_outcome:
                return False
        return True

    def proposed_count(self) -> int:
        """msgIds the proposer has made durable (they are dense from 0)."""
        return len(self.content_at_proposer)

    def outcome(self, at_proposer: bool, msg_id: int) -> int:
        outcomes = self.outcome_at_proposer if at_proposer else self.outcome_at_decider
        return outcomes[msg_id] if msg_id < len(outcomes) else UNKNOWN

    def has_proposal(self, msg_id: int) -> bool:
        content = self.content_at_proposer
        return msg_id < len(content) and content[msg_id] != 0

    def _fail(self, invariant: str, message: str, time_ms: int) -> None:
        raise InvariantViolation(
            Violation(
                invariant,
                f"{self.proposer} -> {self.decider}: {message}",
                (self.proposer, self.decider),
                time_ms,
            )
        )


class Books:
    """Every ProposalBook of the mesh, fed with durable log records."""

    def __init__(self, names: list[str], keys: list[bytes]) -> None:
        self.names = names
        self.index_of_key = {key: index for index, key in enumerate(keys)}
        self.books: dict[tuple[int, int], ProposalBook] = {}

    def book(self, proposer: int, decider: int) -> ProposalBook:
        book = self.books.get((proposer, decider))
        if book is None:
            book = ProposalBook(self.names[proposer], self.names[decider])
            self.books[(proposer, decider)] = book
        return book

    def apply(self, node: int, payload: bytes, time_ms: int) -> None:
        """One durable log record of ``node``.

        Reads the fields it needs straight from the record's map (the engine wrote
        it a moment ago); evidence, rare, goes through the strict decoder.
        """
        fields = unpack(payload, len(payload))
        if fields.get("t") != "snap":
            return  # an invoice: no bilateral state
        record = fields["r"]
        kind = record[KIND_FIELD]
        peer = self.index_of_key[fields["peer"]]
        if kind == OutgoingProposed.KIND:
            digest = content_digest(record)
            self.book(node, peer).proposed(True, record["msg_id"], digest, time_ms)
        elif kind == IncomingProposed.KIND:
            digest = content_digest(record)
            self.book(peer, node).proposed(False, record["msg_id"], digest, time_ms)
        elif kind == OutgoingDecided.KIND:
            self.book(node, peer).decided(True, record["msg_id"], record["accepted"], time_ms)
        elif kind == IncomingDecided.KIND:
            self.book(peer, node).decided(False, record["msg_id"], record["accepted"], time_ms)
        elif kind == EvidenceKept.KIND:
            decoded = decode_log_record(payload)
            assert isinstance(decoded, tuple) and isinstance(decoded[1], EvidenceKept)
            self._evidence(node, peer, decoded[1], time_ms)

    def _evidence(self, node: int, peer: int, record: EvidenceKept, time_ms: int) -> None:
        if record.reason == "contradiction":
            names = (self.names[node], self.names[peer])
            raise InvariantViolation(
                Violation(
                    "finality",
                    f"{names[0]} kept evidence that {names[1]} contradicted itself: "
                    f"{record.message}",
                    names,
                    time_ms,
                )
            )

    def totals(self) -> tuple[int, int]:
        """(accepted, rejected) proposals over the whole mesh, as decided."""
        accepted = sum(book.accepted for book in self.books.values())
        rejected = sum(book.rejected for book in self.books.values())
        return accepted, rejected
