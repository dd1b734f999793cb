"""Delayed SNAP acknowledgements: an ACK rides on the next frame to its peer.

Theory of operation:
- A pass whose only messages to a peer are ACKs does not send them: they are
  held for that peer until ``ACK_DELAY_MS`` after the first of them was held.
  The next pass that sends that peer anything else carries them in the same
  frame; a pass at or after the deadline sends them alone.
- An ACK of a PROPOSE is dropped when the same frame carries our decision of
  that PROPOSE (ACCEPT or REJECT of the same msgId): a decision acknowledges the
  PROPOSE it answers. Identical ACKs are sent once.
- Why: a conditional PROPOSE is ACKed at once and decided later, and every
  decision is ACKed; alone, those ACKs were a sixth of a busy mesh's frames
  and half of a payment hop's (each frame signed, encoded, sent and checked).
- Safe: an ACK only stops the peer's repeats (until it arrives the peer's
  message still counts in its OUTBOX_MESSAGES_PER_PEER_MAX and a settled
  proposal is compacted up to ~300 ms later; no decision waits on it), and
  ``ACK_DELAY_MS + TICK_INTERVAL_MS < RETRANSMIT_INTERVAL_MS / 2`` (asserted in
  node/limits.py), so a held ACK still beats the repeat it prevents. Held
  ACKs are volatile like the repeat times: after a crash the peer repeats and
  gets them again. They leave only through ``NodeEngine.outgoing``, so after
  the records they acknowledge are durable.
- Pure: time is the ``now_ms`` argument.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from node import wire
from node.limits import ACK_DELAY_MS


class HeldAcks:
    """ACK-only messages waiting, per peer, for a frame to ride on."""

    def __init__(self) -> None:
        self._held: dict[bytes, tuple[int, list[wire.Ack]]] = {}  # peer -> (due, acks)

    def __len__(self) -> int:
        return sum(len(acks) for _, acks in self._held.values())

    def apply(self, outbox: MutableMapping[bytes, list[wire.PeerMessage]], now_ms: int) -> None:
        """Hold a pass's ACK-only messages, and add held ACKs that are due or
        can ride on the pass's other messages to the same peer."""
        held = self._held
        for peer_key in list(outbox):
            messages = outbox[peer_key]
            if not messages:
                continue
            if all(type(message) is wire.Ack for message in messages):
                due, acks = held.get(peer_key) or (now_ms + ACK_DELAY_MS, [])
                acks.extend(messages)  # type: ignore[arg-type]  # all Acks, checked above
                held[peer_key] = (due, acks)
                del outbox[peer_key]
            elif peer_key in held:
                outbox[peer_key] = _merged(held.pop(peer_key)[1], messages)
            elif any(type(message) is wire.Ack for message in messages):
                outbox[peer_key] = _merged([], messages)
        for peer_key in [peer for peer, (due, _) in held.items() if due <= now_ms]:
            outbox[peer_key] = _merged(held.pop(peer_key)[1], [])

    def next_due_ms(self) -> int | None:
        """When the earliest held ACK must leave, if any is held."""
        return min((due for due, _ in self._held.values()), default=None)


def _merged(acks: list[wire.Ack], messages: list[wire.PeerMessage]) -> list[wire.PeerMessage]:
    """``acks`` (once each, without those a decision in ``messages`` makes
    redundant) followed by ``messages``, which may hold ACKs too."""
    decided = {
        message.msg_id for message in messages if isinstance(message, wire.Accept | wire.Reject)
    }
    seen: set[wire.Ack] = set()
    merged: list[wire.PeerMessage] = []
    for message in [*acks, *messages]:
        if isinstance(message, wire.Ack):
            redundant = message.ack_of is wire.MsgType.PROPOSE and message.msg_id in decided
            if redundant or message in seen:
                continue
            seen.add(message)
        merged.append(message)
    return merged
