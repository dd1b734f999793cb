"""The QUIC endpoint's incoming events, one queue per sender, taken in turns.

Why: with one first-in first-out queue, an operator's or customer's request
waited behind every frame the peers had queued before it (thousands under
gossip load), and while that queue was full every connection stopped reading,
the client's too. Taking the senders in turns, a request waits behind at most
one event of each other sender.

Rules:
- ``put`` never blocks. Events of one sender come out in the order they were
  put (a peer's PeerUp, its payloads, its PeerDown); senders with events take
  turns, one event each (round robin).
- Bounded by backpressure, not loss: ``must_wait(sender)`` is true while
  INCOMING_QUEUE_ITEMS_MAX events are held and that sender has at least
  INCOMING_QUEUE_ITEMS_PER_SENDER_MIN of its own waiting. Its connection then
  stops reading (``wait_for_room``), which slows that peer down through QUIC's
  flow control. A sender with fewer waiting (a client: its PeerUp, a request)
  is still read, so it is never held back by the peers' backlog. Memory: the
  limit, plus that minimum and one read per connection. A waiting connection
  is woken when fewer than the limit are held, or when its own sender's
  backlog falls under the minimum; not when another sender's does.
- ``close`` ends the inbox: later events are dropped; what is held is still
  taken, then ``receive`` raises ``trio.EndOfChannel`` (like a trio channel
  whose sender closed).
"""

from __future__ import annotations

from collections import deque

import trio

from node.limits import INCOMING_QUEUE_ITEMS_MAX, INCOMING_QUEUE_ITEMS_PER_SENDER_MIN
from node.net.base import TransportEvent


class FairInbox:
    """Incoming transport events: a queue per sender key, taken in turns."""

    def __init__(
        self,
        items_max: int = INCOMING_QUEUE_ITEMS_MAX,
        items_per_sender_min: int = INCOMING_QUEUE_ITEMS_PER_SENDER_MIN,
    ) -> None:
        assert 0 < items_per_sender_min <= items_max
        self.items_max = items_max
        self.items_per_sender_min = items_per_sender_min
        self._queues: dict[bytes, deque[TransportEvent]] = {}
        self._turns: deque[bytes] = deque()  # senders with events, in turn order
        self._held = 0
        self._closed = False
        self._arrived = trio.Event()
        self._room: dict[bytes, trio.Event] = {}  # senders whose connection waits for room

    def __len__(self) -> int:
        return self._held

    @property
    def closed(self) -> bool:
        return self._closed

    def queued(self, sender: bytes) -> int:
        """Events of ``sender`` not yet taken."""
        queue = self._queues.get(sender)
        return 0 if queue is None else len(queue)

    def put(self, sender: bytes, event: TransportEvent) -> None:
        if self._closed:
            return
        queue = self._queues.get(sender)
        if queue is None:
            queue = self._queues[sender] = deque()
            self._turns.append(sender)
        queue.append(event)
        self._held += 1
        self._arrived.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()
        self._wake(list(self._room))

    # --- taking --------------------------------------------------------------------

    def receive_nowait(self) -> TransportEvent:
        """The next event in turn; ``trio.WouldBlock`` when none, ``trio.EndOfChannel``
        when closed and empty."""
        if not self._turns:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        sender = self._turns.popleft()
        queue = self._queues[sender]
        event = queue.popleft()
        self._held -= 1
        if queue:
            self._turns.append(sender)
        else:
            del self._queues[sender]
        # Wake the connections that may read again: all of them once fewer than the
        # limit are held, else this sender's alone once it is under its minimum.
        if self._room:
            if self._held < self.items_max:
                self._wake(list(self._room))
            elif len(queue) < self.items_per_sender_min and sender in self._room:
                self._wake([sender])
        return event

    def _wake(self, senders: list[bytes]) -> None:
        for sender in senders:
            self._room.pop(sender).set()

    async def receive(self) -> TransportEvent:
        """The next event in turn, waiting for one; a checkpoint, as trio's channels.

        After a wait the event is returned at once: the wait was the checkpoint,
        and one more scheduler turn would only delay the pass it starts."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._turns or self._closed:
            event = self.receive_nowait()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        while not self._turns and not self._closed:
            self._arrived = trio.Event()
            await self._arrived.wait()  # cancelled here: nothing was taken
        return self.receive_nowait()

    def __aiter__(self) -> FairInbox:
        return self

    async def __anext__(self) -> TransportEvent:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    # --- backpressure ----------------------------------------------------------------

    def must_wait(self, sender: bytes) -> bool:
        """Should ``sender``'s connection stop reading for now (see the rules)."""
        return (
            not self._closed
            and self._held >= self.items_max
            and self.queued(sender) >= self.items_per_sender_min
        )

    async def wait_for_room(self, sender: bytes) -> None:
        while self.must_wait(sender):
            room = self._room.get(sender)
            if room is None:
                room = self._room[sender] = trio.Event()
            await room.wait()
